"""Confused groups: the pairs of label groups the predictions join.

One false-positive pair is a model error; many between the same two groups are a pattern
worth one look: either a hard case (the same picture in two pack sizes, which the unit
filter exists for) or two label groups that are one product (a labelling error; the
Shopee labels have such). This lists, per unordered pair of label groups, how completely
the predictions join them, so the analyst judges the pattern once instead of pair by pair.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy import sparse

from explorer.core.engine import Engine, Evaluation
from explorer.core.highlight import describe_conflicts
from explorer.core.spaces import in_threads
from explorer.core.titles import decoded_titles, raw_titles

__all__ = ["confused_groups"]

# rows per task of the per-group scan (whole groups of one size; ~3 MB of (rows, C)
# temporaries at C = 50), and per batch of tasks between checks whether to stop
BLOCK_ROWS = 1 << 15
BATCH_ROWS = 1 << 16
# false positives from which the complete pairs are looked for first (below, summing every
# pair is as quick: ~0.05 s for 16,000 at 1M rows, where the scan takes ~0.15 s), and from
# which every pair is summed by a sparse product (COO -> CSR: 1.2 s for 8M, 9.7 s for 41M;
# the product 1.8 s and 6.9 s)
SCAN_FROM = 1 << 20
PRODUCT_FROM = 1 << 24
# share of predicted cells in a block above which the scan reads every candidate's label;
# below (a sum fusion predicts 7% of its 99 columns at 1M rows) only the predicted cells',
# packed per group so the row-wise sort is as wide as the most a group holds
DENSE_FROM = 0.25
_NONE = np.iinfo(np.int32).max  # sorts after every label: not a false positive


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
    labels = engine.labels
    size = np.bincount(labels, minlength=int(labels.max()) + 1)
    total = int(np.subtract(ev.n_pred, ev.tp, dtype=np.int64).sum())  # false positives
    joined = None
    if n is not None and n > 0 and total > SCAN_FROM:
        joined = _fully_joined(engine, ev, n)
    if joined is not None:  # n pairs of coverage 1.0: the head of the list
        lo, hi, counts = joined
        coverage = counts / (2.0 * size[lo] * size[hi])
        qs, ns, best, sums = _strongest(ev, labels, lo, hi)
        mean = sums / counts
    else:
        lo, hi, counts, mean = _group_pairs(ev, labels, total)
        if not len(lo):
            return pd.DataFrame(columns=columns)
        coverage = counts / (2.0 * size[lo] * size[hi])
        top = _most_joined(coverage, counts, n)  # most complete, then most pairs
        lo, hi, counts, mean, coverage = lo[top], hi[top], counts[top], mean[top], coverage[top]
        qs, ns, best, _ = _strongest(ev, labels, lo, hi)
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


@dataclass
class _Layout:
    """A scope's rows ordered by group size (largest first), then label, then row: each
    group's rows in a run and the groups of one size side by side, so a block of them
    reshapes to (groups, size)."""

    order: np.ndarray     # scope rows
    classes: list[tuple[int, list[tuple[int, int]]]]  # (size, [(start, stop) in order])
    first: np.ndarray     # per label: where its rows start in `order`
    labels32: np.ndarray  # label per scope row, _NONE appended (read at padding: -1)
    size: np.ndarray      # rows per label


_layouts: weakref.WeakKeyDictionary[Engine, _Layout] = weakref.WeakKeyDictionary()


def _layout(engine: Engine) -> _Layout:
    """The engine's _Layout, built once (a lexsort of the scope: 0.15 s at 1M rows)."""
    if engine not in _layouts:
        labels = engine.labels
        size = np.bincount(labels, minlength=int(labels.max()) + 1)
        row_size = size[labels]
        order = np.lexsort((labels, -row_size))
        bounds = np.flatnonzero(np.r_[True, np.diff(row_size[order]) != 0, True])
        classes = []
        for lo, hi in pairwise(bounds):
            s = int(row_size[order[lo]])
            step = max(1, BLOCK_ROWS // s) * s  # whole groups per task
            classes.append((s, [(int(a), int(min(a + step, hi))) for a in range(lo, hi, step)]))
        starts = np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1]])
        first = np.zeros(len(size), np.int64)
        first[labels[order[starts]]] = starts
        labels32 = np.append(labels, _NONE).astype(np.int32)
        _layouts[engine] = _Layout(order, classes, first, labels32, size)
    return _layouts[engine]


