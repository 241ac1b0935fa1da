"""`precompute build` with neural modalities, end to end on demo images and titles
(packaged EfficientNet-Lite0 and MiniLM on the CPU): the fused modality, thumbnails,
images that cannot be embedded, and `precompute demo`. The full-size demo and its
`--best` check are marked slow (`pytest --run-slow`)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.engine import Engine
from explorer.core.tune import best, tune
from precompute import cli as precompute_cli
from precompute.build import BuildOptions, build
from precompute.demo import FUSE, IMAGE_MODEL, TEXT_MODEL, build_demo
from precompute.demo_data import generate_demo
from precompute.errors import InputError

MODALITIES = {"tfidf": "text", "minilm": "text", "phash": "image", "effnet": "image",
              "effnet+minilm": "fused", "cx": "cross"}


def test_demo_bundle_has_every_kind_of_modality(demo_bundle: Path) -> None:
    b = Bundle.open(demo_bundle)
    mods = {m.name: m for m in b.manifest.modalities}
    assert {n: m.kind for n, m in mods.items()} == MODALITIES
    assert (mods["effnet"].dim, mods["minilm"].dim) == (1280, 384)
    assert mods["effnet"].params["kind"] == "packaged"
    assert mods["effnet"].params["n_skipped"] == 0
    # the manifest names the wheel, not this machine's site-packages
    assert "site-packages" not in json.dumps(b.manifest.to_json())
    emb = b.array(mods["effnet"].files["embeddings"])
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)


def test_the_demos_cross_modal_heads_are_fitted_on_its_own_rows(demo_bundle: Path) -> None:
    """cx's heads are fitted in the build over effnet's and minilm's rows (folds 2-4,
    chosen on fold 1): its stored sides are those rows through one linear map each, then
    unit length; the text head is the stored one; the folds it learned from recorded."""
    b = Bundle.open(demo_bundle)
    mod = b.manifest.modality("cx")
    assert mod.params["trained_on"] == ["fold2", "fold3", "fold4"]
    assert mod.params["towers"]["text_model"] == TEXT_MODEL.split("=", 1)[1]
    # the heads again, as the build fits them (deterministic on the CPU for a seed)
    from precompute.modalities import FIT
    from precompute.training.crossmodal import train_heads

    effnet, minilm = np.array(b.embeddings("effnet")), np.array(b.embeddings("minilm"))
    folds = b.folds
    train, valid = np.flatnonzero(np.isin(folds, [2, 3, 4])), np.flatnonzero(folds == 1)
    heads, _ = train_heads(effnet, minilm, train, valid, device="cpu", **FIT)
    for side, rows, head in (("text", minilm, heads.text_proj), ("image", effnet,
                                                                 heads.image_proj)):
        want = rows @ head.weight.detach().numpy().T
        want /= np.linalg.norm(want, axis=1, keepdims=True)
        got = b.text_embeddings("cx") if side == "text" else b.embeddings("cx")
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=side)
    np.testing.assert_array_equal(b.tower_arrays("cx")["text_proj"],
                                  heads.text_proj.weight.detach().numpy())
    recall = mod.params["fold1_recall"]
    assert recall["after"]["recall@10"] >= recall["before"]["recall@10"]


def test_crossmodal_fit_names_an_image_and_a_text_modality(tmp_path: Path) -> None:
    csv = tmp_path / "train.csv"
    pd.DataFrame({"posting_id": ["a", "b"], "image": ["a.jpg", "b.jpg"],
                  "image_phash": ["0" * 16] * 2, "title": ["x", "y"],
                  "label_group": [1, 2]}).to_csv(csv, index=False)
    for spec, message in (("cx:tfidf,phash", "must be a neural image modality"),
                          ("cx:effnet", "expected NAME:IMAGE,TEXT")):
        with pytest.raises(InputError, match=message):
            build(BuildOptions(csv=csv, out=tmp_path / "b", crossmodal_fit=(spec,),
                               progress=False))
    assert not (tmp_path / "b").exists()


def test_fusion_scores_the_weighted_mean_of_cosines(demo_bundle: Path) -> None:
    b = Bundle.open(demo_bundle)
    man = b.manifest
    img, txt, fused = (b.array(man.modality(n).files["embeddings"])
                       for n in ("effnet", "minilm", "effnet+minilm"))
    assert man.modality("effnet+minilm").params["weights"] == [0.5, 0.5]
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, b.n_items, 50), rng.integers(0, b.n_items, 50)
    want = 0.5 * np.sum(img[i] * img[j], 1) + 0.5 * np.sum(txt[i] * txt[j], 1)
    np.testing.assert_allclose(np.sum(fused[i] * fused[j], 1), want, atol=1e-5)


def test_thumbnails_round_trip(demo_bundle: Path) -> None:
    b = Bundle.open(demo_bundle)
    assert b.has_thumbnails
    src = Path(b.manifest.dataset["images"])
    for row in (0, b.n_items // 2, b.n_items - 1):
        with Image.open(io.BytesIO(b.thumbnail(row))) as im:
            assert im.format == "JPEG" and max(im.size) == 192
            thumb_ratio = im.size[0] / im.size[1]
        with Image.open(src / b.items["image"].iloc[row]) as orig:
            assert thumb_ratio == pytest.approx(orig.size[0] / orig.size[1], abs=0.02)


def test_neural_modalities_match_groups_better_than_chance(demo_bundle: Path) -> None:
    """The packaged weights really embed: a tuned threshold on each neural modality finds
    far more of the true pairs than random pairs would."""
    engine = Engine(Bundle.open(demo_bundle), "all")
    for name in ("effnet", "minilm", "effnet+minilm"):
        cfg = tune(engine, MatchConfig("single", (name,), (0.5,)))
        assert engine.evaluate(cfg).metrics.f1 > 0.5, name


def test_images_that_cannot_be_embedded_are_skipped(tmp_path: Path) -> None:
    csv = generate_demo(tmp_path / "data", n_postings=40, seed=3, progress=False)
    table = pd.read_csv(csv)
    images = csv.parent / "train_images"
    (images / table["image"][3]).write_bytes(b"not a jpeg at all")
    (images / table["image"][5]).unlink()
    out = build(BuildOptions(csv=csv, out=tmp_path / "b.bundle", images=images,
                             text=("tfidf",), image=("phash", IMAGE_MODEL), k=10,
                             progress=False, workers=0))
    b = Bundle.open(out)
    params = b.manifest.modality("effnet").params
    assert [s["row"] for s in params["skipped"]] == [3, 5]
    assert all(s["reason"] for s in params["skipped"])
    present = b.present("effnet")
    assert present is not None and list(np.flatnonzero(~present)) == [3, 5]
    idx, _ = b.knn("all", "effnet")
    others = np.delete(idx, [3, 5], axis=0)
    assert not np.isin(others, [3, 5]).any()  # never anybody's neighbour
    assert b.thumbnail(5) is None and b.thumbnail(3) is None and b.thumbnail(4)


def test_unknown_fuse_part_is_refused(tmp_path: Path) -> None:
    csv = generate_demo(tmp_path / "data", n_postings=20, seed=1, progress=False)
    with pytest.raises(InputError, match="not a neural modality"):
        build(BuildOptions(csv=csv, out=tmp_path / "b.bundle", text=("tfidf", TEXT_MODEL),
                           fuse=("effnet,minilm",), progress=False))
    assert not (tmp_path / "b.bundle").exists()


def test_demo_command_errors_are_one_line(tmp_path: Path, capsys) -> None:
    code = precompute_cli.main(["demo", "--out", str(tmp_path / "d"), "--postings", "5"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "at least" in err


def test_demo_reuses_its_data_and_refuses_to_overwrite(demo_bundle: Path) -> None:
    with pytest.raises(InputError, match="already exists"):
        build_demo(demo_bundle.parent, n_postings=120, progress=False)


@pytest.mark.slow
def test_full_demo_best_beats_every_single_modality(tmp_path: Path) -> None:
    """The issue's acceptance check on the default demo (about 90 s on 2 cores)."""
    b = Bundle.open(build_demo(tmp_path, progress=False))
    tuner, test = Engine(b, "fold1"), Engine(b, "fold0")
    singles = {}
    for name in (*MODALITIES, FUSE.replace(",", "+")):
        cfg = tune(tuner, MatchConfig("single", (name,), (0.5,)))
        singles[name] = test.evaluate(cfg).metrics.f1
    top = best(tuner, tuner.modalities)[0].config
    f1 = test.evaluate(top).metrics.f1
    assert f1 > max(singles.values()) + 0.05, (f1, singles)
