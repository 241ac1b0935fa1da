"""Sweeps equal repeated evaluations; tuning finds the sweep's optimum; error cases,
provenance and exports agree with the evaluation they describe."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core import sweep as sweep_module
from explorer.core.bundle import Bundle
from explorer.core.cases import false_positives, missed_pairs, worst_queries
from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine
from explorer.core.explain import explain_query
from explorer.core.export import metrics_frame, predictions_frame
from explorer.core.sweep import sweep, with_param
from explorer.core.tune import best, threshold_min2_grid, tune

VALUES = np.round(np.linspace(0.05, 1.0, 39), 4)


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine(Bundle.open(tiny_bundle), "fold2")


SWEEPS = [
    (MatchConfig("single", ("tfidf",), (0.5,)), "threshold"),
    (MatchConfig("single", ("tfidf",), (0.5,), min2=(0.3,)), "threshold"),
    (MatchConfig("single", ("tfidf",), (0.8,), min2=(0.3,)), "min2"),
    (MatchConfig("sum", ("tfidf", "phash"), (0.7,), min2=(0.5,), units=True), "threshold"),
    (MatchConfig("prob", ("tfidf", "phash"), (0.9,)), "threshold"),
    (MatchConfig("union", ("tfidf", "phash"), (0.6, 0.9), min2=(0.4, 0.8)), "threshold:phash"),
    (MatchConfig("union", ("tfidf", "phash"), (0.6, 0.9), min2=(0.4, 0.8)), "min2:tfidf"),
    (MatchConfig("single", ("tfidf",), (0.5,), inb=(InbStage(0.7, None),)), "inb1.threshold"),
    (MatchConfig("sum", ("tfidf", "phash"), (0.6,), min2=(0.4,),
                 inb=(InbStage(0.7, 0.5), InbStage(0.8, 0.6))), "inb1.threshold"),
    (MatchConfig("sum", ("tfidf", "phash"), (0.6,), min2=(0.4,),
                 inb=(InbStage(0.7, 0.5), InbStage(0.8, 0.6))), "inb2.min2"),
]


@pytest.mark.parametrize("cfg,param", SWEEPS, ids=lambda x: str(x) if isinstance(x, str)
                         else x.label)
def test_sweep_equals_repeated_evaluation(engine, cfg, param):
    s = sweep(engine, cfg, param, VALUES)
    for k, v in enumerate(VALUES):
        m = engine.evaluate(with_param(cfg, param, float(v))).metrics
        assert s.f1[k] == pytest.approx(m.f1, abs=2e-6), v
        assert s.precision[k] == pytest.approx(m.precision, abs=2e-6), v
        assert s.recall[k] == pytest.approx(m.recall, abs=2e-6), v


@pytest.mark.parametrize("cfg,param", [c for c in SWEEPS if c[1].startswith("threshold")],
                         ids=lambda x: str(x) if isinstance(x, str) else x.label)
def test_sweep_in_small_blocks_on_threads_equals_evaluation(tiny_bundle, monkeypatch, cfg,
                                                             param):
    """Events in blocks of 7 rows and binned in chunks of 13, on two threads: the same
    means as evaluating each value (a block boundary or a thread must change nothing)."""
    monkeypatch.setattr(sweep_module, "EVENT_BLOCK_ROWS", 7)
    monkeypatch.setattr(sweep_module, "SWEEP_CHUNK", 13)
    monkeypatch.setenv("EXPLORER_THREADS", "2")
    fresh = Engine(Bundle.open(tiny_bundle), "fold2")  # no events cached with other blocks
    s = sweep(fresh, cfg, param, VALUES)
    for k, v in enumerate(VALUES):
        m = fresh.evaluate(with_param(cfg, param, float(v))).metrics
        assert (s.f1[k], s.precision[k], s.recall[k]) == pytest.approx(
            (m.f1, m.precision, m.recall), abs=2e-6), v


def test_sweep_accepts_unsorted_values(engine):
    cfg = MatchConfig("single", ("tfidf",), (0.5,))
    values = VALUES[::-1].copy()
    np.random.default_rng(0).shuffle(values)
    a = sweep(engine, cfg, "threshold", values)
    b = sweep(engine, cfg, "threshold", np.sort(values))
    np.testing.assert_allclose(a.f1[np.argsort(values)], b.f1)


def test_threshold_min2_grid_matches_evaluation(engine):
    cfg = MatchConfig("single", ("tfidf",), (0.5,), min2=(0.3,))
    st = engine.stage(cfg)
    ts, ms = np.array([0.4, 0.6, 0.9]), np.array([0.1, 0.3, 0.5])
    grid = threshold_min2_grid(st, engine.group_size, ts, ms)
    for i, t in enumerate(ts):
        for j, m in enumerate(ms):
            f = engine.evaluate(cfg.replace(thresholds=(t,), min2=(m,))).metrics.f1
            assert grid[i, j] == pytest.approx(f, abs=2e-6)


def test_tune_reaches_the_grid_optimum(engine):
    """Tuning (which searches with sweeps) finds the best F1 of a 0.001 grid, found here by
    evaluating every grid value (not by a sweep, the tuner's own code path)."""
    cfg = tune(engine, MatchConfig("single", ("tfidf",), (0.5,)))
    grid = np.round(np.arange(0, 1.0001, 0.001), 4)
    best_f1 = max(engine.evaluate(cfg.replace(thresholds=(float(t),))).metrics.f1
                  for t in grid)
    assert engine.evaluate(cfg).metrics.f1 >= best_f1 - 1e-3


def test_tune_keeps_fixed_values(engine):
    cfg = MatchConfig("single", ("tfidf",), (0.77,), min2=(0.2,), inb=(InbStage(0.5),))
    out = tune(engine, cfg, fixed={"threshold"})
    assert out.thresholds == (0.77,)
    assert out.min2 != (0.2,) or out.inb[0].threshold != 0.5


def test_best_beats_each_single_modality(engine):
    results = best(engine, ["tfidf", "phash"], max_inb=1)
    top = results[0].f1
    for m in ("tfidf", "phash"):
        single = tune(engine, MatchConfig("single", (m,), (0.5,)))
        assert top >= engine.evaluate(single).metrics.f1 - 1e-12
    assert [r.f1 for r in results] == sorted((r.f1 for r in results), reverse=True)


@pytest.fixture(scope="module")
def evaluation(engine):
    return engine.evaluate(MatchConfig("sum", ("tfidf", "phash"), (0.62,), min2=(0.4,),
                                       units=True))


def test_error_cases_agree_with_evaluation(engine, evaluation):
    ev = evaluation
    worst = worst_queries(engine, ev, 10)
    assert list(worst["f1"]) == sorted(worst["f1"])
    assert worst["f1"].iloc[0] == pytest.approx(ev.f1.min())
    labels = engine.labels
    fps = false_positives(engine, ev, 20)
    assert (labels[fps["row"]] != labels[fps["neighbour"]]).all()
    assert list(fps["score"]) == sorted(fps["score"], reverse=True)
    q, c = np.nonzero(ev.pred & ~ev.stage.true)
    nb = ev.stage.cand[q, c]
    unordered = set(zip(np.minimum(q, nb).tolist(), np.maximum(q, nb).tolist(), strict=True))
    assert len(fps) == min(20, len(unordered))
    missed = missed_pairs(engine, ev, 20)
    assert (labels[missed["row"]] == labels[missed["neighbour"]]).all()
    for r, nb in zip(missed["row"], missed["neighbour"], strict=True):
        assert nb not in set(ev.stage.cand[r][ev.pred[r]])


def test_false_positives_list_one_sided_pairs_once(tiny_bundle):
    """Candidate lists are directed and Min2 acts per query: a pair can be predicted from
    one side only, and from the higher row; it is listed, once."""
    engine = Engine(Bundle.open(tiny_bundle), "all")
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (0.3,), min2=(0.1,)))
    q, c = np.nonzero(ev.pred & ~ev.stage.true)
    nb = ev.stage.cand[q, c]
    directed = set(zip(q.tolist(), nb.tolist(), strict=True))
    assert any(a > b and (b, a) not in directed for a, b in directed)  # the case exists
    every = false_positives(engine, ev, len(q))
    listed = [(min(a, b), max(a, b)) for a, b in zip(every["row"], every["neighbour"],
                                                                  strict=True)]
    assert len(listed) == len(set(listed))
    assert set(listed) == {(min(a, b), max(a, b)) for a, b in directed}
    assert list(every["score"]) == sorted(every["score"], reverse=True)


