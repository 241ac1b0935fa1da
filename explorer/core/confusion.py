"""Confused groups: the pairs of label groups the predictions join.

One false-positive pair is a model error; many between the same two groups are a pattern
worth one look: either a hard case (the same picture in two pack sizes, which the unit
filter exists for) or two label groups that are one product (a labelling error; the
Shopee labels have such). This lists, per unordered pair of label groups, how completely
the predictions join them, so the analyst judges the pattern once instead of pair by pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from explorer.core.engine import Engine, Evaluation
from explorer.core.highlight import describe_conflicts
from explorer.core.joined_groups import fully_joined
from explorer.core.spaces import in_threads
from explorer.core.titles import decoded_titles, raw_titles

__all__ = ["confused_groups", "joined_group_pairs"]

BLOCK_ROWS = 1 << 15  # rows summed at a time, on threads (_group_pairs)
# false positives from which the complete pairs are looked for first (below, summing every
# pair is as quick: ~0.05 s for 16,000 at 1M rows, where the scan takes ~0.15 s), and from
# which every pair is summed by a sparse product (COO -> CSR: 1.2 s for 8M, 9.7 s for 41M;
# the product 1.8 s and 6.9 s)
SCAN_FROM = 1 << 20
PRODUCT_FROM = 1 << 24


def confused_groups(engine: Engine, ev: Evaluation, n: int | None = 100) -> pd.DataFrame:
    """Up to `n` (None: all) pairs of label groups joined by false positives, the most
    completely joined first. Columns: row and neighbour (scope rows of the pair's strongest
    false positive, for jumping to it), label_group, neighbour_label_group, group_size,
    neighbour_group_size, fp_pairs (predicted (query, posting) pairs across the two groups,
    both directions), coverage (fp_pairs / (2 x size x size): 1.0 when every posting of
    each group predicts every posting of the other), mean_score, score (the strongest),
    posting_id, title, neighbour_id, neighbour_title of that strongest pair (titles
    decoded: explorer.core.titles), amounts (the quantities its titles disagree on, ""
    when none: then a labelling error is the likelier story), and title_raw and
    neighbour_title_raw (the titles as stored)."""
    columns = ["row", "neighbour", "label_group", "neighbour_label_group", "group_size",
               "neighbour_group_size", "fp_pairs", "coverage", "mean_score", "score",
               "posting_id", "title", "neighbour_id", "neighbour_title", "amounts",
               "title_raw", "neighbour_title_raw"]
    if not ev.has_labels:
        return pd.DataFrame(columns=columns)
    joined = joined_group_pairs(engine, ev, n)
    if joined is None:
        return pd.DataFrame(columns=columns)
    qs, ns, counts, coverage, mean, best = joined
    size_q, size_nb = engine.group_size[qs], engine.group_size[ns]
    items = engine.bundle.items
    ga, gb = engine.rows[qs], engine.rows[ns]
    a, b = items.iloc[ga], items.iloc[gb]
    shown, raw = decoded_titles(engine.bundle), raw_titles(engine.bundle)
    titles_a, titles_b = shown[ga], shown[gb]
    return pd.DataFrame({
        "row": qs, "neighbour": ns,
        "label_group": a["label_group"].to_numpy(),
        "neighbour_label_group": b["label_group"].to_numpy(),
        "group_size": size_q, "neighbour_group_size": size_nb,
        "fp_pairs": counts, "coverage": coverage, "mean_score": mean, "score": best,
        "posting_id": a["posting_id"].to_numpy(), "title": titles_a,
        "neighbour_id": b["posting_id"].to_numpy(), "neighbour_title": titles_b,
        "amounts": ["; ".join(describe_conflicts(str(x), str(y)))
                    for x, y in zip(titles_a, titles_b, strict=True)],
        "title_raw": raw[ga], "neighbour_title_raw": raw[gb],
    }, columns=columns)


def joined_group_pairs(engine: Engine, ev: Evaluation, n: int | None
                       ) -> tuple[np.ndarray, ...] | None:
    """The numbers behind `confused_groups` (no bundle needed): per joined pair of label
    groups, most completely joined first, (row, neighbour) of its strongest false
    positive, fp_pairs, coverage, mean score and the strongest score; None when no false
    positive joins two groups."""
    labels = engine.labels
    size = np.bincount(labels, minlength=int(labels.max()) + 1)
    total = int(np.subtract(ev.n_pred, ev.tp, dtype=np.int64).sum())  # false positives
    joined = None
    if n is not None and n > 0 and total > SCAN_FROM:
        joined = fully_joined(engine, ev, n)
    if joined is not None:  # n pairs of coverage 1.0: the head of the list
        lo, hi, counts = joined
        coverage = counts / (2.0 * size[lo] * size[hi])
        qs, ns, best, sums = _strongest(ev, labels, lo, hi)
        mean = sums / counts
    else:
        lo, hi, counts, mean = _group_pairs(ev, labels, total)
        if not len(lo):
            return None
        coverage = counts / (2.0 * size[lo] * size[hi])
        top = _most_joined(coverage, counts, n)  # most complete, then most pairs
        lo, hi, counts, mean, coverage = lo[top], hi[top], counts[top], mean[top], coverage[top]
        qs, ns, best, _ = _strongest(ev, labels, lo, hi)
    return qs, ns, counts, coverage, mean, best


def _group_pairs(ev: Evaluation, labels: np.ndarray, total: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, fp_pairs, mean score) per unordered pair of label groups lo < hi joined by
    the `total` false positives, in (lo, hi) order. Read in row blocks on threads and
    summed per (lo, hi) by scipy's COO -> CSR conversion (a counting sort by lo, then
    small sorts per lo); from PRODUCT_FROM false positives, where that conversion's
    random access grows slower than a sparse product, by the product. Either is linear
    in the false positives: sorting them all by group pair took 2.6 s at 300,000 rows."""
    st = ev.stage
    if total > PRODUCT_FROM:
        return _group_pairs_product(ev.pred & ~st.true, st.cand, st.score, labels)
    n, width = st.cand.shape
    parts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def run(start: int) -> None:
        rows = slice(start, min(start + BLOCK_ROWS, n))
        q, c = np.divmod(np.flatnonzero(ev.pred[rows] & ~st.true[rows]), width)
        q += start
        a, b = labels[q].astype(np.int32), labels[st.cand[q, c]].astype(np.int32)
        parts[start] = (np.minimum(a, b), np.maximum(a, b), st.score[q, c])

    starts = range(0, n, BLOCK_ROWS)
    in_threads(run, starts)
    lo, hi, score = (np.concatenate([parts[s][k] for s in starts]) for k in range(3))
    if not len(lo):
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0)
    # count + 1j * score: one conversion sums both, and no sum is ever 0 (scipy drops
    # zeros); float64 sums of float32 scores are exact, so the order of summing is moot
    n_groups = int(labels.max()) + 1
    both = sparse.coo_matrix((1.0 + 1j * score.astype(np.float64), (lo, hi)),
                             shape=(n_groups, n_groups)).tocsr()
    both.sum_duplicates()  # canonical: rows ascending, columns ascending within a row
    lo = np.repeat(np.arange(n_groups), np.diff(both.indptr))
    counts = np.rint(both.data.real).astype(np.int64)
    return lo, both.indices.astype(np.int64), counts, both.data.imag / counts


