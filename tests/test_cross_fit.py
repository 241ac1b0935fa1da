"""`explorer learn --cross-fit`: one model per fold k, never reading fold k; the learned mode
scores each query by the model of its own fold (on scope all every row out of fold, on
foldK model k only), so the label audit's evidence is out-of-fold on the whole table; the
folder is replaced only with --force and only when it holds nothing but what learn
wrote."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from explorer.cli import main
from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError, MatchConfig
from explorer.core.cross_fit import CrossFitModel, fold_plan
from explorer.core.engine import Engine
from explorer.core.pair_features import pair_features
from explorer.core.pair_model import (
    bundle_model,
    bundle_models,
    bundle_scorer,
    learned_modalities,
    load_cross_fit,
    model_inputs,
)

ROUNDS = "30"
FOLDS = [f"fold{k}" for k in range(5)]


def learn(*argv: object) -> int:
    return main(["learn", *map(str, argv)])


@pytest.fixture(scope="module")
def crossed(tiny_bundle, tmp_path_factory) -> Path:
    """A copy of the tiny bundle with a cross-fitted model `x` and the plain default
    model `pairs` (same rounds and seed)."""
    dst = tmp_path_factory.mktemp("xfit") / "x.bundle"
    shutil.copytree(tiny_bundle, dst)
    assert learn(dst, "--cross-fit", "--name", "x", "--rounds", ROUNDS) == 0
    assert learn(dst, "--rounds", ROUNDS) == 0
    return dst


@pytest.fixture(scope="module")
def fold_models(crossed) -> CrossFitModel:
    """The cross-fitted model's fold models, loaded once (one parsing child for all)."""
    return load_cross_fit(crossed / "models" / "x",
                          Bundle.open(crossed).manifest.dataset["sha256"],
                          model_inputs(("tfidf", "phash")))


def test_the_plan_holds_out_each_fold_and_stops_on_the_next():
    plan = fold_plan(5)
    assert plan[0] == ("fold0", ["fold2", "fold3", "fold4"], "fold1")  # the plain model's
    assert plan[4] == ("fold4", ["fold1", "fold2", "fold3"], "fold0")
    for held, train, select in plan:
        assert held not in (*train, select) and select not in train
        assert sorted([held, select, *train]) == FOLDS
    with pytest.raises(ConfigError, match="at least 3 folds"):
        fold_plan(2)


def test_one_model_per_fold_none_reads_its_own(crossed, fold_models):
    folder = crossed / "models" / "x"
    assert sorted(p.name for p in folder.iterdir()) == ["cross_fit.json", *FOLDS]
    assert json.loads((folder / "cross_fit.json").read_text())["held_out"] == FOLDS
    for held, train, select in fold_plan(5):
        assert sorted(p.name for p in (folder / held).iterdir()) == ["model.json",
                                                                      "model.txt"]
        m = fold_models.models[held]
        assert m.train_scopes == tuple(train) and m.select_scope == select
    assert sorted(p.name for p in (crossed / "models").iterdir()) == ["pairs", "x"]
    bundle = Bundle.open(crossed)
    assert bundle_models(bundle) == ["pairs", "x"]
    assert learned_modalities(bundle) == ["learned:pairs", "learned:x"]
    assert isinstance(bundle_scorer(bundle, "x", model_inputs(("tfidf", "phash"))),
                      CrossFitModel)


def test_on_scope_all_each_row_is_scored_by_the_model_of_its_fold(crossed, fold_models):
    bundle = Bundle.open(crossed)
    engine = Engine(bundle, "all")
    score = engine.evaluate(MatchConfig("learned", ("learned:x",), (0.5,))).stage.score
    f = pair_features(engine)
    fold = bundle.folds[engine.rows][f.rows]
    probs = [fold_models.models[f"fold{k}"].probabilities(f) for k in range(5)]
    got = score[f.rows, f.cols]
    for k in range(5):
        mine = fold == k
        assert mine.any()
        np.testing.assert_array_equal(got[mine], probs[k][mine])
        # the test can fail: every other fold's model scores these rows differently
        for j in set(range(5)) - {k}:
            assert not np.array_equal(probs[j][mine], probs[k][mine])
    assert (score[:, 0] == 1).all() and np.isneginf(score[engine.graph.cand < 0]).all()


