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
from explorer.core.titles import decoded_titles, raw_titles

__all__ = ["confused_groups"]


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
    st = ev.stage
    fp = ev.pred & ~st.true
    labels = engine.labels
    lo, hi, counts, mean = _group_pairs(fp, st.cand, st.score, labels)
    if not len(lo):
        return pd.DataFrame(columns=columns)
    size = np.bincount(labels, minlength=int(labels.max()) + 1)
    coverage = counts / (2.0 * size[lo] * size[hi])
    top = _most_joined(coverage, counts, n)  # most complete, then most pairs
    lo, hi, counts, mean, coverage = lo[top], hi[top], counts[top], mean[top], coverage[top]
    qs, ns, best = _strongest(fp, st.cand, st.score, labels, lo, hi)
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


def _group_pairs(fp: np.ndarray, cand: np.ndarray, score: np.ndarray, labels: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, fp_pairs, mean score) per unordered pair of label groups lo < hi joined by
    the false positives `fp` (n, C), in (lo, hi) order. Summed by a sparse product (group
    one-hot transposed times the rows' false positives by neighbour group), linear in the
    false positives: sorting them by group pair took 2.6 s at 300,000 postings."""
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


def _strongest(fp: np.ndarray, cand: np.ndarray, score: np.ndarray, labels: np.ndarray,
               lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, neighbour, score) of each group pair's strongest false positive, the first in
    (row, column) order among equals; reads only the rows of the groups listed."""
    n_groups = int(labels.max()) + 1
    listed = np.zeros(n_groups, bool)
    listed[lo] = listed[hi] = True
    rows = np.flatnonzero(listed[labels] & fp.any(axis=1))
    r, c = np.nonzero(fp[rows])
    q = rows[r]
    nb = cand[q, c]
    a, b = labels[q], labels[nb]
    key = np.minimum(a, b) * n_groups + np.maximum(a, b)
    want = lo * n_groups + hi
    order = np.argsort(want)
    at = np.minimum(np.searchsorted(want[order], key), len(want) - 1)
    hit = want[order][at] == key
    q, nb, key, which = q[hit], nb[hit], key[hit], order[at[hit]]
    val = score[q, c[hit]].astype(np.float64)
    # per group pair: highest score, then first in (row, column) order (lexsort is stable)
    pick = np.lexsort((-val, which))
    first = pick[np.r_[True, which[pick][1:] != which[pick][:-1]]]
    out = np.empty(len(want), np.int64), np.empty(len(want), cand.dtype), np.empty(len(want))
    out[0][which[first]], out[1][which[first]], out[2][which[first]] = (q[first], nb[first],
                                                                         val[first])
    return out
