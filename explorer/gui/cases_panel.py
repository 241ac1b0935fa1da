"""Error cases behind the means: worst queries, strongest false-positive pairs, closest
missed pairs (explorer.core.cases). Activating a row makes its query current."""

from __future__ import annotations

import pandas as pd
from PySide6.QtCore import QModelIndex, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QTabWidget, QWidget

from explorer.gui.frame_model import FrameModel

WORST = {"posting id": "posting_id", "title": "title", "group": "group_size",
         "predicted": "n_pred", "F1": "f1", "P": "precision", "R": "recall"}
PAIRS = {"score": "score", "posting id": "posting_id", "title": "title",
         "neighbour": "neighbour_id", "neighbour title": "neighbour_title"}


def _view(model: FrameModel) -> QTableView:
    v = QTableView()
    v.setModel(model)
    v.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    v.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    v.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    v.verticalHeader().hide()
    v.verticalHeader().setDefaultSectionSize(22)
    v.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    v.horizontalHeader().setStretchLastSection(True)
    return v


class CasesPanel(QTabWidget):
    queryRequested = Signal(int)          # scope-local row
    pairRequested = Signal(int, int)      # scope-local query row, neighbour row

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.worst = FrameModel(WORST, self)
        self.false_pos = FrameModel(PAIRS, self)
        self.missed = FrameModel(PAIRS, self)
        for model, title in ((self.worst, "Worst queries"),
                             (self.false_pos, "Strongest false positives"),
                             (self.missed, "Closest misses")):
            view = _view(model)
            # a click jumps to the query; double-click / Enter also opens the pair
            view.clicked.connect(lambda idx, m=model: self._activated(m, idx, pair=False))
            view.activated.connect(lambda idx, m=model: self._activated(m, idx))
            self.addTab(view, title)

    def set_cases(self, worst: pd.DataFrame, false_pos: pd.DataFrame,
                  missed: pd.DataFrame) -> None:
        self.worst.set_frame(worst)
        self.false_pos.set_frame(false_pos)
        self.missed.set_frame(missed)
        self.setTabText(1, f"Strongest false positives ({len(false_pos)})")
        self.setTabText(2, f"Closest misses ({len(missed)})")

    def _activated(self, model: FrameModel, index: QModelIndex, pair: bool = True) -> None:
        row = model.frame.iloc[index.row()]
        self.queryRequested.emit(int(row["row"]))
        if pair and "neighbour" in row:
            self.pairRequested.emit(int(row["row"]), int(row["neighbour"]))
