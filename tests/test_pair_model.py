"""The learned pair classifier: trained on train scopes and early-stopped on a selection
scope, never fold 0; saved as LightGBM text + a JSON record and loaded back to identical
probabilities; a model of another dataset, needing features a scope lacks, or tampered
with is refused in one line."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError
from explorer.core.engine import Engine
from explorer.core.pair_features import pair_features
from explorer.core.pair_model import load_model, train_model
from explorer.core.scope_data import ScopeData

SHA = "a" * 64


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Bundle:
    return Bundle.open(tiny_bundle)


@pytest.fixture(scope="module")
def model(bundle):
    return train_model([Engine(bundle, "fold2"), Engine(bundle, "fold3")],
                       Engine(bundle, "fold1"), SHA, rounds=300, patience=20)


def test_the_classifier_tells_pairs_of_one_product_apart(bundle, model):
    engine = Engine(bundle, "fold4")  # never seen
    f = pair_features(engine)
    p = model.probabilities(f)
    truth = engine.true_mask(engine.graph.cand)[f.rows, f.cols]
    assert p.shape == truth.shape and ((p >= 0) & (p <= 1)).all()
    # ranks true pairs above false ones far better than chance (AUC by pair counting)
    order = np.argsort(p)
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos, neg = truth.sum(), (~truth).sum()
    auc = (ranks[truth].sum() - pos * (pos + 1) / 2) / (pos * neg)
    assert auc > 0.9
    assert model.train_scopes == ("fold2", "fold3") and model.select_scope == "fold1"
    assert 1 <= model.best_iteration <= 300


def test_save_then_load_gives_identical_probabilities(bundle, model, tmp_path):
    model.save(tmp_path)
    f = pair_features(Engine(bundle, "fold4"))
    again = load_model(tmp_path, SHA, f.names)
    np.testing.assert_array_equal(again.probabilities(f), model.probabilities(f))
    assert again.features == model.features and again.train_scopes == model.train_scopes


def test_fold0_and_scopes_without_labels_or_positives_are_refused(bundle):
    with pytest.raises(ConfigError, match="fold0 is the test fold"):
        train_model([Engine(bundle, "fold0")], Engine(bundle, "fold1"), SHA)
    with pytest.raises(ConfigError, match="fold0 is the test fold"):
        train_model([Engine(bundle, "fold2")], Engine(bundle, "fold0"), SHA)
    engine = Engine(bundle, "fold2")
    alone = ScopeData(engine.graph, np.arange(engine.n))  # every posting its own product
    with pytest.raises(ConfigError, match="no candidate pair of one product"):
        train_model([Engine.from_data(alone)], Engine(bundle, "fold1"), SHA)
    unlabelled = ScopeData(engine.graph, None)
    with pytest.raises(ConfigError, match="learning needs labels"):
        train_model([Engine.from_data(unlabelled)], Engine(bundle, "fold1"), SHA)


def test_foreign_incomplete_or_tampered_models_are_refused(bundle, model, tmp_path):
    model.save(tmp_path)
    names = pair_features(Engine(bundle, "fold4")).names
    with pytest.raises(ConfigError, match="trained on another dataset"):
        load_model(tmp_path, "b" * 64, names)
    with pytest.raises(ConfigError, match="needs feature"):
        load_model(tmp_path, SHA, tuple(n for n in names if not n.startswith("phash.")))
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "best_iteration": "many"}))
    with pytest.raises(ConfigError, match="best_iteration"):
        load_model(tmp_path, SHA, names)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    text = (tmp_path / "model.txt").read_text()
    for broken in ("import os; os.system('x')\n", text[: len(text) // 3]):
        (tmp_path / "model.txt").write_text(broken)
        with pytest.raises(ConfigError, match="changed since it was saved"):
            load_model(tmp_path, SHA, names)
        # the record rewritten to match: LightGBM's reader (in a child) still refuses it,
        # and this process survives a file that would abort it
        digest = hashlib.sha256(broken.encode()).hexdigest()
        (tmp_path / "model.json").write_text(json.dumps({**meta, "model_sha256": digest}))
        with pytest.raises(ConfigError, match="not a LightGBM model"):
            load_model(tmp_path, SHA, names)


def test_a_lightgbm_that_cannot_load_is_one_line(bundle, monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import raises ImportError
    with pytest.raises(ConfigError, match=r"LightGBM cannot be loaded.*libgomp1"):
        train_model([Engine(bundle, "fold2")], Engine(bundle, "fold1"), SHA)
    with pytest.raises(ConfigError, match="LightGBM cannot be loaded"):
        load_model(tmp_path, SHA, ())


def test_the_blended_similarity_feature_is_one_inb_step_of_the_modality(bundle):
    """`m.blend_sim` at a pair of m's own list equals the single-modality INB stage's
    similarity there (same blend, same pair); elsewhere it is the same blended space."""
    from explorer.core.config import InbStage, MatchConfig
    from explorer.core.pair_features import with_blended

    engine = Engine(bundle, "fold2")
    blended = engine.blended_sims("tfidf", 0.4)
    assert engine.blended_sims("tfidf", 0.4) is blended  # once per scope
    st = engine.stage(MatchConfig("single", ("tfidf",), (0.4,), inb=(InbStage(0.5),)))
    own = st.cand >= 0
    g = engine.graph
    col = {(q, int(c)): k for q in range(g.n) for k, c in enumerate(g.cand[q]) if c >= 0}
    got = [blended[q, col[(q, int(st.cand[q, j]))]] for q, j in zip(*np.nonzero(own), strict=True)]
    np.testing.assert_allclose(got, st.sims["tfidf"][own], rtol=1e-5, atol=1e-6)
    f = with_blended(engine, pair_features(engine), {"tfidf": 0.4})
    assert f.names[-1] == "tfidf.blend_sim"
    np.testing.assert_array_equal(f.column("tfidf.blend_sim"), blended[f.rows, f.cols])


def test_a_model_with_the_blended_feature_saves_its_thresholds(bundle, tmp_path):
    from explorer.core.pair_features import with_blended

    blend = {"tfidf": 0.4, "phash": 0.8}
    model = train_model([Engine(bundle, "fold2")], Engine(bundle, "fold1"), SHA,
                        rounds=30, blend=blend)
    assert "tfidf.blend_sim" in model.features and "phash.blend_sim" in model.features
    model.save(tmp_path)
    engine = Engine(bundle, "fold4")
    f = with_blended(engine, pair_features(engine), blend)
    again = load_model(tmp_path, SHA, f.names)
    assert again.blend == blend
    np.testing.assert_array_equal(again.probabilities(f), model.probabilities(f))
    meta = json.loads((tmp_path / "model.json").read_text())
    for bad in ({"tfidf": float("nan")}, {"tfidf": "0.4"}, [0.4], {"tfidf": 3}):
        (tmp_path / "model.json").write_text(json.dumps({**meta, "blend": bad}))
        with pytest.raises(ConfigError, match="field blend"):
            load_model(tmp_path, SHA, f.names)


def test_a_cross_fit_fold_model_never_reads_its_own_fold_and_may_read_fold0(bundle):
    """`held_out` (explorer learn --cross-fit) replaces fold 0 as the scope never read; a
    shared `cache` computes each scope's features once and trains the same model."""
    with pytest.raises(ConfigError, match="fold3 is this model's held-out fold"):
        train_model([Engine(bundle, "fold2")], Engine(bundle, "fold3"), SHA, rounds=5,
                    held_out="fold3")
    cache: dict = {}
    engines = [Engine(bundle, "fold0"), Engine(bundle, "fold4")]
    model = train_model(engines, Engine(bundle, "fold1"), SHA, rounds=20, held_out="fold3",
                        cache=cache)
    assert model.train_scopes == ("fold0", "fold4") and sorted(cache) == ["fold0", "fold1",
                                                                          "fold4"]
    again = train_model(engines, Engine(bundle, "fold1"), SHA, rounds=20, held_out="fold3",
                        cache=cache)
    f = pair_features(Engine(bundle, "fold3"))
    np.testing.assert_array_equal(again.probabilities(f), model.probabilities(f))
