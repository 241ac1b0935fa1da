"""The query list: a virtual table model over explorer.core.queries (34k rows cost nothing
until painted); filtering, search and sorting are numpy in the core, not a proxy model."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from explorer.core.queries import COLUMNS, QueryTable, visible_rows
from explorer.gui.frame_model import text_tooltip

HEADERS = {"posting_id": "posting id", "title": "title", "group_size": "group",
           "precision": "P", "recall": "R", "f1": "F1", "delta_f1": "ΔF1"}
HEADER_TIPS = {
    "posting_id": "The posting's id in the table.",
    "title": "The title as read (decoded); its tooltip shows it as stored when that differs.",
    "group_size": "True group size: the postings of this label group, this one included.",
    "precision": "Precision: the share of the predicted matches (the posting itself "
                 "included) that are true.",
    "recall": "Recall: the share of the true group that is predicted.",
    "f1": "F1 of this posting's predictions (the mean over postings is the score).",
    "delta_f1": "ΔF1: the change of this posting's F1 against the pinned baseline.",
}
ROW_ROLE = Qt.ItemDataRole.UserRole + 1  # scope-local row of the posting
NUMERIC = {"precision", "recall", "f1", "delta_f1"}
GOOD, BAD = QColor(20, 130, 60), QColor(190, 40, 40)
Index = QModelIndex | QPersistentModelIndex


class QueryModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._table: QueryTable | None = None
        self._rows = np.zeros(0, np.int64)
        self._columns: tuple[str, ...] = COLUMNS[:-1]
        self._filter, self._search = "all", ""
        self._sort: tuple[str, bool] | None = None

    # -- state --------------------------------------------------------------------------
    def set_table(self, table: QueryTable) -> None:
        """New metrics (same or another scope): refilter and resort under the current view."""
        self.beginResetModel()
        self._table = table
        self._columns = COLUMNS if table.delta_f1 is not None else COLUMNS[:-1]
        self._refresh()
        self.endResetModel()

    def set_view(self, kind: str | None = None, text: str | None = None) -> None:
        self.beginResetModel()
        if kind is not None:
            self._filter = kind
        if text is not None:
            self._search = text
        self._refresh()
        self.endResetModel()

    def _refresh(self) -> None:
        if self._table is None:
            self._rows = np.zeros(0, np.int64)
            return
        sort = self._sort if self._sort and self._sort[0] in self._columns else None
        self._rows = visible_rows(self._table, self._filter, self._search, sort)

    @property
    def table(self) -> QueryTable | None:
        return self._table

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    def scope_row(self, view_row: int) -> int:
        return int(self._rows[view_row])

    def view_row(self, scope_row: int) -> int | None:
        """Where a posting is in the list, None when filtered out."""
        hit = np.flatnonzero(self._rows == scope_row)
        return int(hit[0]) if len(hit) else None

    # -- Qt model -----------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self._columns):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[self._columns[section]]
        if role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS[self._columns[section]]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self._table is None:
            return None
        row = int(self._rows[index.row()])
        col = self._columns[index.column()]
        if role == ROW_ROLE:
            return row
        value = self._table.column(col)[row]
        unjudged = not self._table.has_labels and (col in NUMERIC or col == "group_size")
        if role == Qt.ItemDataRole.DisplayRole and unjudged:
            return "–"  # no labels: nothing to score
        if role == Qt.ItemDataRole.DisplayRole:
            if col == "delta_f1":
                return "" if abs(value) < 1e-9 else f"{value:+.3f}"
            if col in NUMERIC:
                return f"{value:.3f}"
            return str(value) if col != "group_size" else int(value)
        if role == Qt.ItemDataRole.ToolTipRole and col == "title":
            raw = self._table.title_raw
            return text_tooltip(str(value), None if raw is None else str(raw[row]))
        if role == Qt.ItemDataRole.TextAlignmentRole and (col in NUMERIC or col == "group_size"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and not unjudged:
            if col == "delta_f1" and abs(value) >= 1e-9:
                return QBrush(GOOD if value > 0 else BAD)
            if col == "f1" and value < 1:
                return QBrush(BAD if value < 0.5 else QColor(170, 110, 0))
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self._columns):
            return
        self.layoutAboutToBeChanged.emit()
        self._sort = (self._columns[column], order == Qt.SortOrder.DescendingOrder)
        old = self._rows
        self._refresh()
        # keep persistent indexes (the selection) on the same postings
        # an inverse permutation, not a dict: no Python object per posting at a million
        pos = np.full(int(max(old.max(initial=-1), self._rows.max(initial=-1))) + 1, -1,
                      np.int64)
        pos[self._rows] = np.arange(len(self._rows))
        for idx in self.persistentIndexList():
            if idx.isValid():
                new = int(pos[old[idx.row()]])
                self.changePersistentIndex(idx, self.index(new, idx.column()) if new >= 0
                                           else QModelIndex())
        self.layoutChanged.emit()
