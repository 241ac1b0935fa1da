"""Pair features against a slow reference built from the bundle's own top-K lists (the
knn files), pair by pair, on every scope of the tiny bundle."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from rapidfuzz import fuzz

from explorer.core.bundle import Bundle
from explorer.core.engine import Engine
from explorer.core.pair_features import PER_MODALITY, SHARED, pair_features
from explorer.core.scope_data import ScopeData
from explorer.core.title_features import TITLE_FEATURES
from explorer.core.titles import decoded_titles


def _reference(bundle: Bundle, engine: Engine, q: int, c: int) -> dict[str, float]:
    """Features of the pair (scope rows q, c) from the knn lists, one pair at a time."""
    g = engine.graph
    gq, gc = int(engine.rows[q]), int(engine.rows[c])
    col = int(np.flatnonzero(g.cand[q] == c)[0])
    out = {}
    for m in g.modalities:
        idx, sim = bundle.knn(engine.scope, m)
        row_of = {int(r): i for i, r in enumerate(engine.rows)}
        lq = [int(x) for x in idx[row_of[gq]][1:] if x >= 0]
        lc = [int(x) for x in idx[row_of[gc]][1:] if x >= 0]
        sq = [float(x) for x in sim[row_of[gq]][1:len(lq) + 1]]
        sc = [float(x) for x in sim[row_of[gc]][1:len(lc) + 1]]
        s = float(g.sims[m][q, col])
        s = math.nan if not math.isfinite(s) else s
        out[f"{m}.sim"] = s
        out[f"{m}.rank"] = lq.index(gc) + 1 if gc in lq else math.nan
        out[f"{m}.rank_back"] = lc.index(gq) + 1 if gq in lc else math.nan
        out[f"{m}.first_q"] = sq[0] if sq else math.nan
        out[f"{m}.fifth_q"] = sq[4] if len(sq) > 4 else math.nan
        out[f"{m}.first_c"] = sc[0] if sc else math.nan
        out[f"{m}.fifth_c"] = sc[4] if len(sc) > 4 else math.nan
        out[f"{m}.gap"] = (sq[0] - s) if sq else math.nan
        out[f"{m}.shared10"] = len(set(lq[:SHARED]) & set(lc[:SHARED]))
    out["units.conflict"] = float(engine.graph_conflicts[q, col])
    a, b = decoded_titles(bundle)[gq], decoded_titles(bundle)[gc]
    out["title.ratio"] = fuzz.ratio(a, b) / 100
    out["title.token_set"] = fuzz.token_set_ratio(a, b) / 100
    out["title.length_ratio"] = (min(len(a), len(b)) / max(len(a), len(b))
                                 if a or b else math.nan)
    na, nb = ({x.replace(",", ".") for x in re.findall(r"\d+(?:[.,]\d+)?", t)}
              for t in (a, b))
    out["title.numbers_differ"] = float(na != nb) if na and nb else math.nan
    return out


@pytest.mark.parametrize("scope", ["fold2", "all"])
def test_features_equal_a_pair_by_pair_reference(tiny_bundle, scope):
    bundle = Bundle.open(tiny_bundle)
    engine = Engine(bundle, scope)
    f = pair_features(engine)
    per_modality = [f"{m}.{x}" for m in engine.modalities for x in PER_MODALITY]
    assert f.names == (*per_modality, "units.conflict", *TITLE_FEATURES)
    live = engine.graph.cand >= 0
    live[:, 0] = False
    assert len(f.rows) == live.sum()  # every candidate pair once, the query itself not
    picks = np.random.default_rng(1).choice(len(f.rows), size=min(400, len(f.rows)),
                                            replace=False)
    for p in picks:
        q, col = int(f.rows[p]), int(f.cols[p])
        want = _reference(bundle, engine, q, int(engine.graph.cand[q, col]))
        for name, value in want.items():
            got = float(f.column(name)[p])
            assert got == pytest.approx(value, abs=1e-6, nan_ok=True), (name, q, col)


def test_a_scope_without_titles_has_no_conflict_feature(tiny_bundle):
    engine = Engine(Bundle.open(tiny_bundle), "fold2")
    data = ScopeData(engine.graph, engine.labels)
    f = pair_features(Engine.from_data(data))
    assert np.isnan(f.column("units.conflict")).all()
    np.testing.assert_array_equal(f.column("tfidf.rank"), pair_features(engine).column(
        "tfidf.rank"))


def test_a_hand_built_scope_by_hand():
    """Three postings: 0 and 1 list only each other, 2 lists 0 then 1; 0 and 1 also hold 2
    as a candidate outside their own lists."""
    from explorer.core.graph import ScopeGraph

    cand = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1]], np.int32)
    topk = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 1]], np.uint8)
    sims = np.array([[1, 0.9, 0.2], [1, 0.9, 0.1], [1, 0.5, 0.4]], np.float32)
    graph = ScopeGraph("hand", np.arange(3), cand, topk, {"t": sims}, ("t",))
    f = pair_features(Engine.from_data(ScopeData(graph, np.array([0, 0, 1]))))
    got = {(int(q), int(cand[q, c])): dict(zip(f.names, f.values[i].tolist(), strict=True))
           for i, (q, c) in enumerate(zip(f.rows, f.cols, strict=True))}
    assert set(got) == {(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)}
    a = got[0, 1]
    assert (a["t.rank"], a["t.rank_back"], a["t.shared10"]) == (1, 1, 0)  # {1} vs {0}
    assert got[2, 0]["t.shared10"] == 1  # {0, 1} vs {1}
    b = got[0, 2]  # outside 0's own list; 0 is 2's best
    assert math.isnan(b["t.rank"]) and b["t.rank_back"] == 1
    assert b["t.gap"] == pytest.approx(0.9 - 0.2) and math.isnan(b["t.fifth_q"])
    assert b["t.first_c"] == pytest.approx(0.5) and math.isnan(b["units.conflict"])
    assert all(math.isnan(b[name]) for name in TITLE_FEATURES)  # no titles given


@pytest.mark.parametrize("scope", ["fold2", "all"])
def test_the_features_of_some_queries_equal_the_full_computations_rows(tiny_bundle, scope):
    """`pair_features(engine, rows)`: the same pairs, order and values as the full
    computation's rows of those queries (NaN where it has NaN), repeated or unsorted rows
    asked once, and no pair for no rows."""
    engine = Engine(Bundle.open(tiny_bundle), scope)
    full = pair_features(engine)
    rng = np.random.default_rng(3)
    for ask in ([0], [engine.n - 1], rng.choice(engine.n, 7, replace=False),
                [5, 2, 5], np.arange(engine.n)):
        got = pair_features(engine, np.asarray(ask))
        keep = np.isin(full.rows, ask)
        assert got.names == full.names
        np.testing.assert_array_equal(got.rows, full.rows[keep])
        np.testing.assert_array_equal(got.cols, full.cols[keep])
        np.testing.assert_array_equal(got.values, full.values[keep])  # NaN == NaN here
    none = pair_features(engine, np.zeros(0, np.int64))
    assert none.values.shape == (0, len(full.names)) and len(none.rows) == 0
    with pytest.raises(IndexError):
        pair_features(engine, np.array([engine.n]))


def test_a_hand_built_scope_by_rows_equals_the_whole():
    """The hand-built scope, one query at a time: its pairs reach candidates whose own
    lists (rank back, shared neighbours, their 1st and 5th) are read for that query alone."""
    from explorer.core.graph import ScopeGraph

    cand = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1]], np.int32)
    topk = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 1]], np.uint8)
    sims = np.array([[1, 0.9, 0.2], [1, 0.9, 0.1], [1, 0.5, 0.4]], np.float32)
    graph = ScopeGraph("hand", np.arange(3), cand, topk, {"t": sims}, ("t",))
    engine = Engine.from_data(ScopeData(graph, np.array([0, 0, 1])))
    full = pair_features(engine)
    for q in range(3):
        got = pair_features(engine, np.array([q]))
        np.testing.assert_array_equal(got.values, full.values[full.rows == q])
