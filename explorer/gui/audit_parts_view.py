"""A label-audit finding's parts side by side (issue 12): one column per part of a split
finding's label group (or per group of a merge finding), largest first, each its postings
as neighbour-grid tiles (the same model, delegate and thumbnail cache) under a header with
its size, the mean score inside it and towards the other parts, and its mark.

The parts are computed by :func:`compute_parts` in a worker job (explorer.core.audit_parts;
a group of thousands must not freeze the window); the main window posts it and hands the
result to :meth:`AuditPartsView.set_parts`. A click on a tile makes that posting the query;
a column's buttons mark every posting of its part (the viewer state's marks)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from explorer.core.audit_marks import LABEL_ERROR, TRUE_DIFFERENCE
from explorer.core.audit_parts import GroupParts, finding_parts
from explorer.core.state import ViewerState, mark_of, remarked
from explorer.core.views import ScopeView
from explorer.gui.neighbours import NeighbourGrid
from explorer.gui.thumbnails import ThumbnailCache
from explorer.gui.tile_delegate import TILE_SIZE

__all__ = ["AuditPartsDialog", "AuditPartsView", "PartsShown", "compute_parts"]

MARK_BUTTONS = ((LABEL_ERROR, "Label error"), (TRUE_DIFFERENCE, "True difference"),
                ("", "Clear"))
HEADER_TIP = ("within: the mean score between this part's postings; to the others: with "
              "the other columns' postings, both ways. The audit's evidence: scores before "
              "INB, clipped to 0-1, a pair outside the candidates counting 0.")


@dataclass(frozen=True, eq=False)
class PartsShown:
    """A worker result: one finding's parts in one view, ready to show."""

    view: ScopeView
    parts: GroupParts
    names: tuple[str, ...]          # each part's label group
    tiles: tuple[pd.DataFrame, ...]  # each part's tiles (NeighbourModel.set_tiles frames)


def compute_parts(view: ScopeView, finding: Mapping[str, Any]) -> PartsShown:
    """A split (merge) finding's parts under `view`, single postings gathered into one
    column; run it on the worker thread (it touches the engine)."""
    engine, ev = view.snapshot.engine, view.snapshot.evaluation
    if not 0 <= int(finding["row"]) < engine.n:
        raise ValueError("that finding is not of the scope on screen")
    parts = finding_parts(engine, ev, finding).gathered()
    t = view.table
    raw = t.title_raw if t.title_raw is not None else t.title
    tiles = tuple(pd.DataFrame({
        "row": r, "posting_id": t.posting_id[r], "title": t.title[r], "title_raw": raw[r],
        "status": "", "score": np.nan, "admitted_by": "", "reason": "", "gap": np.nan})
        for r in parts.rows)
    return PartsShown(view, parts, tuple(str(t.label[int(r[0])]) for r in parts.rows), tiles)


def _score(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.3f}"


class PartColumn(QWidget):
    """One part: its header and mark buttons over its tiles."""

    markRequested = Signal(str)  # a mark for every posting of the part ("": clear)

    def __init__(self, cache: ThumbnailCache | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QLabel(wordWrap=True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setToolTip(HEADER_TIP)
        self.grid = NeighbourGrid(cache)
        self.grid.setMinimumWidth(TILE_SIZE.width() + 28)  # a tile and a scroll bar
        buttons = QHBoxLayout()
        self.buttons: dict[str, QToolButton] = {}
        for mark, text in MARK_BUTTONS:
            b = self.buttons[mark] = QToolButton(text=text)
            b.setToolTip(f"{text}: every posting of this part" if mark else
                         "Clear the marks of this part's postings")
            b.clicked.connect(lambda _=False, m=mark: self.markRequested.emit(m))
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.header)
        lay.addLayout(buttons)
        lay.addWidget(self.grid, 1)


class AuditPartsView(QWidget):
    """The columns of one finding's parts (see the module docstring)."""

    postingClicked = Signal(int)  # scope row

    def __init__(self, cache: ThumbnailCache | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cache = cache
        self._state: ViewerState | None = None
        self.shown: PartsShown | None = None
        self.columns: list[PartColumn] = []
        self._heads: list[str] = []
        self.summary = QLabel(wordWrap=True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self._strip = QWidget()
        self._row = QHBoxLayout(self._strip)
        self._row.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea(widgetResizable=True)  # many parts scroll sideways
        scroll.setWidget(self._strip)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addWidget(scroll, 1)

    def bind(self, state: ViewerState) -> None:
        """Show and set the marks of `state` (the viewer state's marks field)."""
        self._state = state
        state.subscribe(lambda changed: "marks" in changed and self._show_marks())

    def set_pending(self, text: str) -> None:
        """No columns, `text` instead (a computation in progress, or why it failed)."""
        self.shown = None
        self._heads = []
        self._set_columns(0)
        self.summary.setText(html.escape(text))

    def set_parts(self, shown: PartsShown) -> None:
        p = shown.parts
        self.shown = shown
        self._set_columns(len(p.rows))
        within, between = p.within(), p.between()
        self._heads = []
        for i, (col, tiles) in enumerate(zip(self.columns, shown.tiles, strict=True)):
            col.grid.set_tiles(tiles, shown.view.snapshot.engine.rows)
            who = ("postings linked to no other" if p.alone and i == len(p.rows) - 1
                   else f"part {i + 1}" if p.kind == "split" else "label group")
            self._heads.append(
                f"<b>{html.escape(who)}</b>: {len(tiles)} posting{'s' * (len(tiles) != 1)}"
                f" · group {html.escape(shown.names[i])}<br>within {_score(within[i])}"
                f" · to the others {_score(between[i])}")
        sizes = " + ".join(map(str, p.sizes))
        what = (f"split of label group {html.escape(shown.names[0])}" if p.kind == "split"
                else f"merge of label groups {' and '.join(map(html.escape, shown.names))}")
        self.summary.setText(f"<b>{what}</b>: {sizes} postings; mean score between the "
                             f"parts {_score(p.mean_between)}")
        self._show_marks()

    def part_ids(self, i: int) -> tuple[str, ...]:
        """The posting ids of column `i`."""
        if self.shown is None:
            return ()
        return tuple(self.shown.tiles[i]["posting_id"].astype(str))

    def _set_columns(self, n: int) -> None:
        while len(self.columns) > n:
            col = self.columns.pop()
            self._row.removeWidget(col)
            col.deleteLater()
        while len(self.columns) < n:
            col = PartColumn(self._cache)
            i = len(self.columns)
            col.grid.tileClicked.connect(self.postingClicked)
            col.markRequested.connect(lambda mark, i=i: self._mark(i, mark))
            self._row.addWidget(col, 1)
            self.columns.append(col)

    def _mark(self, i: int, mark: str) -> None:
        if self._state is not None:
            self._state.update(marks=remarked(self._state.marks, self.part_ids(i),
                                              mark or None))

    def _show_marks(self) -> None:
        marks = self._state.marks if self._state is not None else {}
        for i, (col, head) in enumerate(zip(self.columns, self._heads, strict=True)):
            mark = mark_of(marks, self.part_ids(i))
            col.header.setText(head + (f"<br><i>marked: {html.escape(mark)}</i>"
                                       if mark else ""))


class AuditPartsDialog(QDialog):
    """A non-modal window around an :class:`AuditPartsView` (``view``)."""

    def __init__(self, cache: ThumbnailCache | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Audit finding: parts side by side")
        self.resize(960, 720)
        self.view = AuditPartsView(cache)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.view, 1)
        lay.addWidget(buttons)