def _fully_joined(engine: Engine, ev: Evaluation, n: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(lo, hi, fp_pairs) of the first n pairs of `confused_groups`' order when at least
    n pairs of label groups are joined completely (coverage 1.0, which no other pair
    reaches), else None. Then the list is those pairs by fp_pairs (2 x size x size), then
    (lo, hi). A pair is complete when each group's false positives into the other, over
    all its rows, number size x size: counted per group by sorting its rows' false-positive
    neighbour labels together (row-wise sorts of short rows, in blocks on threads), with
    no sort or sparse product over all false positives (7.5 s at 1M rows, 41M false
    positives). Groups are scanned largest first, and the scan stops once n complete pairs
    join more postings than any pair of two groups not yet scanned can (size_next^2): the
    smaller side of a pair found from the larger is checked over its own rows only."""
    lay = _layout(engine)
    n_groups = len(lay.size)
    a_parts: list[np.ndarray] = []
    b_parts: list[np.ndarray] = []
    checked = np.zeros(0, np.int64)  # directed keys b * n_groups + a checked from b's side
    passed = np.zeros(0, bool)
    for tasks, size, bound in _batches(lay):
        found: dict[int, tuple[np.ndarray, np.ndarray, bool]] = {}

        def run(t: int, tasks=tasks, found=found) -> None:
            found[t] = _complete_in(ev, lay, *tasks[t])

        in_threads(run, range(len(tasks)))
        if any(dup for _, _, dup in found.values()):  # a duplicate candidate: no shortcut
            return None
        a_parts += [found[t][0] for t in range(len(tasks))]
        b_parts += [found[t][1] for t in range(len(tasks))]
        a, b = np.concatenate(a_parts), np.concatenate(b_parts)
        big = lay.size[a] * lay.size[b] > bound  # the pairs that can head the list now
        if np.count_nonzero(big) < n:
            continue
        a, b = a[big], b[big]
        # b's side: found by the scan when b is as large as the groups scanned, else read
        one_sided = lay.size[b] < size
        back = b[one_sided] * n_groups + a[one_sided]
        new = ~np.isin(back, checked)
        checked = np.r_[checked, back[new]]
        passed = np.r_[passed, _complete_back(ev, lay, a[one_sided][new], b[one_sided][new])]
        ok = np.ones(len(a), bool)
        ok[one_sided] = np.isin(back, checked[passed])
        key = np.minimum(a, b) * n_groups + np.maximum(a, b)
        key = np.sort(np.r_[key[~one_sided], np.repeat(key[one_sided & ok], 2)])
        both = key[1:][key[1:] == key[:-1]]  # complete both ways: one key from each side
        if len(both) >= n:
            lo, hi = np.divmod(both, n_groups)
            pairs = lay.size[lo] * lay.size[hi]
            top = np.argsort(-pairs, kind="stable")[:n]  # ties in (lo, hi) order
            return lo[top], hi[top], 2 * pairs[top]
    return None


def _batches(lay: _Layout):
    """(tasks, smallest group size scanned so far, size_next^2) per batch of group sizes,
    largest first, each of BATCH_ROWS rows or more (one size at least): the threads share
    a batch, and the pairs of two groups not yet scanned join size_next^2 postings at most."""
    tasks: list[tuple[int, int, int]] = []
    for i, (size, spans) in enumerate(lay.classes):
        tasks += [(size, *span) for span in spans]
        last = i + 1 == len(lay.classes)
        if last or sum(stop - start for _, start, stop in tasks) >= BATCH_ROWS:
            yield tasks, size, 0 if last else lay.classes[i + 1][0] ** 2
            tasks = []


def _complete_in(ev: Evaluation, lay: _Layout, size: int, start: int, stop: int
                 ) -> tuple[np.ndarray, np.ndarray, bool]:
    """(a, b) label pairs where group a's rows in lay.order[start:stop] (groups of `size`
    rows) predict every posting of group b as false positives, and whether any group
    counts more false positives into another than size x size (only a posting listed
    twice in a row can: graph.union_candidates lists each once)."""
    rows = lay.order[start:stop]
    nb = _fp_labels(ev, lay, rows, size)
    width = nb.shape[1]
    nb = np.sort(nb, axis=1).reshape(-1)
    new = np.empty(len(nb), bool)
    new[0] = True
    np.not_equal(nb[1:], nb[:-1], out=new[1:])
    new[::width] = True
    first = np.flatnonzero(new)
    count = np.diff(np.append(first, len(nb)))
    b = nb[first]
    real = b != _NONE
    first, count, b = first[real], count[real], b[real].astype(np.int64)
    full = size * lay.size[b]
    done = count == full
    a = lay.labels32[rows[first[done] // width * size]].astype(np.int64)
    return a, b[done], bool((count > full).any())


def _fp_labels(ev: Evaluation, lay: _Layout, rows: np.ndarray, size: int) -> np.ndarray:
    """Per group of `size` consecutive rows, the labels of its rows' false positives'
    neighbours, padded with _NONE: (groups, width). A false positive is a predicted other
    label: the engine's pred & ~true (true: same label, never at padding), without
    reading the true mask's rows."""
    cand = ev.stage.cand
    pred = ev.pred[rows]
    own = lay.labels32[rows]
    if np.count_nonzero(pred) > DENSE_FROM * pred.size:  # read every cell
        nb = lay.labels32[cand[rows]]
        nb[~pred | (nb == own[:, None])] = _NONE
        return nb.reshape(-1, size * pred.shape[1])
    # sparse (a high threshold, a fusion's wide lists): read the predicted cells only and
    # pack each group's to the left, so its sort is as wide as the most a group holds
    q, c = np.divmod(np.flatnonzero(pred), pred.shape[1])
    lab = lay.labels32[cand[rows[q], c]]
    other = lab != own[q]
    group, lab = q[other] // size, lab[other]
    held = np.bincount(group, minlength=len(rows) // size)
    out = np.full((len(held), max(int(held.max(initial=0)), 1)), _NONE, np.int32)
    out[group, np.arange(len(group)) - (np.cumsum(held) - held)[group]] = lab
    return out


def _complete_back(ev: Evaluation, lay: _Layout, a: np.ndarray, b: np.ndarray
                   ) -> np.ndarray:
    """Per (a, b): whether group b's rows predict every posting of group a."""
    if not len(a):
        return np.zeros(0, bool)
    n_groups = len(lay.size)
    groups = np.unique(b)
    sizes = lay.size[groups]
    at = np.repeat(lay.first[groups] - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
    rows = lay.order[at]
    nb = _fp_labels(ev, lay, rows, 1)
    r, c = np.nonzero(nb != _NONE)
    key = lay.labels32[rows[r]].astype(np.int64) * n_groups + nb[r, c]
    want = np.unique(b * n_groups + a)
    at = np.minimum(np.searchsorted(want, key), len(want) - 1)
    hit = want[at] == key
    count = np.bincount(at[hit], minlength=len(want))
    return count[np.searchsorted(want, b * n_groups + a)] == lay.size[a] * lay.size[b]


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
