"""A label-audit finding's postings, part by part (issue 12: "show the sub-clusters side
by side").

A split finding's label group falls apart into parts (explorer.core.audit.label_parts:
single linkage over its predicted pairs); a merge finding joins two label groups, here
its two parts. For each part, largest first (ties: the part of the lower first row, as
the audit orders them, so a split's first two parts start at its `row` and `other_row`),
its scope rows and the mean score inside it and towards the other parts. The scores are
the audit's evidence: clipped to [0, 1], the configuration's before INB, a pair outside
the candidates counting 0, over ordered pairs, so a split's `mean_between` is 1 - its
audit score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.core.audit import clipped, evidence_stage, label_parts
from explorer.core.engine import Engine, Evaluation

__all__ = ["PART_KINDS", "GroupParts", "finding_parts", "group_parts", "merge_parts"]

PART_KINDS = ("split", "merge")  # the findings that have parts to show


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.divide(total, count, out=np.full(np.shape(total), np.nan),
                     where=np.asarray(count) > 0)


@dataclass(frozen=True, eq=False)
class GroupParts:
    """Parts of postings and the clipped scores between them (see the module docstring)."""

    kind: str                      # "split": one label group's parts; "merge": two groups
    labels: tuple[int, ...]        # the label codes: the group, or the two groups
    rows: tuple[np.ndarray, ...]   # each part's scope rows, ascending; largest part first
    total: np.ndarray              # (k, k) summed scores of the ordered pairs part i -> j
    count: np.ndarray              # (k, k) how many such ordered pairs there are
    alone: bool = False            # the last part gathers postings linked to none

    @property
    def sizes(self) -> list[int]:
        return [len(r) for r in self.rows]

    def within(self) -> np.ndarray:
        """Each part's mean score between its own postings (NaN: a single posting)."""
        return _mean(np.diag(self.total), np.diag(self.count))

    def between(self) -> np.ndarray:
        """Each part's mean score with the postings of the other parts, both ways (NaN:
        there is one part)."""
        diag = np.diag(self.total), np.diag(self.count)
        total = self.total.sum(0) + self.total.sum(1) - 2 * diag[0]
        count = self.count.sum(0) + self.count.sum(1) - 2 * diag[1]
        return _mean(total, count)

    @property
    def mean_between(self) -> float:
        """The mean score over every ordered pair of postings in different parts."""
        return float(_mean(self.total.sum() - np.trace(self.total),
                           self.count.sum() - np.trace(self.count)))

    def gathered(self, min_size: int = 2) -> GroupParts:
        """A split's parts under `min_size` postings gathered into one last part (a group
        of 60 postings that links none would be 60 columns); a merge as it is."""
        small = [i for i, r in enumerate(self.rows) if len(r) < min_size]
        if self.kind != "split" or len(small) < 2:
            return self
        keep = [i for i in range(len(self.rows)) if i not in small]
        into = np.zeros((len(self.rows), len(keep) + 1))  # old part -> new part
        into[keep, np.arange(len(keep))] = 1
        into[small, len(keep)] = 1
        rows = [self.rows[i] for i in keep] + [np.sort(np.concatenate(
            [self.rows[i] for i in small]))]
        return GroupParts(self.kind, self.labels, tuple(rows), into.T @ self.total @ into,
                          (into.T @ self.count @ into).astype(np.int64), alone=True)


def _scored(engine: Engine, ev: Evaluation, kind: str, labels: tuple[int, ...],
            rows: Sequence[np.ndarray]) -> GroupParts:
    """GroupParts of `rows` (disjoint scope rows, one array per part, in order): every
    candidate pair between two of their postings, scored as the audit weighs it."""
    k = len(rows)
    part = np.full(engine.n, -1, np.int64)
    for i, r in enumerate(rows):
        part[r] = i
    members = np.concatenate(rows)
    st = evidence_stage(engine, ev)
    cand = st.cand[members]
    q = np.repeat(members, cand.shape[1]).reshape(cand.shape)
    inside = (cand >= 0) & (cand != q)
    inside[inside] = part[cand[inside]] >= 0
    pq, pc = part[q[inside]], part[cand[inside]]
    total = np.bincount(pq * k + pc, weights=clipped(st.score[members][inside]),
                        minlength=k * k).reshape(k, k)
    size = np.array([len(r) for r in rows], np.int64)
    count = np.outer(size, size) - np.diag(size)  # ordered pairs, a posting not with itself
    return GroupParts(kind, labels, tuple(np.sort(r) for r in rows), total, count)


def _largest_first(rows: list[np.ndarray]) -> list[np.ndarray]:
    return sorted(rows, key=lambda r: (-len(r), int(r.min())))


def group_parts(engine: Engine, ev: Evaluation, label: int,
                part: np.ndarray | None = None) -> GroupParts:
    """The parts of label group `label` (a label code, as engine.labels holds them) under
    `ev`; `part`: label_parts(engine, ev) when the caller has it already."""
    part = label_parts(engine, ev) if part is None else part
    members = np.flatnonzero(engine.labels == label)
    if not len(members):
        raise ValueError(f"no posting of the scope has label code {label}")
    ids, inverse = np.unique(part[members], return_inverse=True)
    rows = [members[inverse == i] for i in range(len(ids))]
    return _scored(engine, ev, "split", (int(label),), _largest_first(rows))


def merge_parts(engine: Engine, ev: Evaluation, label: int, other: int) -> GroupParts:
    """Two label groups as two parts, in that order."""
    if label == other:
        raise ValueError("a merge joins two different label groups")
    rows = [np.flatnonzero(engine.labels == g) for g in (label, other)]
    if not all(len(r) for r in rows):
        raise ValueError(f"label code {label if not len(rows[0]) else other} has no "
                         "posting in the scope")
    return _scored(engine, ev, "merge", (int(label), int(other)), rows)


def finding_parts(engine: Engine, ev: Evaluation, finding: Mapping[str, Any]) -> GroupParts:
    """The parts of an audit finding (a row of explorer.core.audit.audit: kind, row,
    other_row): a split's group, a merge's two groups; ValueError for a posting finding."""
    kind, row = finding["kind"], int(finding["row"])
    if kind == "split":
        return group_parts(engine, ev, int(engine.labels[row]))
    if kind == "merge":
        return merge_parts(engine, ev, int(engine.labels[row]),
                           int(engine.labels[int(finding["other_row"])]))
    raise ValueError(f"a {kind} finding has no parts to show")
