"""explorer.core.session and explorer.core.queries: snapshots (with a pinned baseline and
cancellation between INB stages) and the query list's filters, search and sorting."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.bundle import Bundle
from explorer.core.config import InbStage, MatchConfig
from explorer.core.queries import (
    FILTERS,
    filter_mask,
    query_table,
    search_mask,
    sort_order,
    stable_argsort,
    visible_rows,
)
from explorer.core.session import Cancelled, Session, default_scope, tuning_scope

TFIDF = MatchConfig("single", ("tfidf",), (0.5,))
INB = MatchConfig("sum", ("tfidf", "phash"), (0.5,), weights=(0.5, 0.5),
                  inb=(InbStage(0.6), InbStage(0.7)))


@pytest.fixture(scope="module")
def session(tiny_bundle) -> Session:
    return Session(Bundle.open(tiny_bundle))


def test_scopes_and_defaults(session: Session) -> None:
    assert default_scope(session.bundle) == "fold0"
    assert tuning_scope(session.bundle, "fold0") == "fold1"
    assert tuning_scope(session.bundle, "fold3") == "fold3"
    assert session.default_config() == TFIDF
    assert [k for _, k in session.modalities] == ["text", "image"]


def test_snapshot_equals_the_engine(session: Session) -> None:
    snap = session.compute("fold0", TFIDF)
    ev = session.engine("fold0").evaluate(TFIDF)
    assert snap.metrics == ev.metrics and snap.delta_f1 is None
    assert session.is_quick("fold0", TFIDF)
    assert not session.is_quick("fold0", INB)


def test_baseline_delta(session: Session) -> None:
    snap = session.compute("all", INB, baseline=TFIDF)
    engine = session.engine("all")
    want = engine.evaluate(INB).f1 - engine.evaluate(TFIDF).f1
    np.testing.assert_array_equal(snap.delta_f1, want)
    assert np.any(want != 0)


def test_progress_and_cancel(session: Session) -> None:
    seen: list[tuple[int, int]] = []
    fresh = Session(session.bundle)
    fresh.compute("fold1", INB, baseline=TFIDF, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    calls = iter([False, True])
    with pytest.raises(Cancelled):
        Session(session.bundle).compute("fold1", INB, cancelled=lambda: next(calls))


def test_best_is_what_evaluate_best_picks_and_yields_to_newer_work(session, tiny_bundle):
    from explorer.core.evaluate import run

    seen: list[tuple[int, int]] = []
    cfg = Session(session.bundle).best("fold1", progress=lambda d, t: seen.append((d, t)))
    report = run(Bundle.open(tiny_bundle), scope="fold0", cfg=None, tune_on="fold1",
                 search_best=True, timing=False)
    assert cfg == report.config
    total = seen[0][1]
    assert seen == [(d, total) for d in range(total)] and total > 20
    calls = iter([False, False, True])
    with pytest.raises(Cancelled):
        Session(session.bundle).best("fold1", cancelled=lambda: next(calls))


def test_tune_improves_on_the_tuning_scope(session: Session) -> None:
    tuned = session.tune(TFIDF, "fold1")
    engine = session.engine("fold1")
    assert engine.evaluate(tuned).metrics.f1 >= engine.evaluate(TFIDF).metrics.f1


def test_filters(session: Session) -> None:
    snap = session.compute("all", TFIDF)
    table = query_table(snap)
    errors, perfect = filter_mask(table, "errors"), filter_mask(table, "perfect")
    assert np.array_equal(errors, ~perfect)
    assert np.array_equal(perfect, table.f1 == 1.0)
    fp, miss = filter_mask(table, "false positives"), filter_mask(table, "misses")
    assert np.array_equal(fp, table.precision < 1) and np.array_equal(miss, table.recall < 1)
    assert not filter_mask(table, "changed").any()  # nothing pinned
    with pytest.raises(ValueError):
        filter_mask(table, "nope")
    pinned = query_table(session.compute("all", INB, baseline=TFIDF))
    d = pinned.delta_f1
    assert np.array_equal(filter_mask(pinned, "improved"), d > 0)
    assert np.array_equal(filter_mask(pinned, "worse"), d < 0)
    assert filter_mask(pinned, "changed").sum() == (d != 0).sum() > 0
    assert set(FILTERS) >= {"all", "errors", "perfect", "changed"}


def test_search_and_sort(session: Session) -> None:
    table = query_table(session.compute("all", TFIDF))
    word = table.title[5].split()[0]
    hits = search_mask(table, word.upper())
    assert hits[5] and all(word.lower() in t.lower() or word.lower() in p.lower()
                           for t, p in zip(table.title[hits], table.posting_id[hits],
                                           strict=True))
    assert search_mask(table, table.posting_id[7]).sum() >= 1
    assert search_mask(table, str(table.label[3]))[3]
    rows = np.arange(len(table))
    asc = sort_order(table, rows, "f1")
    assert np.all(np.diff(table.f1[asc]) >= 0)
    desc = sort_order(table, rows, "f1", descending=True)
    assert np.all(np.diff(table.f1[desc]) <= 0)
    # stable both ways: ties keep scope order
    for order in (asc, desc):
        same = table.f1[order][1:] == table.f1[order][:-1]
        assert np.all(order[1:][same] > order[:-1][same])
    assert "rank_title" not in table.ranks._cols  # not sorted by title yet: not computed
    titles = sort_order(table, rows, "title")
    low = [t.lower() for t in table.title[titles]]
    assert low == sorted(low)
    assert "rank_title" in table.ranks._cols and "rank_posting_id" not in table.ranks._cols
    vis = visible_rows(table, "errors", "", ("f1", False))
    assert set(vis) == set(np.flatnonzero(table.f1 < 1))


def test_stable_argsort_equals_numpy_stable_argsort() -> None:
    """The hashed radix path (few distinct values) and the fallbacks (many distinct values,
    NaN) give exactly numpy's stable order, -0.0 and 0.0 tied."""
    rng = np.random.default_rng(3)
    tp, size = rng.integers(0, 5, 50_000), rng.integers(1, 40, 50_000)
    f1 = 2.0 * tp / (size + rng.integers(1, 60, 50_000))
    delta = f1 - f1[rng.permutation(len(f1))]
    delta[::7] = -0.0
    delta[1::7] = 0.0
    with_nan = f1.copy()
    with_nan[::11] = np.nan
    for values in (f1, delta, with_nan, rng.random(50_000), f1[:100]):
        np.testing.assert_array_equal(stable_argsort(values),
                                      np.argsort(values, kind="stable"))
