"""The head of the confused-groups list without summing every false positive: the pairs
of label groups that the predictions join completely (coverage 1.0), found by a scan of
the groups largest first (explorer.core.confusion falls back to summing every pair when
fewer than n pairs are complete)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from explorer.core.engine import Engine, Evaluation
from explorer.core.spaces import in_threads

__all__ = ["fully_joined"]

# rows per task of the per-group scan (whole groups of one size; ~3 MB of (rows, C)
# temporaries at C = 50), and per batch of tasks between checks whether to stop
BLOCK_ROWS = 1 << 15
BATCH_ROWS = 1 << 16
# share of predicted cells in a block above which the scan reads every candidate's label;
# below (a sum fusion predicts 7% of its 99 columns at 1M rows) only the predicted cells',
# packed per group so the row-wise sort is as wide as the most a group holds
DENSE_FROM = 0.25
_NONE = np.iinfo(np.int32).max  # sorts after every label: not a false positive


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


def fully_joined(engine: Engine, ev: Evaluation, n: int
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
