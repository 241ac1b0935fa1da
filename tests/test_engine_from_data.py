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
