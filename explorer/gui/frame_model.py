"""A read-only table model over a pandas DataFrame (the error-case lists)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

Index = QModelIndex | QPersistentModelIndex


def text_tooltip(text: str, raw: str | None = None) -> str:
    """A cell's tooltip: its whole text, and `raw` (the text as stored: a title before
    decoding) when that differs; rich text, escaped, so a title holding "<b>" or "&amp;"
    reads as it is."""
    tip = f"<p>{html.escape(text)}</p>"
    if raw is not None and raw != text:
        tip += f"<p><i>stored as:</i> {html.escape(raw)}</p>"
    return tip


class FrameModel(QAbstractTableModel):
    """Shows `columns` of a frame (header text -> column name); floats with 3 decimals.
    A text column X whose frame also holds X_raw (a title as stored) shows that in its
    tooltip; `tips` (header text -> tooltip) explain the headers."""

    def __init__(self, columns: dict[str, str], parent=None,
                 tips: Mapping[str, str] | None = None) -> None:
        super().__init__(parent)
        self._columns = columns
        self._tips = dict(tips or {})
        self._frame = pd.DataFrame(columns=list(columns.values()))

    def set_frame(self, frame: pd.DataFrame) -> None:
        self.beginResetModel()
        self._frame = frame.reset_index(drop=True)
        self.endResetModel()

    @property
    def frame(self) -> pd.DataFrame:
        return self._frame

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._frame)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self._columns):
            return None
        header = list(self._columns)[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return header
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tips.get(header)
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in (Qt.ItemDataRole.DisplayRole,
                                               Qt.ItemDataRole.ToolTipRole):
            return None
        col = list(self._columns.values())[index.column()]
        value = self._frame[col].iat[index.row()]
        if isinstance(value, float | np.floating):
            return "–" if not np.isfinite(value) else f"{value:.3f}"
        if role == Qt.ItemDataRole.ToolTipRole and isinstance(value, str):
            raw = f"{col}_raw"
            return text_tooltip(value, str(self._frame[raw].iat[index.row()])
                                if raw in self._frame else None)
        return str(value)
