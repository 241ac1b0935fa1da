"""An engine built from a scope's data (graph, labels, unit conflicts, spaces) without a
bundle computes what the bundle's engine computes; what it lacks is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError, InbStage, MatchConfig
from explorer.core.engine import Engine
from explorer.core.graph import ScopeGraph
from explorer.core.scope_data import ScopeData, scope_data

CONFIGS = [MatchConfig("single", ("tfidf",), (0.5,), min2=(0.3,)),
           MatchConfig("sum", ("tfidf", "phash"), (0.6,), units=True),
           MatchConfig("union", ("tfidf", "phash"), (0.6, 0.9)),
           MatchConfig("prob", ("tfidf", "phash"), (0.8,), inb=(InbStage(0.7),))]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.label)
def test_an_engine_from_a_bundles_scope_data_equals_the_bundles(tiny_bundle, cfg):
    bundle = Bundle.open(tiny_bundle)
    want = Engine(bundle, "fold1").evaluate(cfg)
    engine = Engine.from_data(scope_data(bundle, "fold1"))
    assert engine.bundle is None
    got = engine.evaluate(cfg)
    np.testing.assert_array_equal(got.pred, want.pred)
    np.testing.assert_array_equal(got.f1, want.f1)


def _hand_graph() -> ScopeData:
    """Postings 0, 1 of one product, 2, 3 of another; tfidf lists hold each posting and
    its best other: 0-1 at 0.9, 2-3 at 0.4, 1-2 at 0.6."""
    cand = np.array([[0, 1, -1], [1, 0, 2], [2, 1, 3], [3, 2, -1]], np.int32)
    sim = np.array([[1, 0.9, -np.inf], [1, 0.9, 0.6], [1, 0.6, 0.4], [1, 0.4, -np.inf]],
                   np.float32)
    topk = np.where(cand >= 0, 1, 0).astype(np.uint8)
    graph = ScopeGraph("hand", np.arange(4), cand, topk, {"tfidf": sim}, ("tfidf",))
    return ScopeData(graph, np.array([7, 7, 9, 9]))


def test_a_hand_built_scope_by_hand():
    engine = Engine.from_data(_hand_graph())
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (0.5,)))
    # 0: {0, 1} -> F1 1; 1: {1, 0, 2} vs {0, 1} -> 2*2/(2+3); 2: {2, 1} vs {2, 3} -> 2*1/4;
    # 3: {3} vs {2, 3} -> 2*1/3
    np.testing.assert_allclose(ev.f1, [1.0, 0.8, 0.5, 2 / 3])
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (0.5,), min2=(0.3,)))
    assert ev.f1[3] == pytest.approx(1.0)  # Min2 gives the lonely posting 3 its best, 2


def test_what_a_scope_without_embeddings_or_titles_cannot_do_is_one_line():
    engine = Engine.from_data(_hand_graph())
    with pytest.raises(ConfigError, match="no embeddings: INB is not available"):
        engine.evaluate(MatchConfig("single", ("tfidf",), (0.5,), inb=(InbStage(0.6),)))
    with pytest.raises(ConfigError, match="unit filter is not available"):
        engine.evaluate(MatchConfig("single", ("tfidf",), (0.5,), units=True))
    data = _hand_graph()
    data.labels = np.array([1, 2, 3])
    with pytest.raises(ValueError, match="3 labels for 4 rows"):
        Engine.from_data(data)


def _probability_scope() -> ScopeData:
    """Four postings whose only score is a derived one (a classifier's probability): A (0)
    is matched to B (1) at 0.9 and C (2) at 0.8; B and C score each other 0.3; D (3) is
    alone. Labels: A, B, C one product, D another."""
    cand = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1], [3, -1, -1]], np.int32)
    prob = np.array([[1, 0.9, 0.8], [1, 0.9, 0.3], [1, 0.8, 0.3], [1, -np.inf, -np.inf]],
                    np.float32)
    graph = ScopeGraph("hand", np.arange(4), cand, np.ones_like(cand, np.uint8),
                       {"tfidf": prob}, ("tfidf",))
    return ScopeData(graph, np.array([5, 5, 5, 6]), derive=lambda engine, name: prob)


def test_inb_over_a_classifiers_predicted_neighbours_by_hand():
    engine = Engine.from_data(_probability_scope())
    cfg = MatchConfig("learned", ("learned:m",), (0.5,))
    assert engine.evaluate(cfg).pred[1, 2] == np.False_  # B-C at 0.3: not predicted
    # one step over the identity space: A' = norm(A + 0.9 B + 0.8 C), B' = norm(B + 0.9 A),
    # C' = norm(C + 0.8 A), D' = D; B'.C' = 0.9 * 0.8 / (|B + 0.9 A| |C + 0.8 A|)
    st = engine.stage(cfg.replace(inb=(InbStage(0.3),)))
    a, b, c = np.array([1, .9, .8]), np.array([.9, 1, 0]), np.array([.8, 0, 1])
    a, b, c = (v / np.linalg.norm(v) for v in (a, b, c))
    np.testing.assert_allclose(st.sims["learned:m"][1, 2], b @ c, rtol=1e-6)
    np.testing.assert_allclose(st.sims["learned:m"][0, 1:], [a @ b, a @ c], rtol=1e-6)
    assert b @ c == pytest.approx(0.72 / np.sqrt(1.81 * 1.64))
    ev = engine.evaluate(cfg.replace(inb=(InbStage(0.3),)))
    assert ev.pred[1, 2] and ev.pred[2, 2]  # the blend joins B and C through A
    np.testing.assert_allclose(ev.f1, [1, 1, 1, 1])
