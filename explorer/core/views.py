"""Everything the main window shows about a whole scope, computed off the GUI thread: the
query table, the F1 histogram (and the pinned baseline's) and F1 by group size at once;
the threshold curve at once or on first use (a million postings: seconds, which the first
paint of the metrics and the list must not wait for); the error-case lists on first use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

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
from explorer.core.evaluate import last_threshold_param
from explorer.core.queries import QueryTable, query_table
from explorer.core.session import Snapshot, cancellable
from explorer.core.sweep import with_param

CASES = 200  # rows per error-case list
# a scope of at most this many candidate cells computes its curve with the view (tens of
# ms); a larger one leaves it to a job of its own when asked to (with_curve="cheap")
CURVE_INLINE_CELLS = 8_000_000
CASE_LISTS = {"worst": worst_queries, "false_positives": false_positives,
              "missed": missed_pairs, "confused": confused_groups}


@dataclass(frozen=True)
class ScopeView:
    snapshot: Snapshot
    table: QueryTable
    histogram: tuple[np.ndarray, np.ndarray] | None
    baseline_histogram: tuple[np.ndarray, np.ndarray] | None
    by_size: SizeTable | None
    cases_limit: int = CASES
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
        """One error-case list (a key of CASE_LISTS), computed on first use: 5-55 ms each at
        34k postings, which the app pays only for the list on screen."""
        if kind not in self._cases:
            engine, ev = self.snapshot.engine, self.snapshot.evaluation
            self._cases[kind] = (CASE_LISTS[kind](engine, ev, self.cases_limit)
                                 if ev.has_labels else pd.DataFrame())
        return self._cases[kind]

    def has_case(self, kind: str) -> bool:
        return kind in self._cases

    def cases(self) -> dict[str, pd.DataFrame]:
        """Every error-case list (worst queries, false positives, missed, confused groups)."""
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


def scope_view(snap: Snapshot, previous: ScopeView | None = None, cases: int = CASES,
               with_cases: bool | str = True, with_curve: bool | str = True) -> ScopeView:
    """Everything shown about the scope; `previous` (the view on screen) lets a pure
    threshold move reuse the curve; `with_cases` computes the error cases now: all of
    them (True), one list (its CASE_LISTS key: the one on screen) or none (False);
    `with_curve` computes the threshold curve now (True), only when the scope is small
    ("cheap": at most CURVE_INLINE_CELLS candidate cells) or never (False); a curve not
    computed now is computed on first use of `ScopeView.curve`."""
    ev = snap.evaluation
    labelled = ev.has_labels
    view = ScopeView(
        snapshot=snap,
        table=query_table(snap),
        histogram=f1_histogram(ev.f1) if labelled else None,
        baseline_histogram=(f1_histogram(snap.baseline.f1)
                            if labelled and snap.baseline is not None else None),
        by_size=f1_by_group_size(ev.f1, ev.group_size) if labelled else None,
        cases_limit=cases,
    )
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