def test_explain_query_accounts_for_every_true_match(engine, evaluation):
    ev = evaluation
    for q in range(0, engine.n, 5):
        table = explain_query(engine, ev, q, near_misses=3)
        assert table["row"].iloc[0] == q and table["status"].iloc[0] == "query"
        predicted = set(ev.stage.cand[q][ev.pred[q]])
        assert set(table.loc[table.status.isin(["query", "TP", "FP"]), "row"]) == predicted
        true = set(np.flatnonzero(engine.labels == engine.labels[q]))
        shown_true = set(table.loc[table.status.isin(["query", "TP", "missed"]), "row"])
        assert shown_true == true
        missed = table[table.status == "missed"]
        assert missed["reason"].isin(["below threshold", "outside top-K",
                                      "removed by the unit filter"]).all()
        below = missed[missed.reason == "below threshold"]
        assert (below["gap"] > 0).all()
        assert (table.loc[table.status == "near miss", "score"] < 0.62).all()


def test_exports_describe_the_evaluation(engine, evaluation):
    preds = predictions_frame(engine, evaluation)
    ids = engine.bundle.items["posting_id"].to_numpy()[engine.rows]
    assert list(preds["posting_id"]) == list(ids)
    for i, m in enumerate(preds["matches"]):
        got = m.split(" ")
        assert got[0] == ids[i]
        assert set(got) == set(ids[evaluation.stage.cand[i][evaluation.pred[i]]])
    # per-query metrics against the label sets of the items table and the predicted sets
    # as exported (posting ids), not against the evaluation's own counts
    metrics = metrics_frame(engine, evaluation)
    label_of = dict(zip(engine.bundle.items["posting_id"], engine.bundle.items["label_group"],
                        strict=True))
    scope_ids = set(ids)
    assert list(metrics["posting_id"]) == list(ids)
    for row, (pid, m) in enumerate(zip(preds["posting_id"], preds["matches"], strict=True)):
        pred = set(m.split(" "))
        true = {p for p in scope_ids if label_of[p] == label_of[pid]}
        both = len(pred & true)
        r = metrics.iloc[row]
        assert (r.group_size, r.n_pred, r.true_positives) == (len(true), len(pred), both)
        assert (r.precision, r.recall, r.f1) == pytest.approx(
            (both / len(pred), both / len(true), 2 * both / (len(true) + len(pred))), abs=1e-12)
    assert evaluation.metrics.f1 == pytest.approx(metrics["f1"].mean(), abs=1e-12)


@pytest.mark.parametrize("values", [np.linspace(0, 1, 101), np.linspace(1, 0.2, 9),
                                    np.array([0.9, 0.3, 0.5, 0.7]), np.array([0.5])])
def test_binning_is_exact_at_the_edges(values):
    from explorer.core.sweep import _bins_desc

    vd = np.sort(values.astype(np.float32))[::-1].copy()
    x = np.concatenate([vd, np.nextafter(vd, np.float32(2)), np.nextafter(vd, np.float32(-2)),
                        [np.inf, -np.inf, 2.0, -1.0],
                        np.random.default_rng(0).random(200)]).astype(np.float32)
    expect = np.array([(vd > xi).sum() for xi in x])
    assert np.array_equal(_bins_desc(vd, x), expect)