def _group_pairs_product(fp: np.ndarray, cand: np.ndarray, score: np.ndarray, labels: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_group_pairs` of the false-positive mask `fp` (n, C) by a sparse product (group
    one-hot transposed times the rows' false positives by neighbour group)."""
    n_groups = int(labels.max()) + 1
    per_row = fp.sum(axis=1)
    if not per_row.any():
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0)
    # count + 1j * score: one product sums both, and no sum is ever 0 (scipy drops zeros)
    data = 1.0 + 1j * score[fp].astype(np.float64)
    by_row = sparse.csr_matrix((data, labels[cand[fp]], np.r_[0, np.cumsum(per_row)]),
                               shape=(len(fp), n_groups))
    one_hot = sparse.csr_matrix((np.ones(len(fp)), labels, np.arange(len(fp) + 1)),
                                shape=(len(fp), n_groups))
    directed = (one_hot.T @ by_row).tocsr()
    both = sparse.triu(directed + directed.T, k=1).tocsr()
    both.sum_duplicates()  # canonical: rows ascending, columns ascending within a row
    lo = np.repeat(np.arange(n_groups), np.diff(both.indptr))
    counts = np.rint(both.data.real).astype(np.int64)
    return lo, both.indices.astype(np.int64), counts, both.data.imag / counts


def _most_joined(coverage: np.ndarray, counts: np.ndarray, n: int | None) -> np.ndarray:
    """Indices of the n group pairs of highest coverage, then most pairs, then (lo, hi)
    order; only those at or above the n-th coverage are sorted."""
    sub = np.arange(len(coverage))
    if n is not None and n < len(coverage):
        cut = np.partition(coverage, len(coverage) - n)[len(coverage) - n]
        sub = np.flatnonzero(coverage >= cut)
    return sub[np.lexsort((-counts[sub], -coverage[sub]))][:n]


def _strongest(ev: Evaluation, labels: np.ndarray, lo: np.ndarray, hi: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, neighbour, score) of each group pair's strongest false positive, the first in
    (row, column) order among equals, and the sum of its false positives' scores; reads
    only the rows of the groups listed."""
    st = ev.stage
    n_groups = int(labels.max()) + 1
    listed = np.zeros(n_groups, bool)
    listed[lo] = listed[hi] = True
    rows = np.flatnonzero(listed[labels])
    r, c = np.nonzero(ev.pred[rows] & ~st.true[rows])
    q = rows[r]
    nb = st.cand[q, c]
    a, b = labels[q], labels[nb]
    key = np.minimum(a, b) * n_groups + np.maximum(a, b)
    want = lo * n_groups + hi
    order = np.argsort(want)
    at = np.minimum(np.searchsorted(want[order], key), len(want) - 1)
    hit = want[order][at] == key
    q, nb, key, which = q[hit], nb[hit], key[hit], order[at[hit]]
    val = st.score[q, c[hit]].astype(np.float64)
    # per group pair: highest score, then first in (row, column) order (lexsort is stable)
    pick = np.lexsort((-val, which))
    first = pick[np.r_[True, which[pick][1:] != which[pick][:-1]]]
    out = np.empty(len(want), np.int64), np.empty(len(want), st.cand.dtype), np.empty(len(want))
    out[0][which[first]], out[1][which[first]], out[2][which[first]] = (q[first], nb[first],
                                                                         val[first])
    # float64 sums of float32 scores are exact (well inside 53 bits), so any order agrees
    return (*out, np.bincount(which, weights=val, minlength=len(want)))
