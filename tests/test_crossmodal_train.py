"""`precompute train crossmodal`: the contrastive loss by hand, recall@k by hand, training
on synthetic paired features, the checkpoint's round trip, and the command on a tiny demo."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import huggingface_hub.constants  # noqa: F401  (the offline_hub fixture patches it)
import numpy as np
import pytest
import torch

from precompute.cli import main
from precompute.errors import InputError
from precompute.training.crossmodal import (
    KEYS,
    MAX_LOGIT_SCALE,
    ProjectionHeads,
    clip_loss,
    load_heads,
    recall_at_k,
    save_heads,
    train_heads,
)


def test_clip_loss_matches_the_formula_by_hand():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # normalised: (1, 0), (a, a)
    a = 1 / math.sqrt(2)
    # logits = 2 * [[1, a], [0, a]] (logit_scale log 2)
    rows = (-math.log(math.exp(2) / (math.exp(2) + math.exp(2 * a)))
            - math.log(math.exp(2 * a) / (1 + math.exp(2 * a)))) / 2
    cols = (-math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(2)) / 2
    expected = (rows + cols) / 2
    got = float(clip_loss(img, txt, torch.tensor(math.log(2.0))))
    assert got == pytest.approx(expected, rel=1e-6)


def test_heads_start_at_clips_temperature_and_clamp_at_100():
    heads = ProjectionHeads(5, 3, 4)
    assert heads.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        heads.logit_scale.fill_(10.0)
    assert heads.clamped_scale().item() == pytest.approx(MAX_LOGIT_SCALE)
    heads.clamp_()
    assert heads.logit_scale.item() == pytest.approx(math.log(100))


def test_recall_at_k_by_hand():
    text = torch.eye(3)
    image = torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, 1, 0]])
    # title 0 finds its picture first; titles 1 and 2 find the other's picture first and
    # their own tied with picture 0, which does not push it out
    assert recall_at_k(text, image, 1) == pytest.approx(1 / 3)
    assert recall_at_k(text, image, 2) == 1.0
    with pytest.raises(ValueError):
        recall_at_k(text, image[:2], 1)


def _paired(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pictures and titles as two noisy linear views of one latent product."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 16))
    image = z @ rng.normal(size=(16, 48)) + 0.3 * rng.normal(size=(n, 48))
    text = z @ rng.normal(size=(16, 32)) + 0.3 * rng.normal(size=(n, 32))
    return image.astype(np.float32), text.astype(np.float32)


def test_training_lowers_the_loss_and_raises_held_out_recall():
    image, text = _paired(700)
    train, valid, held = np.arange(500), np.arange(500, 600), np.arange(600, 700)
    kw = dict(epochs=12, batch=64, lr=1e-2, seed=3, dim=32)
    heads, history = train_heads(image, text, train, valid, **kw)
    assert [h["epoch"] for h in history] == list(range(13))
    assert history[-1]["loss"] < history[0]["loss"] * 0.7
    best = max(history, key=lambda h: h["recall@10"])
    assert best["recall@10"] > history[0]["recall@10"]

    torch.manual_seed(3)  # the same initial weights train_heads starts from
    untrained = ProjectionHeads(48, 32, 32)
    x_img, x_txt = torch.from_numpy(image[held]), torch.from_numpy(text[held])
    with torch.no_grad():
        before = recall_at_k(*reversed(untrained(x_img, x_txt)), 10)
        after = recall_at_k(*reversed(heads(x_img, x_txt)), 10)
    assert after > before + 0.2
    # the returned heads are the selected epoch's
    with torch.no_grad():
        img_v, txt_v = heads(torch.from_numpy(image[valid]), torch.from_numpy(text[valid]))
    assert recall_at_k(txt_v, img_v, 10) == pytest.approx(best["recall@10"])

    _, again = train_heads(image, text, train, valid, **kw)  # deterministic for a seed
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in again]


def test_save_then_load_gives_identical_projections(tmp_path):
    image, text = _paired(80)
    heads, _ = train_heads(image, text, np.arange(60), np.arange(60, 80), epochs=2,
                           batch=16, lr=1e-2, seed=0, dim=8)
    save_heads(heads, tmp_path / "best.pt")
    raw = torch.load(tmp_path / "best.pt", weights_only=True)
    assert type(raw) is dict and all(isinstance(v, torch.Tensor) for v in raw.values())
    loaded = load_heads(tmp_path / "best.pt")
    x = (torch.from_numpy(image), torch.from_numpy(text))
    with torch.no_grad():
        for a, b in zip(heads(*x), loaded(*x), strict=True):
            assert torch.equal(a, b)
    assert torch.equal(heads.logit_scale, loaded.logit_scale)


def test_load_heads_refuses_other_checkpoints(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a cross-modal checkpoint"):
        load_heads(tmp_path / "other.pt")


# ---- the command ---------------------------------------------------------------------


def _args(csv: Path, images: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "crossmodal", "--csv", str(csv), "--images", str(images),
            "--image", "tf_efficientnet_lite0", "--text", "all-MiniLM-L6-v2",
            "--out", str(out), *extra]


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "0"], "--epochs 0: must be positive"),
    (["--lr", "nan"], "--lr nan: must be positive"),
    (["--dim", "-3"], "--dim -3: must be positive"),
    (["--batch", "1"], "at least 2 pairs"),
    (["--lr", "inf"], "--lr inf: must be positive and finite"),
    (["--encoder-lr", "nan"], "--encoder-lr nan: must be positive"),
    (["--encoder-lr", "0"], "--encoder-lr 0.0: must be positive"),
    (["--unfreeze-image", "-1"], "--unfreeze-image -1: must be 0 (frozen)"),
    (["--unfreeze-text", "-2"], "--unfreeze-text -2: must be 0 (frozen)"),
])
def test_bad_numbers_are_one_line(make_csv, tmp_path, capsys, extra, message):
    csv = make_csv()
    (tmp_path / "img").mkdir()
    assert main(_args(csv, tmp_path / "img", tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_inputs_are_one_line(make_csv, tmp_path, capsys):
    csv = make_csv()
    (tmp_path / "img").mkdir()
    assert main(_args(csv, tmp_path / "nowhere", tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert "image folder not found" in err and err.count("\n") == 1
    assert main(_args(tmp_path / "no.csv", tmp_path / "img", tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert "CSV not found" in err and err.count("\n") == 1
    bad = _args(csv, tmp_path / "img", tmp_path / "run")
    bad[bad.index("tf_efficientnet_lite0")] = "not_a_model"
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "not a timm model" in err and err.count("\n") == 1
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "crossmodal.json").write_text("{}")
    assert main(_args(csv, tmp_path / "img", tmp_path / "run")) == 2
    assert "--force" in capsys.readouterr().err
    # another command's best.pt (train text / image write one too) is never replaced
    other = tmp_path / "text-run"
    other.mkdir()
    (other / "best.pt").write_bytes(b"a text run's checkpoint")
    assert main([*_args(csv, tmp_path / "img", other), "--force"]) == 2
    err = capsys.readouterr().err
    assert "not a cross-modal run's checkpoint" in err and err.count("\n") == 1
    assert (other / "best.pt").read_bytes() == b"a text run's checkpoint"


@pytest.mark.usefixtures("offline_hub")
def test_cli_trains_on_a_tiny_demo(tmp_path, capsys):
    from precompute.demo_data import generate_demo

    csv = generate_demo(tmp_path / "data", n_postings=120, seed=0, progress=False)
    out = tmp_path / "run"
    start = time.perf_counter()
    code = main(_args(csv, csv.parent / "train_images", out, "--epochs", "8", "--batch",
                      "32", "--lr", "3e-3", "--dim", "64", "--device", "cpu"))
    seconds = time.perf_counter() - start
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "wrote" in printed and "epoch 8:" in printed
    summary = json.loads((out / "crossmodal.json").read_text())
    assert summary["image_model"] == "tf_efficientnet_lite0"
    assert summary["text_model"] == "all-MiniLM-L6-v2"
    assert (summary["train_folds"], summary["valid_fold"]) == ([2, 3, 4], 1)
    assert (summary["image_dim"], summary["text_dim"], summary["dim"]) == (1280, 384, 64)
    assert [h["epoch"] for h in summary["history"]] == list(range(9))
    assert summary["before"]["recall@10"] == summary["history"][0]["recall@10"]
    best = summary["history"][summary["best_epoch"]]
    assert summary["after"]["recall@10"] == best["recall@10"] >= summary["before"]["recall@10"]
    import hashlib

    assert summary["csv_sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    heads = load_heads(out / "best.pt")
    assert heads.dims == {"image_dim": 1280, "text_dim": 384, "dim": 64}
    # frozen (the default): the heads alone, nothing tuned
    assert summary["tuned"] == {} and (summary["unfreeze_image"], summary["unfreeze_text"]) \
        == (0, 0)
    assert set(torch.load(out / "best.pt", weights_only=True)) == set(KEYS)
    print(f"\ncrossmodal demo: {seconds:.1f} s, fold-1 recall@1 {summary['before']['recall@1']:.3f}"
          f" -> {summary['after']['recall@1']:.3f}, recall@10 "
          f"{summary['before']['recall@10']:.3f} -> {summary['after']['recall@10']:.3f} "
          f"(epoch {summary['best_epoch']}, {summary['valid_pairs']} fold-1 pairs)")


# ---- partly unfrozen encoders --------------------------------------------------------


def test_image_blocks_follow_timms_grouping():
    import timm

    from precompute.image_encoders import ImageHead
    from precompute.training.crossmodal_unfrozen import image_blocks, last_blocks

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    blocks = image_blocks(model, "lite0")
    assert len(blocks) == 16  # 7 stages of 1, 2, 2, 3, 3, 4, 1 blocks; the stem is none
    assert blocks[0][0].startswith("blocks.0.0.")
    assert blocks[-1][0].startswith("blocks.6.0.")
    assert {"conv_head.weight", "bn2.weight", "bn2.bias"} <= set(blocks[-1])
    flat = [n for b in blocks for n in b]
    assert not any(n.startswith(("conv_stem", "bn1.")) for n in flat)
    assert sorted(flat) == sorted(n for n, _ in model.named_parameters()
                                  if not n.startswith(("conv_stem", "bn1.")))
    assert last_blocks(blocks, 2, "image", "lite0") == blocks[-2] + blocks[-1]
    with pytest.raises(InputError, match="--unfreeze-image 17: lite0 has 16 blocks"):
        last_blocks(blocks, 17, "image", "lite0")
    # a checkpoint of ours: backbone + fc/BN, the head tuned with the last block
    head = ImageHead(timm.create_model("tf_efficientnet_lite0", pretrained=False,
                                       num_classes=0, global_pool=""), 1280, 8)
    blocks = image_blocks(head, "ours")
    assert len(blocks) == 16 and blocks[-1][0].startswith("backbone.blocks.6.0.")
    assert {"fc.weight", "fc.bias", "bn.weight", "bn.bias"} <= set(blocks[-1])


def test_text_blocks_are_the_transformer_layers_and_unused_ones_are_dropped():
    from transformers import BertConfig, BertModel

    from precompute.training.crossmodal_unfrozen import text_blocks, used_by

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3,
                                 num_attention_heads=2, intermediate_size=32)).eval()
    blocks = text_blocks(model, "tiny-bert")
    assert len(blocks) == 3
    assert all(n.startswith("encoder.layer.2.") or n.startswith("pooler.") for n in blocks[-1])
    assert "pooler.dense.weight" in blocks[-1]  # registered after the stack
    ids = torch.tensor([[1, 5, 7, 2]])
    # mean pooling never reads the pooler: the probe leaves it frozen
    used = used_by(model, blocks[-1], lambda: model(input_ids=ids).last_hidden_state.mean(1))
    assert used == [n for n in blocks[-1] if not n.startswith("pooler.")]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(used)


@pytest.mark.usefixtures("offline_hub")
def test_too_many_blocks_is_one_line(tmp_path, capsys):
    from precompute.demo_data import generate_demo

    csv = generate_demo(tmp_path / "data", n_postings=40, seed=0, progress=False)
    assert main(_args(csv, csv.parent / "train_images", tmp_path / "run", "--unfreeze-text",
                      "7", "--device", "cpu", "--quiet")) == 2
    err = capsys.readouterr().err
    assert "--unfreeze-text 7: all-MiniLM-L6-v2 has 6 blocks" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.usefixtures("offline_hub")
def test_unfrozen_training_tunes_the_last_blocks_and_the_towers_reproduce_it(
        tmp_path, capsys, monkeypatch):
    import shutil

    from precompute import crossmodal_towers
    from precompute.image_encoders import encode_images, load_image_encoder
    from precompute.images import image_paths
    from precompute.text_encoders import encode_texts, load_text_encoder
    from precompute.training import crossmodal_unfrozen
    from precompute.training.crossmodal import load_crossmodal, split_rows

    caught = {}
    real = crossmodal_unfrozen.train_unfrozen

    def spy(image, text, *rest, **kw):  # the trained model, as training leaves it
        caught["image"], caught["text"] = image.encoder, text.encoder
        caught["result"] = real(image, text, *rest, **kw)
        return caught["result"]

    monkeypatch.setattr(crossmodal_unfrozen, "train_unfrozen", spy)
    csv = generate_demo_csv(tmp_path, 60)
    out = tmp_path / "run"
    code = main(_args(csv, csv.parent / "train_images", out, "--epochs", "2", "--batch", "16",
                      "--lr", "3e-3", "--dim", "32", "--device", "cpu", "--unfreeze-image",
                      "1", "--unfreeze-text", "1", "--encoder-lr", "1e-4", "--quiet"))
    assert code == 0, capsys.readouterr()
    summary = json.loads((out / "crossmodal.json").read_text())
    assert summary["best_epoch"] >= 1 and summary["encoder_lr"] == 1e-4
    tuned = summary["tuned"]
    assert (tuned["image"]["blocks"], tuned["image"]["of"]) == (1, 16)
    assert (tuned["text"]["blocks"], tuned["text"]["of"]) == (1, 6)
    assert all(n.startswith(("blocks.6.0.", "conv_head.", "bn2."))
               for n in tuned["image"]["tensors"])
    assert all(".encoder.layer.5." in n for n in tuned["text"]["tensors"])

    # best.pt: a plain dict of tensors, the heads and exactly the tuned tensors
    heads, states = load_crossmodal(out / "best.pt")
    raw = torch.load(out / "best.pt", weights_only=True)
    assert set(raw) == set(KEYS) | {f"image_encoder.{n}" for n in tuned["image"]["tensors"]} \
        | {f"text_encoder.{n}" for n in tuned["text"]["tensors"]}

    # the tuned tensors changed, every other parameter and buffer is the loaded encoder's
    base = {"image": load_image_encoder("tf_efficientnet_lite0", device="cpu").module,
            "text": load_text_encoder("all-MiniLM-L6-v2", device="cpu").module}
    for side in ("image", "text"):
        names = set(tuned[side]["tensors"])
        trained = caught[side].module.state_dict()
        for name, before in base[side].state_dict().items():
            if name in names:
                assert not torch.equal(trained[name], before), name
                assert torch.equal(trained[name], states[side][name]), name
            else:
                assert torch.equal(trained[name], before), name

    # the towers loaded from the checkpoint embed as the trained model does
    data, _, _, valid = split_rows(csv)
    paths = image_paths(csv.parent / "train_images", data.table["image"]).paths
    pictures = [paths[r] for r in valid]
    titles = [data.table["title"].iloc[r] for r in valid]
    towers = crossmodal_towers.load_towers(str(out / "best.pt"), device="cpu")
    assert towers.record["tuned"] == ["image", "text"]
    got_img = towers.encode_images(pictures, workers=0)
    got_txt = towers.encode_texts(titles)
    trained_heads = caught["result"][0]
    for key, tensor in trained_heads.state_dict().items():
        assert torch.equal(heads.state_dict()[key], tensor), key
    with torch.no_grad():
        want_img, want_txt = trained_heads(
            torch.from_numpy(encode_images(caught["image"], pictures, workers=0,
                                           progress=False).emb),
            torch.from_numpy(encode_texts(caught["text"], titles, progress=False).emb))
    np.testing.assert_allclose(got_img.emb, torch.nn.functional.normalize(want_img, dim=1),
                               atol=1e-5)
    np.testing.assert_allclose(got_txt, torch.nn.functional.normalize(want_txt, dim=1),
                               atol=1e-5)
    ok = got_img.present
    assert recall_at_k(torch.from_numpy(got_txt[ok]), torch.from_numpy(got_img.emb[ok]), 10) \
        == pytest.approx(summary["after"]["recall@10"])

    # the text side rebuilt from the record reads the tuned layer from the checkpoint
    record = json.loads(json.dumps(towers.record))
    text_tower = crossmodal_towers.text_tower_from_record(record, towers.arrays, device="cpu")
    np.testing.assert_allclose(text_tower(titles), got_txt, atol=1e-6)
    moved = tmp_path / "elsewhere.pt"
    shutil.move(out / "best.pt", moved)
    with pytest.raises(InputError, match="missing; the bundle's text tower needs") as err:
        crossmodal_towers.text_tower_from_record(record, towers.arrays)
    assert "\n" not in str(err.value)
    (out / "best.pt").write_bytes(moved.read_bytes() + b"\0")
    with pytest.raises(InputError, match="sha256 differs from the bundle's record"):
        crossmodal_towers.text_tower_from_record(record, towers.arrays)


def generate_demo_csv(tmp_path: Path, n: int) -> Path:
    from precompute.demo_data import generate_demo

    return generate_demo(tmp_path / "data", n_postings=n, seed=0, progress=False)
