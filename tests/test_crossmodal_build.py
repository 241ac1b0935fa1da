"""`precompute build --crossmodal NAME:CKPT` (issue 12) with stand-in towers, so no model
loads: what the bundle stores, that it validates, that its graph scores are the
cross-modal formula, that a posting without a readable picture is nobody's neighbour,
and that the engine's modes and `best` use the modality like any other."""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from explorer.core.bundle import Bundle
from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine
from precompute import crossmodal_towers
from precompute.build import BuildOptions, build
from precompute.crossmodal_towers import EncodedPictures, Towers, unit_rows
from precompute.errors import InputError
from tests.conftest import synthetic_table

DIM = 8


def _vector(key: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(key.encode())).normal(size=DIM)


def fake_towers(spec: str, **_: object) -> Towers:
    """Titles: the sum of their words' vectors; pictures: their label group's vector (the
    file name's first part) plus a little of the file's own: a posting's picture is near
    its group's titles only through training, which these towers stand for."""
    def texts(titles, **_: object) -> np.ndarray:
        return unit_rows(np.array([sum(_vector(w) for w in t.lower().split()) for t in titles]))

    def images(paths, **_: object) -> EncodedPictures:
        emb = np.zeros((len(paths), DIM), np.float32)
        present = np.zeros(len(paths), bool)
        skipped = []
        for i, p in enumerate(paths):
            try:
                with Image.open(p) as im:
                    im.load()
            except Exception as exc:  # a stand-in for the encoders' reasons
                skipped.append((i, type(exc).__name__))
                continue
            group = p.name.split("_")[0]
            emb[i] = _vector(f"group{group}") + 0.3 * _vector(p.name)
            present[i] = True
        out = unit_rows(emb)
        return EncodedPictures(out, present, skipped, {"images_per_s": 1.0})

    return Towers(dim=DIM, model="fake x fake", record={"kind": "heads", "text_model": spec},
                  arrays={"text_proj": np.eye(DIM, dtype=np.float32)}, encode_texts=texts,
                  encode_images=images)


def fake_run(folder: Path, csv_sha256: str) -> Path:
    """A run folder as `precompute train crossmodal` leaves it, as far as the build reads
    it without loading towers: best.pt and the record of the table and folds it learned."""
    folder.mkdir()
    (folder / "best.pt").write_bytes(b"stand-in heads")
    (folder / "crossmodal.json").write_text(json.dumps({"csv_sha256": csv_sha256,
                                                       "train_folds": [2, 3, 4]}))
    return folder / "best.pt"


def with_pictures(root: Path, n_groups: int) -> tuple[Path, Path, pd.DataFrame]:
    """A synthetic table's CSV and a folder with a small picture for each of its rows."""
    table = synthetic_table(n_groups=n_groups)
    csv = root / "train.csv"
    table.to_csv(csv, index=False)
    images = root / "img"
    images.mkdir()
    for name in table["image"]:
        Image.new("RGB", (8, 8), (40, 90, 160)).save(images / name)
    return csv, images, table


