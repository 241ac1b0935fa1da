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
from precompute.training.crossmodal import (
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
    from precompute.errors import InputError

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
    assert (summary["image_dim"], summary["text_dim"], summary["dim"]) == (1280, 384, 64)
    assert [h["epoch"] for h in summary["history"]] == list(range(9))
    assert summary["before"]["recall@10"] == summary["history"][0]["recall@10"]
    best = summary["history"][summary["best_epoch"]]
    assert summary["after"]["recall@10"] == best["recall@10"] >= summary["before"]["recall@10"]
    import hashlib

    assert summary["csv_sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    heads = load_heads(out / "best.pt")
    assert heads.dims == {"image_dim": 1280, "text_dim": 384, "dim": 64}
    print(f"\ncrossmodal demo: {seconds:.1f} s, fold-1 recall@1 {summary['before']['recall@1']:.3f}"
          f" -> {summary['after']['recall@1']:.3f}, recall@10 "
          f"{summary['before']['recall@10']:.3f} -> {summary['after']['recall@10']:.3f} "
          f"(epoch {summary['best_epoch']}, {summary['valid_pairs']} fold-1 pairs)")