def test_on_fold_k_only_model_k_scores_and_model_0_is_the_plain_model(crossed, fold_models,
                                                                      capsys):
    bundle = Bundle.open(crossed)
    for k in (0, 3):
        engine = Engine(bundle, f"fold{k}")
        f = pair_features(engine)
        score = engine.evaluate(MatchConfig("learned", ("learned:x",), (0.5,))).stage.score
        np.testing.assert_array_equal(score[f.rows, f.cols],
                                      fold_models.models[f"fold{k}"].probabilities(f))
    # model 0 was trained as the default `explorer learn` trains: fold-0 figures agree
    capsys.readouterr()
    f1 = {}
    for name in ("x", "pairs"):
        assert main(["evaluate", str(crossed), "--scope", "fold0", "--mode",
                     f"learned:{name}", "--threshold", "0.5", "--json"]) == 0
        f1[name] = json.loads(capsys.readouterr().out)["metrics"]["f1"]
    assert f1["x"] == f1["pairs"]


def test_a_cross_fitted_model_is_picked_per_row_and_never_whole(crossed):
    bundle = Bundle.open(crossed)
    have = model_inputs(("tfidf", "phash"))
    with pytest.raises(ConfigError, match="cross-fitted"):
        bundle_model(bundle, "x", have)
    row = int(np.flatnonzero(bundle.folds == 2)[0])
    assert bundle_model(bundle, "x", have, row=row).train_scopes == ("fold0", "fold1", "fold4")
    assert bundle_model(bundle, "pairs", have, row=row).train_scopes == ("fold2", "fold3",
                                                                         "fold4")


def test_the_audit_calls_cross_fitted_evidence_out_of_fold_on_every_scope(crossed):
    from explorer.core.audit import audit

    bundle = Bundle.open(crossed)
    for scope in ("all", "fold0", "fold2"):
        engine = Engine(bundle, scope)
        for name, in_fold in (("x", False), ("pairs", scope != "fold0")):
            ev = engine.evaluate(MatchConfig("learned", (f"learned:{name}",), (0.5,)))
            found = audit(engine, ev)
            if scope == "all":
                assert len(found)  # the synthetic table has pack-size near-duplicates
            assert (found["in_fold"] == in_fold).all(), (scope, name)


def test_a_fold_model_that_read_its_own_fold_is_refused(crossed, tmp_path):
    dst = tmp_path / "t.bundle"
    shutil.copytree(crossed, dst)
    meta_path = dst / "models" / "x" / "fold1" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "train": [*meta["train"], "fold1"]}))
    with pytest.raises(ConfigError, match="fold1: this fold's model read fold1"):
        load_cross_fit(dst / "models" / "x", meta["dataset_sha256"],
                       model_inputs(("tfidf", "phash")))
    meta_path.write_text(json.dumps(meta))
    # one child parses every fold's text: the one LightGBM cannot read is named
    text = dst / "models" / "x" / "fold3" / "model.txt"
    text.write_text("tree\nnot a model\n")
    meta3 = json.loads((text.parent / "model.json").read_text())
    digest = hashlib.sha256(text.read_bytes()).hexdigest()
    (text.parent / "model.json").write_text(json.dumps({**meta3, "model_sha256": digest}))
    with pytest.raises(ConfigError, match=r"fold3/model\.txt: not a LightGBM model"):
        load_cross_fit(dst / "models" / "x", meta["dataset_sha256"],
                       model_inputs(("tfidf", "phash")))
    text.unlink()  # incomplete: not listed
    (dst / "models" / "pairs" / "cross_fit.json").write_text("{}")  # malformed: neither
    assert bundle_models(Bundle.open(dst)) == []


