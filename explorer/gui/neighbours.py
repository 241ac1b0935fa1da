"""The neighbour grid: one query's tiles (itself, its predicted matches, the true matches it
missed, near misses) as a list model over :func:`explorer.core.explain.explain_query`'s
frame, shown by an icon-mode list view. In the learned mode the tiles also carry the
classifier's reasons (:func:`explorer.core.pair_reasons.config_reasons`, computed with the
frame off the GUI thread), which the tooltip and the pair view show."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from explorer.core.pair_reasons import PairReasons
from explorer.gui.thumbnails import ThumbnailCache
from explorer.gui.tile_delegate import (
    TileDelegate,
    TileRole,
    format_sim,
    provenance_text,
    reasons_html,
    sims_text,
)

__all__ = ["NeighbourGrid", "NeighbourModel", "TileRole"]

Index = QModelIndex | QPersistentModelIndex
_COLUMNS = ("row", "posting_id", "title", "status", "score", "admitted_by", "reason", "gap")
TOOLTIP_REASONS = 3  # the classifier's strongest reasons in a tile's tooltip


class NeighbourModel(QAbstractListModel):
    """One item per row of an ``explain_query`` frame, in its order; data by
    :class:`TileRole` (DisplayRole: the title as read, ToolTipRole: a summary with the
    title as stored when that differs)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._set_empty()
        self._getters: dict[int, Callable[[int], Any]] = {
            TileRole.Status: lambda i: self._status[i],
            TileRole.Title: lambda i: self._title[i],
            TileRole.TitleRaw: lambda i: self._title_raw[i],
            Qt.ItemDataRole.DisplayRole: lambda i: self._title[i],
            TileRole.PostingId: lambda i: self._posting[i],
            TileRole.Score: lambda i: float(self._score[i]),
            TileRole.AdmittedBy: lambda i: self._admitted[i],
            TileRole.Reason: lambda i: self._reason[i],
            TileRole.Gap: lambda i: float(self._gap[i]),
            # read-only and in the frame's order (a plain dict would come back key-sorted)
            TileRole.Sims: lambda i: MappingProxyType(self._sims[i]),
            TileRole.GlobalRow: lambda i: int(self._global[i]),
            TileRole.ScopeRow: lambda i: int(self._scope[i]),
            TileRole.Why: lambda i: self._why[i],
            Qt.ItemDataRole.ToolTipRole: self._tooltip,
        }

    def _set_empty(self) -> None:
        self._status: list[str] = []
        self._title: list[str] = []
        self._title_raw: list[str] = []
        self._posting: list[str] = []
        self._admitted: list[str] = []
        self._reason: list[str] = []
        self._score = np.empty(0)
        self._gap = np.empty(0)
        self._sims: list[dict[str, float]] = []
        self._scope = np.empty(0, np.int64)
        self._global = np.empty(0, np.int64)
        self._why: list[PairReasons | None] = []
        self._modalities: tuple[str, ...] = ()

    def set_tiles(self, frame: pd.DataFrame, engine_rows: np.ndarray,
                  reasons: Mapping[int, PairReasons] | None = None) -> None:
        """Show ``frame`` (an ``explain_query`` result); ``engine_rows`` maps its scope-local
        ``row`` column to bundle rows (``Engine.rows``); ``reasons`` (learned mode only) are
        the classifier's reasons by candidate scope row, of the frame's query."""
        missing = [c for c in _COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"tile frame lacks columns: {', '.join(missing)}")
        scope = frame["row"].to_numpy(np.int64)
        engine_rows = np.asarray(engine_rows)
        if len(scope) and (scope.min() < 0 or scope.max() >= len(engine_rows)):
            raise IndexError("tile rows fall outside the engine's scope")
        reasons = reasons or {}
        query = scope[frame["status"].to_numpy() == "query"]
        if any(len(query) != 1 or why.query != query[0] for why in reasons.values()):
            raise ValueError("the reasons are not of the frame's query")
        sim_cols = [c for c in frame.columns if c.startswith("sim_")]
        self.beginResetModel()
        self._status = [str(s) for s in frame["status"]]
        self._title = [str(s) for s in frame["title"]]
        # the stored title (a frame without title_raw: the title is as stored)
        raw = frame["title_raw"] if "title_raw" in frame.columns else frame["title"]
        self._title_raw = [str(s) for s in raw]
        self._posting = [str(s) for s in frame["posting_id"]]
        self._admitted = [str(s) for s in frame["admitted_by"]]
        self._reason = [str(s) for s in frame["reason"]]
        self._score = frame["score"].to_numpy(np.float64)
        self._gap = frame["gap"].to_numpy(np.float64)
        self._modalities = tuple(c[len("sim_"):] for c in sim_cols)
        sims = frame[sim_cols].to_numpy(np.float64)
        self._sims = [dict(zip(self._modalities, map(float, r), strict=True)) for r in sims]
        self._scope = scope
        self._global = engine_rows[scope].astype(np.int64)
        self._why = [reasons.get(int(r)) for r in scope]
        self.endResetModel()

    def clear(self) -> None:
        self.beginResetModel()
        self._set_empty()
        self.endResetModel()

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities whose similarities the tiles carry, in the frame's order."""
        return self._modalities

    def scope_row(self, row: int) -> int:
        """The scope-local row of the tile at model row ``row``."""
        return int(self._scope[row])

    def row_of_scope(self, scope_row: int) -> int | None:
        """The model row showing scope-local ``scope_row``, None when not shown."""
        hits = np.flatnonzero(self._scope == scope_row)
        return int(hits[0]) if hits.size else None

    def rows_of_global(self, global_row: int) -> list[int]:
        """The model rows showing bundle row ``global_row``."""
        return np.flatnonzero(self._global == global_row).tolist()

    # -- Qt model interface ---------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._status)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._status):
            return None
        getter = self._getters.get(int(role))
        return None if getter is None else getter(index.row())

    def roleNames(self) -> dict[int, bytes]:
        names = super().roleNames()
        names.update({int(r): r.name[0].lower().encode() + r.name[1:].encode() for r in TileRole})
        return names

    def _tooltip(self, i: int) -> str:
        why = provenance_text(self._status[i], self._admitted[i], self._reason[i],
                              float(self._gap[i]), verbose=True)
        lines = [f"<b>{html.escape(self._title[i])}</b>",
                 html.escape(f"{self._posting[i]} · {self._status[i]}"
                             + (f": {why}" if why and why != "query" else "")),
                 f"score {format_sim(float(self._score[i]))}",
                 html.escape(sims_text(self._sims[i], short=False, sep=" · "))]
        if self._title_raw[i] != self._title[i]:
            lines.append(f"<i>stored as:</i> {html.escape(self._title_raw[i])}")
        lines.append(reasons_html(self._why[i], TOOLTIP_REASONS))
        return "<br>".join(line for line in lines if line)


