"""The false-positive and missed lists against a brute force written here: every
directed error pair sorted by score (ties by query, then candidate), each unordered pair
kept from its first (strongest) side, the first n. The lists only look at the strongest
pairs, so this checks that the cut never changes the answer, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core import cases
from explorer.core.bundle import Bundle
from explorer.core.cases import false_positives, missed_pairs, worst_queries
from explorer.core.config import MatchConfig
from explorer.core.engine import Engine


def reference(engine: Engine, ev, mask: np.ndarray, n: int) -> list[tuple[int, int, float]]:
    st = ev.stage
    pairs = []
    for q in range(mask.shape[0]):
        for c in range(mask.shape[1]):
            if mask[q, c]:
                pairs.append((-float(st.score[q, c]), q, c))
    pairs.sort()  # by score, then query, then candidate column: the row-major order
    seen, out = set(), []
    for neg, q, c in pairs:
        nb = int(st.cand[q, c])
        key = (min(q, nb), max(q, nb))
        if key not in seen:
            seen.add(key)
            out.append((q, nb, -neg))
    return out[:n]


@pytest.mark.parametrize("cfg", [
    MatchConfig("single", ("tfidf",), (0.3,)),
    MatchConfig("single", ("phash",), (0.7,)),  # few distinct scores: many ties
    MatchConfig("sum", ("tfidf", "phash"), (0.4,), min2=(0.3,)),
])
@pytest.mark.parametrize("n", [1, 3, 10, 50, 10_000])
def test_lists_equal_the_brute_force(tiny_bundle, cfg, n):
    engine = Engine(Bundle.open(tiny_bundle), "all")
    ev = engine.evaluate(cfg)
    st = ev.stage
    for fn, mask in ((false_positives, ev.pred & ~st.true),
                     (missed_pairs, ~ev.pred & st.true & (st.cand >= 0))):
        got = fn(engine, ev, n)
        want = reference(engine, ev, mask, n)
        assert list(zip(got["row"], got["neighbour"], strict=True)) == [(q, b) for q, b, _ in want]
        np.testing.assert_array_equal(got["score"].to_numpy(), [s for *_, s in want])


@pytest.mark.parametrize("block", [1, 7, 64])
@pytest.mark.parametrize("threads", ["1", "3"])
def test_blocks_and_threads_do_not_change_the_lists(tiny_bundle, monkeypatch, block, threads):
    """The scans keep each block's strongest cells (a cut from a sample of its rows, then
    its own m-th best): any block size and thread count give the brute force's lists."""
    monkeypatch.setattr(cases, "BLOCK_ROWS", block)
    monkeypatch.setenv("EXPLORER_THREADS", threads)
    engine = Engine(Bundle.open(tiny_bundle), "all")
    for cfg in (MatchConfig("single", ("tfidf",), (0.3,)),
                MatchConfig("single", ("phash",), (0.7,)),
                MatchConfig("sum", ("tfidf", "phash"), (0.4,), min2=(0.3,))):
        ev = engine.evaluate(cfg)
        st = ev.stage
        for fn, mask in ((false_positives, ev.pred & ~st.true),
                         (missed_pairs, ~ev.pred & st.true & (st.cand >= 0))):
            for n in (1, 10, 10_000):
                got = fn(engine, ev, n)
                want = reference(engine, ev, mask, n)
                assert list(zip(got["row"], got["neighbour"], strict=True)) == [
                    (q, b) for q, b, _ in want]


@pytest.mark.parametrize("n", [0, 1, 7, 50, 10_000])
def test_worst_queries_equal_a_full_sort(tiny_bundle, n):
    engine = Engine(Bundle.open(tiny_bundle), "all")
    ev = engine.evaluate(MatchConfig("single", ("phash",), (0.7,)))  # many equal F1
    got = worst_queries(engine, ev, n)["row"].to_numpy()
    np.testing.assert_array_equal(got, np.lexsort((-ev.group_size, ev.f1))[:n])
