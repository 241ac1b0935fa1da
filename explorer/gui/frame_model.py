"""A read-only table model over a pandas DataFrame (the error-case lists)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

Index = QModelIndex | QPersistentModelIndex


class FrameModel(QAbstractTableModel):
    """Shows `columns` of a frame (header text -> column name); floats with 3 decimals."""

    def __init__(self, columns: dict[str, str], parent=None) -> None:
        super().__init__(parent)
        self._columns = columns
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
        if (role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal
                and 0 <= section < len(self._columns)):
            return list(self._columns)[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in (Qt.ItemDataRole.DisplayRole,
                                               Qt.ItemDataRole.ToolTipRole):
            return None
        col = list(self._columns.values())[index.column()]
        value = self._frame[col].iat[index.row()]
        if isinstance(value, float | np.floating):
            return "–" if not np.isfinite(value) else f"{value:.3f}"
        return str(value)