def test_force_replaces_only_what_learn_wrote(crossed, tmp_path, capsys, monkeypatch):
    from explorer import learn as learn_module

    dst = tmp_path / "f.bundle"
    shutil.copytree(crossed, dst)
    have = load_cross_fit(dst / "models" / "x", Bundle.open(dst).manifest.dataset["sha256"],
                          model_inputs(("tfidf", "phash")))
    monkeypatch.setattr(learn_module, "train_cross_fit", lambda *a, **k: have)  # no retraining
    capsys.readouterr()
    assert learn(dst, "--cross-fit", "--name", "x") == 2
    assert "give --force" in capsys.readouterr().err
    assert learn(dst, "--cross-fit", "--name", "x", "--train", "fold2") == 2
    assert "drop --train" in capsys.readouterr().err
    before = (dst / "models" / "x" / "fold1" / "model.json").stat().st_ino
    assert learn(dst, "--cross-fit", "--name", "x", "--force") == 0
    assert (dst / "models" / "x" / "fold1" / "model.json").stat().st_ino != before
    # a plain model and a cross-fitted one replace each other (both are learn's)
    assert learn(dst, "--cross-fit", "--name", "pairs", "--force") == 0
    assert (dst / "models" / "pairs" / "cross_fit.json").is_file()
    assert not (dst / "models" / "pairs" / "model.txt").exists()
    notes = dst / "models" / "x" / "fold2" / "notes.txt"
    notes.write_text("mine")
    capsys.readouterr()
    assert learn(dst, "--cross-fit", "--name", "x", "--force") == 2
    err = capsys.readouterr().err
    assert "did not write" in err and len(err.strip().splitlines()) == 1
    assert notes.read_text() == "mine"
    assert sorted(p.name for p in notes.parent.iterdir()) == ["model.json", "model.txt",
                                                               "notes.txt"]
    notes.unlink()
    (dst / "models" / "x" / "fold5").symlink_to(tmp_path)
    assert learn(dst, "--cross-fit", "--name", "x", "--force") == 2
    assert "did not write" in capsys.readouterr().err
    assert sorted(p.name for p in (dst / "models").iterdir()) == ["pairs", "x"]  # no leftovers


def test_a_file_added_to_a_fold_while_training_is_never_deleted(crossed, tmp_path,
                                                                capsys, monkeypatch):
    from explorer import learn as learn_module

    dst = tmp_path / "g.bundle"
    shutil.copytree(crossed, dst)
    have = load_cross_fit(dst / "models" / "x", Bundle.open(dst).manifest.dataset["sha256"],
                          model_inputs(("tfidf", "phash")))
    notes = dst / "models" / "x" / "fold4" / "notes.txt"

    def train_then_meddle(*a, **k):
        notes.write_text("mine")
        return have

    monkeypatch.setattr(learn_module, "train_cross_fit", train_then_meddle)
    assert learn(dst, "--cross-fit", "--name", "x", "--force") == 2
    assert "did not write" in capsys.readouterr().err
    assert notes.read_text() == "mine"
    assert sorted(p.name for p in (dst / "models").iterdir()) == ["pairs", "x"]


def test_the_reasons_of_a_pair_come_from_the_model_that_scored_it(crossed):
    """Why, in the app: the contributions of a cross-fitted model's pair add up to the
    probability the learned mode thresholds, query by query in every fold."""
    from explorer.core.pair_reasons import pair_reasons

    bundle = Bundle.open(crossed)
    engine = Engine(bundle, "all")
    score = engine.evaluate(MatchConfig("learned", ("learned:x",), (0.5,))).stage.score
    folds = bundle.folds[engine.rows]
    for k in range(5):
        query = int(np.flatnonzero(folds == k)[0])
        why = pair_reasons(engine, "x", query)
        assert why
        cols = {int(c): j for j, c in enumerate(engine.graph.cand[query])}
        for cand, r in why.items():
            assert r.probability == pytest.approx(float(score[query, cols[cand]]), abs=1e-5)
