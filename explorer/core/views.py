"""Everything the main window shows about a whole scope, computed in one call off the GUI
thread: the query table, the threshold curve, the F1 histogram (and the pinned
baseline's), F1 by group size and the error-case lists."""

from __future__ import annotations

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
from explorer.core.session import Snapshot
from explorer.core.sweep import with_param

CASES = 200  # rows per error-case list
CASE_LISTS = {"worst": worst_queries, "false_positives": false_positives,
              "missed": missed_pairs, "confused": confused_groups}


@dataclass(frozen=True)
class ScopeView:
    snapshot: Snapshot
    table: QueryTable
    curve: Curve | None                     # None without labels
    histogram: tuple[np.ndarray, np.ndarray] | None
    baseline_histogram: tuple[np.ndarray, np.ndarray] | None
    by_size: SizeTable | None
    cases_limit: int = CASES
    _cases: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

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


def _curve(snap: Snapshot, previous: ScopeView | None) -> Curve:
    """The threshold curve; reused from the previous view when only the active threshold
    moved (the curve does not depend on its own parameter's value), which is what a slider
    drag does, so a drag costs no sweep."""
    cfg = snap.config
    param = last_threshold_param(cfg)
    value = param_value(cfg, param)
    if previous is not None and previous.curve is not None:
        old = previous.snapshot
        try:
            same = (old.engine is snap.engine and previous.curve.param == param
                    and with_param(old.config, param, value) == cfg)
        except (ConfigError, ValueError):  # another structure: no such parameter
            same = False
        if same:
            return replace(previous.curve, current=value)
    return threshold_curve(snap.engine, cfg, param)


def scope_view(snap: Snapshot, previous: ScopeView | None = None, cases: int = CASES,
               with_cases: bool | str = True) -> ScopeView:
    """Everything shown about the scope; `previous` (the view on screen) lets a pure
    threshold move reuse the curve; `with_cases` computes the error cases now: all of
    them (True), one list (its CASE_LISTS key: the one on screen) or none (False)."""
    ev = snap.evaluation
    labelled = ev.has_labels
    view = ScopeView(
        snapshot=snap,
        table=query_table(snap),
        curve=_curve(snap, previous) if labelled else None,
        histogram=f1_histogram(ev.f1) if labelled else None,
        baseline_histogram=(f1_histogram(snap.baseline.f1)
                            if labelled and snap.baseline is not None else None),
        by_size=f1_by_group_size(ev.f1, ev.group_size) if labelled else None,
        cases_limit=cases,
    )
    if isinstance(with_cases, str):
        view.case(with_cases)
    elif with_cases:
        view.cases()
    return view