class NeighbourGrid(QListView):
    """Tiles of a fixed size in rows that wrap. ``tileClicked(scope_row)`` on a click;
    ``tileActivated(scope_row)`` on a double-click or Enter, except on the query tile."""

    tileClicked = Signal(int)
    tileActivated = Signal(int)

    def __init__(self, cache: ThumbnailCache | None = None, parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self._cache = cache
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setWrapping(True)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(200)
        self.setSpacing(4)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragDropMode(QAbstractItemView.DragDropMode.NoDragDrop)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setMouseTracking(True)  # hover outline
        self.setModel(NeighbourModel(self))
        self.setItemDelegate(TileDelegate(cache, self))
        self.clicked.connect(self._click)
        self.doubleClicked.connect(self._activate)
        if cache is not None:
            cache.ready.connect(self._repaint_row)

    def model(self) -> NeighbourModel:
        return super().model()

    def itemDelegate(self) -> TileDelegate:
        return super().itemDelegate()

    def set_tiles(self, frame: pd.DataFrame, engine_rows: np.ndarray,
                  reasons: Mapping[int, PairReasons] | None = None) -> None:
        """Show a new query's tiles (and, in the learned mode, the classifier's reasons),
        scrolled to the top."""
        self.model().set_tiles(frame, engine_rows, reasons)
        self.scrollToTop()

    def set_modalities(self, modalities: Sequence[str] | None) -> None:
        """Show only these modalities' similarities on the tiles (None: all)."""
        self.itemDelegate().set_modalities(modalities)
        self.viewport().update()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if (event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and self.state() != QAbstractItemView.State.EditingState
                and self.currentIndex().isValid()):
            self._activate(self.currentIndex())
            event.accept()
            return
        super().keyPressEvent(event)

    def _click(self, index: Index) -> None:
        if index.isValid():
            self.tileClicked.emit(self.model().scope_row(index.row()))

    def _activate(self, index: Index) -> None:
        if index.isValid() and index.data(TileRole.Status) != "query":
            self.tileActivated.emit(self.model().scope_row(index.row()))

    @Slot(int)
    def _repaint_row(self, global_row: int) -> None:
        model = self.model()
        for row in model.rows_of_global(global_row):
            self.update(model.index(row))