@pytest.fixture(scope="module")
def cross_bundle(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    root = tmp_path_factory.mktemp("cross")
    csv, images, table = with_pictures(root, 25)
    broken = table["image"].iloc[4]
    (images / broken).write_bytes(b"not a picture")
    run = fake_run(root / "run", hashlib.sha256(csv.read_bytes()).hexdigest())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(crossmodal_towers, "load_towers", fake_towers)
        out = build(BuildOptions(csv=csv, out=root / "b.bundle", images=images, k=10,
                                 crossmodal=(f"cx:{run}",), progress=False,
                                 thumbnails=False))
        towers = fake_towers(str(run))
        text = towers.encode_texts(table["title"].tolist())
        pics = towers.encode_images([images / n for n in table["image"]])
    return out, text, pics.emb, pics.present


def test_the_bundle_stores_both_sides_and_validates(cross_bundle):
    path, text, image, present = cross_bundle
    bundle = Bundle.open(path)
    bundle.validate()
    mod = bundle.manifest.modality("cx")
    assert (mod.kind, mod.storage, mod.encoder, mod.dim) == ("cross", "cross", "crossmodal", DIM)
    np.testing.assert_array_equal(bundle.text_embeddings("cx"), text)
    np.testing.assert_array_equal(bundle.embeddings("cx"), image)
    np.testing.assert_array_equal(bundle.present("cx"), present)
    assert not present[4] and present.sum() == len(present) - 1
    assert mod.params["towers"]["kind"] == "heads"
    assert mod.params["trained_on"] == ["fold2", "fold3", "fold4"]
    assert [s["row"] for s in mod.params["skipped"]] == [4]
    np.testing.assert_array_equal(bundle.tower_arrays("cx")["text_proj"], np.eye(DIM))


@pytest.mark.parametrize("scope", ["all", "fold2"])
def test_graph_scores_are_title_against_picture_both_ways(cross_bundle, scope):
    path, text, image, present = cross_bundle
    bundle = Bundle.open(path)
    g = Engine(bundle, scope).graph
    cand, sims = g.cand, g.sims["cx"]
    rows = bundle.scope_rows(scope)  # the engine's graph holds the scope's own rows
    for b in range(len(cand)):
        i = rows[b]
        for c in range(1, cand.shape[1]):
            if cand[b, c] < 0:
                continue
            j = rows[cand[b, c]]
            if not (present[i] and present[j]):
                assert np.isneginf(sims[b, c])
            else:
                want = (text[i] @ image[j] + image[i] @ text[j]) / 2
                assert sims[b, c] == pytest.approx(want, abs=1e-5)
    idx, _ = bundle.knn(scope, "cx")
    assert 4 not in np.asarray(idx)[:, 1:]


def test_modes_and_best_use_the_cross_modal_modality(cross_bundle):
    from explorer.core.tune import best

    path = cross_bundle[0]
    engine = Engine(Bundle.open(path), "all")
    alone = engine.evaluate(MatchConfig("single", ("cx",), (0.5,))).metrics
    both = engine.evaluate(MatchConfig("sum", ("tfidf", "cx"), (0.5,), weights=(0.5, 0.5),
                                       inb=(InbStage(0.5),))).metrics
    assert 0 < alone.f1 <= 1 and 0 < both.f1 <= 1
    tried = best(engine, engine.modalities, max_inb=1)
    with_cx = [t for t in tried if "cx" in t.config.modalities]
    assert {t.config.mode for t in with_cx} >= {"single", "sum", "union"}
    assert any(len(t.config.modalities) == 3 for t in with_cx)


def test_crossmodal_needs_images_and_a_name(tmp_path):
    csv = tmp_path / "train.csv"
    synthetic_table(n_groups=5).to_csv(csv, index=False)
    with pytest.raises(InputError, match="needs --images"):
        build(BuildOptions(csv=csv, out=tmp_path / "b", crossmodal=("cx:run/best.pt",),
                           progress=False))
    with pytest.raises(InputError, match="expected NAME:CHECKPOINT"):
        build(BuildOptions(csv=csv, out=tmp_path / "b", images=tmp_path,
                           crossmodal=("best.pt",), progress=False))
    assert not (tmp_path / "b").exists()


def test_the_learned_mode_weighs_a_modality_trained_on_its_folds(cross_bundle, capsys):
    """The heads were fitted on folds 2-4, where cx's similarities are in-sample: by
    default the classifier is trained with and without cx and the lower log loss on the
    select scope (fold 1, which the heads never fitted) decides, in one printed line;
    --in-sample drop / keep force it."""
    from explorer.core.pair_model import bundle_model, model_inputs
    from explorer.learn import learn

    path = cross_bundle[0]
    assert learn([str(path), "--name", "nocx", "--rounds", "20", "--in-sample", "drop"]) == 0
    assert "cx (trained on fold2,fold3,fold4): left out (--in-sample drop)" in \
        capsys.readouterr().out
    assert learn([str(path), "--name", "withcx", "--rounds", "20", "--in-sample",
                  "keep"]) == 0
    assert "kept (--in-sample keep)" in capsys.readouterr().out
    assert learn([str(path), "--name", "chosen", "--rounds", "20"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    losses = [float(x) for x in re.findall(r"log loss ([0-9.]+) with it, ([0-9.]+) without",
                                           line)[0]]
    bundle = Bundle.open(path)
    engine = Engine(bundle, "fold1")
    inputs = model_inputs(engine.graph.modalities)
    features = {n: bundle_model(bundle, n, inputs).features
                for n in ("nocx", "withcx", "chosen")}
    assert not any(f.startswith("cx.") for f in features["nocx"])
    assert any(f.startswith("cx.") for f in features["withcx"])
    # the choice is the lower select loss, and the model stored is that variant
    want = "withcx" if losses[0] < losses[1] else "nocx"
    assert ("kept" if want == "withcx" else "left out") in line
    assert features["chosen"] == features[want]
    for name in ("nocx", "withcx", "chosen"):
        ev = engine.evaluate(MatchConfig("learned", (f"learned:{name}",), (0.5,)))
        assert 0 < ev.metrics.f1 <= 1


def test_a_model_trained_on_another_table_is_not_in_sample(tmp_path, monkeypatch):
    csv, images, _ = with_pictures(tmp_path, 10)
    monkeypatch.setattr(crossmodal_towers, "load_towers", fake_towers)
    run = fake_run(tmp_path / "run", "0" * 64)
    out = build(BuildOptions(csv=csv, out=tmp_path / "b.bundle", images=images, k=5,
                             crossmodal=(f"cx:{run}",), progress=False, thumbnails=False))
    assert "trained_on" not in Bundle.open(out).manifest.modality("cx").params


def test_a_cross_fit_follows_the_plain_models_choice(cross_bundle, capsys, monkeypatch):
    from explorer import learn as learn_module
    from explorer.core import pair_model
    from explorer.core.pair_model import bundle_model, model_inputs
    from explorer.learn import learn

    # choosing trains the plain model both ways; fold 0's cross-fit model is the one
    # chosen, not a third training: 2 + 4 trainings in all
    calls = []
    real = pair_model.train_model
    monkeypatch.setattr(pair_model, "train_model",
                        lambda *a, **k: calls.append(k.get("held_out")) or real(*a, **k))
    monkeypatch.setattr(learn_module, "train_model", pair_model.train_model)
    assert learn([str(cross_bundle[0]), "--name", "xchosen", "--rounds", "20",
                  "--cross-fit"]) == 0
    assert "select-scope log loss" in capsys.readouterr().out
    # the two plain trainings (held out: fold 0, the default), then folds 1-4 only
    assert calls == [None, None, "fold1", "fold2", "fold3", "fold4"]

    path = cross_bundle[0]
    assert learn([str(path), "--name", "xcx", "--rounds", "20", "--cross-fit",
                  "--in-sample", "drop"]) == 0
    assert "left out (--in-sample drop)" in capsys.readouterr().out
    bundle = Bundle.open(path)
    inputs = model_inputs(Engine(bundle, "all").graph.modalities)
    rows = [int(bundle.scope_rows(f"fold{k}")[0]) for k in range(5)]
    for row in rows:  # every fold model, each without cx
        model = bundle_model(bundle, "xcx", inputs, row=row)
        assert model.features and not any(f.startswith("cx.") for f in model.features)


def test_blocks_of_postings_give_the_same_bundle(cross_bundle, tmp_path, monkeypatch):
    """The towers run a block of postings at a time (memory for one block): any block
    size writes the same rows, the same skipped picture (row 4, its block's second)."""
    from precompute import modalities

    path, text, image, present = cross_bundle
    root = path.parent
    monkeypatch.setattr(modalities, "CROSS_BLOCK_ROWS", 3)
    monkeypatch.setattr(crossmodal_towers, "load_towers", fake_towers)
    run = root / "run" / "best.pt"
    out = build(BuildOptions(csv=root / "train.csv", out=tmp_path / "b.bundle",
                             images=root / "img", k=10, crossmodal=(f"cx:{run}",),
                             progress=False, thumbnails=False))
    bundle = Bundle.open(out)
    np.testing.assert_array_equal(bundle.text_embeddings("cx"), text)
    np.testing.assert_array_equal(bundle.embeddings("cx"), image)
    np.testing.assert_array_equal(bundle.present("cx"), present)
    assert [s["row"] for s in bundle.manifest.modality("cx").params["skipped"]] == [4]
