"""The false-positive and missed lists against a brute force written here: every
directed error pair sorted by score (ties by query, then candidate), each unordered pair
kept from its first (strongest) side, the first n. The lists only look at the strongest
pairs, so this checks that the cut never changes the answer, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.bundle import Bundle
from explorer.core.cases import false_positives, missed_pairs
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
