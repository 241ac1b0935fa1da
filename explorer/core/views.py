"""Everything the main window shows about a whole scope, computed off the GUI thread: the
query table, the F1 histogram (and the pinned baseline's) and F1 by group size at once;
the threshold curve at once or on first use (a million postings: seconds, which the first
paint of the metrics and the list must not wait for); the error-case lists on first use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from explorer.core.audit import audit
from explorer.core.audit_marks import excluding, marked_rows
from explorer.core.cases import false_positives, missed_pairs, worst_queries
from explorer.core.charts import (
    Curve,
    SizeTable,
    f1_by_group_size,
    f1_histogram,
    param_value,
    threshold_curve,
)
from explorer.core.config import ConfigError
from explorer.core.confusion import confused_groups
from explorer.core.engine import Engine, Evaluation
from explorer.core.evaluate import last_threshold_param
from explorer.core.metrics import Metrics
from explorer.core.queries import QueryTable, query_table
from explorer.core.session import Snapshot, cancellable
from explorer.core.state import label_errors
from explorer.core.sweep import with_param
from explorer.core.titles import raw_titles

CASES = 200  # rows per error-case list
# a scope of at most this many candidate cells computes its curve with the view (tens of
# ms); a larger one leaves it to a job of its own when asked to (with_curve="cheap")
CURVE_INLINE_CELLS = 8_000_000
CASE_LISTS = {"worst": worst_queries, "false_positives": false_positives,
              "missed": missed_pairs, "confused": confused_groups}


def audit_list(engine: Engine, ev: Evaluation, n: int | None = None) -> pd.DataFrame:
    """The label audit's first `n` findings (explorer.core.audit) with what the app needs
    besides: `member_ids` (the posting ids of `members`: what marking a finding marks)
    and `title_raw` (the row's title as stored)."""
    frame = audit(engine, ev, n)
    ids = (engine.bundle.items["posting_id"].to_numpy()[engine.rows]
           if engine.bundle is not None else np.arange(engine.n).astype(str))
    members = [tuple(ids[np.array(m.split(), np.int64)].tolist())
               for m in frame["members"]]
    raw = (raw_titles(engine.bundle)[engine.rows[frame["row"].to_numpy(np.int64)]]
           if engine.bundle is not None else frame["title"].to_numpy())
    return frame.assign(member_ids=members, title_raw=raw)


# every list ScopeView.case computes on first use: the error cases and the label audit
LISTS = {**CASE_LISTS, "audit": audit_list}


@dataclass(frozen=True, eq=False)
class WithoutMarked:
    """The scope's mean metrics without its postings marked as label errors
    (audit_marks.excluding); metrics None when none of them is in the scope or no query
    is left."""

    n: int  # postings of the scope marked as label errors
    metrics: Metrics | None
    marks: frozenset[str] = field(repr=False)  # every posting id marked as a label error
    rows: np.ndarray = field(repr=False)       # their scope rows (reused while unchanged)


@dataclass(frozen=True)
class ScopeView:
    snapshot: Snapshot
    table: QueryTable
    histogram: tuple[np.ndarray, np.ndarray] | None
    baseline_histogram: tuple[np.ndarray, np.ndarray] | None
    by_size: SizeTable | None
    cases_limit: int = CASES
    without_marked: WithoutMarked | None = None  # set when a posting of the scope is marked
    _cases: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    _curve: dict[str, Curve | None] = field(default_factory=dict, repr=False)

    @property
    def curve(self) -> Curve | None:
        """The threshold curve of the last-acting threshold (None without labels), computed
        on first use when the view was made without it: touch it on the engine's thread
        only (`has_curve` says whether it is ready)."""
        if "curve" not in self._curve:
            self._curve["curve"] = _curve_of(self.snapshot)
        return self._curve["curve"]

    @property
    def has_curve(self) -> bool:
        return "curve" in self._curve

    def case(self, kind: str) -> pd.DataFrame:
        """One list (a key of LISTS: an error-case list or the audit), computed on first
        use: 5-55 ms each at 34k postings, which the app pays only for the list on screen."""
        if kind not in self._cases:
            engine, ev = self.snapshot.engine, self.snapshot.evaluation
            self._cases[kind] = (LISTS[kind](engine, ev, self.cases_limit)
                                 if ev.has_labels else pd.DataFrame())
        return self._cases[kind]

    def has_case(self, kind: str) -> bool:
        return kind in self._cases

    def cases(self) -> dict[str, pd.DataFrame]:
        """Every error-case list (worst queries, false positives, missed, confused groups;
        not the audit)."""
        return {kind: self.case(kind) for kind in CASE_LISTS}


def curve_in_job(view: ScopeView, cancelled: Callable[[], bool] | None = None
                 ) -> Curve | None:
    """`view.curve`, computed in a worker job that stops (Cancelled) at the sweep's
    checkpoints once `cancelled()` is true."""
    with cancellable(view.snapshot.engine, cancelled):
        return view.curve


def _curve_of(snap: Snapshot) -> Curve | None:
    return threshold_curve(snap.engine, snap.config) if snap.evaluation.has_labels else None


def _reused_curve(snap: Snapshot, previous: ScopeView | None) -> Curve | None:
    """The previous view's curve with its line moved, when only the active threshold moved
    (the curve does not depend on its own parameter's value), which is what a slider drag
    does, so a drag costs no sweep; else None."""
    if previous is None or not previous.has_curve or previous.curve is None:
        return None
    cfg = snap.config
    param = last_threshold_param(cfg)
    value = param_value(cfg, param)
    old = previous.snapshot
    try:
        same = (old.engine is snap.engine and previous.curve.param == param
                and with_param(old.config, param, value) == cfg)
    except (ConfigError, ValueError):  # another structure: no such parameter
        same = False
    return replace(previous.curve, current=value) if same else None


def _without_marked(snap: Snapshot, marks: Mapping[str, str] | None,
                    previous: ScopeView | None) -> WithoutMarked | None:
    """The metrics without the scope's postings marked as label errors; None when no
    posting is (or there are no labels). Their rows are looked up once per engine and set
    of marks: a slider move then costs only `excluding` (O(cells), like the evaluation)."""
    errors = label_errors(marks or {})
    engine, ev = snap.engine, snap.evaluation
    if not errors or not ev.has_labels or engine.bundle is None:
        return None
    old = previous.without_marked if previous is not None else None
    if old is not None and old.marks == errors and previous.snapshot.engine is engine:
        rows = old.rows
    else:
        rows = marked_rows(engine, dict(marks or {}))
    metrics = excluding(engine, ev, rows) if len(rows) else None
    return WithoutMarked(len(rows), metrics, errors, rows)


def _same_numbers(old: Snapshot, new: Snapshot) -> bool:
    """True when `new` evaluates what `old` did (only the marks changed, say): its view's
    table, plots, curve and lists still hold."""
    def base(s: Snapshot):
        return None if s.baseline is None else s.baseline.config
    return old.engine is new.engine and old.config == new.config and base(old) == base(new)


def scope_view(snap: Snapshot, previous: ScopeView | None = None, cases: int = CASES,
               with_cases: bool | str = True, with_curve: bool | str = True,
               marks: Mapping[str, str] | None = None) -> ScopeView:
    """Everything shown about the scope; `previous` (the view on screen) lets a pure
    threshold move reuse the curve, and a request that evaluates the same settings (a
    change of marks) reuse all of it; `with_cases` computes the error cases now: all of
    them (True), one list (its LISTS key: the one on screen) or none (False);
    `with_curve` computes the threshold curve now (True), only when the scope is small
    ("cheap": at most CURVE_INLINE_CELLS candidate cells) or never (False); a curve not
    computed now is computed on first use of `ScopeView.curve`. `marks` (posting_id ->
    mark) give `without_marked`."""
    ev = snap.evaluation
    labelled = ev.has_labels
    without = _without_marked(snap, marks, previous)
    if (previous is not None and previous.cases_limit == cases
            and _same_numbers(previous.snapshot, snap)):
        view = replace(previous, snapshot=snap, without_marked=without)  # shares its caches
    else:
        view = ScopeView(
            snapshot=snap,
            table=query_table(snap),
            histogram=f1_histogram(ev.f1) if labelled else None,
            baseline_histogram=(f1_histogram(snap.baseline.f1)
                                if labelled and snap.baseline is not None else None),
            by_size=f1_by_group_size(ev.f1, ev.group_size) if labelled else None,
            cases_limit=cases,
            without_marked=without,
        )
    if not view.has_curve:  # a shared view may have it already
        reused = _reused_curve(snap, previous) if labelled else None
        if reused is not None or not labelled:
            view._curve["curve"] = reused
        elif with_curve is True or (with_curve == "cheap"
                                    and snap.evaluation.pred.size <= CURVE_INLINE_CELLS):
            view._curve["curve"] = _curve_of(snap)
    if isinstance(with_cases, str):
        view.case(with_cases)
    elif with_cases:
        view.cases()
    return view
