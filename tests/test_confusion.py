"""Confused groups: label-group pairs joined by false positives, checked by brute force."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.confusion import confused_groups
from explorer.core.engine import Engine


@pytest.fixture(scope="module")
def engine(tiny_bundle) -> Engine:
    return Engine(Bundle.open(tiny_bundle), "all")


def test_counts_and_coverage_by_brute_force(engine):
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (0.4,), min2=(0.2,)))
    table = confused_groups(engine, ev, n=10**6)
    labels = engine.labels
    pairs = Counter()
    for q, c in zip(*np.nonzero(ev.pred & ~ev.stage.true), strict=True):
        a, b = labels[q], labels[ev.stage.cand[q, c]]
        pairs[min(a, b), max(a, b)] += 1
    assert len(table) == len(pairs) > 5
    assert table["fp_pairs"].sum() == sum(pairs.values())
    size = Counter(labels.tolist())
    for _, r in table.iterrows():
        a, b = labels[r["row"]], labels[r["neighbour"]]
        assert r["fp_pairs"] == pairs[min(a, b), max(a, b)]
        assert r["coverage"] == pytest.approx(r["fp_pairs"] / (2 * size[a] * size[b]))
        assert (r["group_size"], r["neighbour_group_size"]) == (size[a], size[b])
        assert ev.pred[r["row"]][list(ev.stage.cand[r["row"]]).index(r["neighbour"])]
    assert list(zip(table["coverage"], table["fp_pairs"], strict=True)) == sorted(
        zip(table["coverage"], table["fp_pairs"], strict=True), reverse=True)
    assert len(confused_groups(engine, ev, n=3)) == 3


@pytest.mark.parametrize("cfg", [MatchConfig("single", ("tfidf",), (0.4,), min2=(0.2,)),
                                 MatchConfig("sum", ("tfidf", "phash"), (0.3,))])
def test_strongest_pair_mean_and_top_n_by_brute_force(engine, cfg):
    """Each group pair's mean score and strongest false positive (the first in (row,
    column) order among equal scores), and a top-n list that is the full list's head."""
    ev = engine.evaluate(cfg)
    st, labels = ev.stage, engine.labels
    pairs: dict[tuple[int, int], list[tuple[float, int, int]]] = {}
    for q, c in zip(*np.nonzero(ev.pred & ~st.true), strict=True):
        a, b = labels[q], labels[st.cand[q, c]]
        pairs.setdefault((min(a, b), max(a, b)), []).append(
            (float(st.score[q, c]), q, st.cand[q, c]))
    table = confused_groups(engine, ev, n=None)
    assert len(table) == len(pairs) > 5
    for _, r in table.iterrows():
        a, b = labels[r["row"]], labels[r["neighbour"]]
        got = pairs[min(a, b), max(a, b)]
        best = max(v for v, _, _ in got)
        assert r["mean_score"] == pytest.approx(np.mean([v for v, _, _ in got]))
        assert r["score"] == pytest.approx(best)
        assert (r["row"], r["neighbour"]) == next((q, nb) for v, q, nb in got if v == best)
    for n in (1, 3, 7):
        head = confused_groups(engine, ev, n=n)
        assert head.reset_index(drop=True).equals(table.head(n).reset_index(drop=True))


def test_pack_sizes_name_their_amounts(engine):
    # the synthetic table has near-duplicate groups that differ only in pack size
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (0.4,)))
    table = confused_groups(engine, ev, n=10**6)
    assert (table["amounts"] != "").any()
    row = table[table["amounts"] != ""].iloc[0]
    assert "ml" in row["amounts"] and row["title"] != row["neighbour_title"]
    # the unit filter removes exactly those joins
    filtered = confused_groups(engine, engine.evaluate(MatchConfig(
        "single", ("tfidf",), (0.4,), units=True)), n=10**6)
    assert (filtered["amounts"] == "").all()


def test_nothing_to_confuse(engine):
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (1.0,)))  # only the query itself
    assert confused_groups(engine, ev).empty
