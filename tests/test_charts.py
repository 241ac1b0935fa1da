"""The plot data: threshold curves agree with the engine, histograms and group-size tables
with hand-computed counts and means."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.bundle import Bundle
from explorer.core.charts import (
    default_grid,
    f1_by_group_size,
    f1_histogram,
    param_label,
    param_value,
    threshold_curve,
)
from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine
from explorer.core.sweep import with_param


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine(Bundle.open(tiny_bundle), "fold2")


# -- histogram ---------------------------------------------------------------------------
def test_histogram_hand_counts():
    f1 = np.array([0.0, 0.05, 0.1, 0.49, 0.5, 0.5, 0.99, 1.0, 1.0, np.nan])
    edges, counts = f1_histogram(f1, bins=4)
    np.testing.assert_allclose(edges, [0.0, 0.25, 0.5, 0.75, 1.0])
    # [0, .25): 0, .05, .1 | [.25, .5): .49 | [.5, .75): .5, .5 | [.75, 1]: .99, 1, 1
    assert counts.tolist() == [3, 1, 2, 3]


def test_histogram_perfect_scores_in_last_bin():
    edges, counts = f1_histogram(np.ones(7))
    assert len(edges) == 21 and len(counts) == 20
    assert counts[-1] == 7 and counts.sum() == 7


def test_histogram_rejects_no_bins():
    with pytest.raises(ValueError):
        f1_histogram(np.ones(3), bins=0)


# -- group size --------------------------------------------------------------------------
def test_group_size_buckets_hand_means():
    size = np.array([2, 2, 3, 5, 9, 10, 51, 60, 4])
    f1 = np.array([1.0, 0.5, 0.2, 0.4, 0.8, 0.3, 0.1, 0.5, 0.9])
    t = f1_by_group_size(f1, size)
    assert t.labels == ("2", "3", "4", "5-9", "10-19", "50+")  # 1 and 20-49 empty: left out
    assert t.n_queries.tolist() == [2, 1, 1, 2, 1, 2]
    np.testing.assert_allclose(t.mean_f1, [0.75, 0.2, 0.9, 0.6, 0.3, 0.3])
    assert len(t) == 6


def test_group_size_includes_singletons_and_drops_nan():
    t = f1_by_group_size(np.array([1.0, 0.0, np.nan, 0.5]), np.array([1, 1, 2, 20]))
    assert t.labels == ("1", "20-49")
    assert t.n_queries.tolist() == [2, 1]
    np.testing.assert_allclose(t.mean_f1, [0.5, 0.5])


def test_group_size_shape_mismatch():
    with pytest.raises(ValueError):
        f1_by_group_size(np.ones(3), np.ones(4, int))


def test_group_size_of_an_evaluation_counts_every_query(engine):
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (0.5,)))
    t = f1_by_group_size(ev.f1, ev.group_size)
    assert t.n_queries.sum() == engine.n
    weighted = (t.mean_f1 * t.n_queries).sum() / t.n_queries.sum()
    assert weighted == pytest.approx(ev.metrics.f1)


# -- threshold curve ---------------------------------------------------------------------
@pytest.mark.parametrize("current", [0.537, 0.3, 0.0, 1.0, 0.12345678, 1.2, -0.05])
def test_default_grid_is_uniform_through_the_current_value(current):
    g = default_grid(current)
    assert np.float32(current) in g
    # uniform to sweep's tolerance, so the sweep bins arithmetically
    assert np.allclose(np.diff(g), 0.01, rtol=1e-4, atol=0)
    assert min(0.0, current) <= g[0] < min(0.0, current) + 0.01
    assert max(1.0, current) - 0.01 < g[-1] <= max(1.0, current)


def test_default_grid_round_current_gives_the_round_grid():
    g = default_grid(0.3)
    assert len(g) == 101 and g[0] == 0 and g[-1] == 1
    np.testing.assert_array_equal(g, np.linspace(0, 1, 101).astype(np.float32))


@pytest.mark.parametrize("cfg,param", [
    (MatchConfig("single", ("tfidf",), (0.537,)), "threshold"),
    (MatchConfig("single", ("tfidf",), (0.5,), min2=(0.3,)), "threshold"),
    (MatchConfig("union", ("tfidf", "phash"), (0.6, 0.9)), "threshold:tfidf"),
    (MatchConfig("sum", ("tfidf", "phash"), (0.6,), min2=(0.4,),
                 inb=(InbStage(0.7, 0.5),)), "inb1.threshold"),
], ids=["single", "min2", "union", "inb"])
def test_curve_at_current_value_equals_evaluation(engine, cfg, param):
    c = threshold_curve(engine, cfg)
    assert c.param == param
    assert c.current == param_value(cfg, param)
    m = engine.evaluate(cfg).metrics
    f1, p, r = c.at(c.current)
    assert f1 == pytest.approx(m.f1, abs=2e-6)
    assert p == pytest.approx(m.precision, abs=2e-6)
    assert r == pytest.approx(m.recall, abs=2e-6)


def test_curve_best_is_the_f1_optimum(engine):
    cfg = MatchConfig("single", ("tfidf",), (0.5,))
    c = threshold_curve(engine, cfg)
    assert c.best_f1 == pytest.approx(c.f1.max())
    assert c.best_f1 >= c.at(c.current)[0]
    best = engine.evaluate(with_param(cfg, "threshold", c.best)).metrics
    assert best.f1 == pytest.approx(c.best_f1, abs=2e-6)
    # threshold 0 admits every candidate (TF-IDF cosines are >= 0): recall peaks there
    assert c.recall[0] == pytest.approx(c.recall.max())


def test_curve_given_param_and_values(engine):
    cfg = MatchConfig("single", ("tfidf",), (0.8,), min2=(0.3,))
    c = threshold_curve(engine, cfg, "min2", np.array([0.6, 0.2, 0.4, 0.4]))
    assert c.param == "min2" and c.current == pytest.approx(0.3)
    np.testing.assert_allclose(c.values, [0.2, 0.4, 0.6], rtol=1e-6)  # sorted, unique
    for v, f in zip(c.values, c.f1, strict=True):
        m = engine.evaluate(with_param(cfg, "min2", float(v))).metrics
        assert f == pytest.approx(m.f1, abs=2e-6)


def test_curve_rejects_unknown_param(engine):
    with pytest.raises(ValueError):
        threshold_curve(engine, MatchConfig("single", ("tfidf",), (0.5,)), "min2")


def test_histogram_values_on_edges_go_up():
    # 0.6 * 5 and 0.3 * 10 are not exact in floating point; both are edges exactly
    _, counts = f1_histogram(np.array([0.6, 0.4, 0.2]), bins=5)
    assert counts.tolist() == [0, 1, 1, 1, 0]
    _, counts = f1_histogram(np.array([0.3, 0.7, 2 / 3]), bins=10)
    assert counts[3] == 1 and counts[7] == 1 and counts[6] == 1


# -- parameter names in words ---------------------------------------------------------------
SINGLE = MatchConfig("single", ("tfidf",), (0.5,), min2=(0.4,))
SUM = MatchConfig("sum", ("tfidf", "phash"), (0.6,), inb=(InbStage(0.6), InbStage(0.7, 0.5)))
PROB = MatchConfig("prob", ("tfidf", "phash"), (0.6,))
UNION = MatchConfig("union", ("tfidf", "phash"), (0.5, 0.9), min2=(0.4, 0.8))


@pytest.mark.parametrize(("param", "cfg", "words"), [
    ("threshold", SINGLE, "tfidf threshold"),
    ("min2", SINGLE, "tfidf Min2 threshold"),
    ("threshold", SUM, "sum fusion threshold"),
    ("threshold", PROB, "prob fusion threshold"),
    ("inb2.threshold", SUM, "INB iteration 2 threshold"),
    ("inb2.min2", SUM, "INB iteration 2 Min2 threshold"),
    ("threshold:phash", UNION, "phash threshold"),
    ("min2:tfidf", UNION, "tfidf Min2 threshold"),
    ("min2", None, "Min2 threshold"),
    ("threshold", None, "threshold"),
    ("inb3.threshold", None, "INB iteration 3 threshold"),
    ("weights", None, "weights"),  # not a parameter it knows: as it is
    ("inbx.threshold", None, "inbx.threshold"),
])
def test_param_label_in_words(param, cfg, words):
    assert param_label(param, cfg) == words


def test_curve_carries_its_parameter_in_words(engine):
    cfg = MatchConfig("single", ("tfidf",), (0.5,), inb=(InbStage(0.6), InbStage(0.7)))
    assert threshold_curve(engine, cfg).label == "INB iteration 2 threshold"
    assert threshold_curve(engine, UNION, "threshold:phash").label == "phash threshold"
