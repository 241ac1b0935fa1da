"""Error cases behind the means: worst queries, strongest false-positive pairs, closest
missed pairs (explorer.core.cases) and the label groups the predictions join
(explorer.core.confusion). Activating a row makes its query current."""

from __future__ import annotations

import pandas as pd
from PySide6.QtCore import QModelIndex, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QTabWidget, QWidget

from explorer.gui.frame_model import FrameModel

WORST = {"posting id": "posting_id", "title": "title", "group": "group_size",
         "predicted": "n_pred", "F1": "f1", "P": "precision", "R": "recall"}
PAIRS = {"score": "score", "posting id": "posting_id", "title": "title",
         "neighbour id": "neighbour_id", "neighbour title": "neighbour_title"}
GROUPS = {"joined": "coverage", "FP pairs": "fp_pairs", "sizes": "sizes",
          "mean score": "mean_score", "amounts differ": "amounts", "title": "title",
          "other group's title": "neighbour_title"}
# header text -> what the column holds (the headers are short; these say it in words)
TIPS = {
    "posting id": "The query posting's id.",
    "title": "The title as read (decoded); its tooltip shows it as stored when that differs.",
    "group": "True group size: the postings of its label group, this one included.",
    "predicted": "How many postings it predicts, itself included.",
    "F1": "F1 of this posting's predictions.", "P": "Precision of this posting's predictions.",
    "R": "Recall of this posting's predictions.",
    "score": "The pair's score under the current settings (the value the threshold cuts).",
    "neighbour id": "The other posting of the pair.",
    "neighbour title": "The other posting's title, as read.",
    "joined": "The share of all cross pairs of the two groups that is predicted (1.000: "
              "every posting of each group matches every posting of the other).",
    "FP pairs": "Predicted (query, posting) pairs across the two groups, both directions.",
    "sizes": "The two groups' true sizes.",
    "mean score": "Mean score of those pairs.",
    "amounts differ": "The amounts the strongest pair's titles disagree on (none: the two "
                      "groups may be one product labelled twice).",
    "other group's title": "The title of the strongest pair's posting in the other group.",
}
GROUPS_TIP = ("Pairs of label groups joined by false positives. 'joined' is the share of "
              "all cross pairs predicted (1.000: every posting of each group matches every "
              "posting of the other). Different amounts: a pack-size hard case; none: the "
              "two groups may be one product labelled twice.")


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
        self.worst = FrameModel(WORST, self, TIPS)
        self.false_pos = FrameModel(PAIRS, self, TIPS)
        self.missed = FrameModel(PAIRS, self, TIPS)
        self.confused = FrameModel(GROUPS, self, TIPS)
        self.models = {"worst": self.worst, "false_positives": self.false_pos,
                       "missed": self.missed, "confused": self.confused}  # tab order
        for model, title in ((self.worst, "Worst queries"),
                             (self.false_pos, "Strongest false positives"),
                             (self.missed, "Closest misses"),
                             (self.confused, "Confused groups")):
            view = _view(model)
            # a click jumps to the query; double-click / Enter also opens the pair
            view.clicked.connect(lambda idx, m=model: self._activated(m, idx, pair=False))
            view.activated.connect(lambda idx, m=model: self._activated(m, idx))
            self.addTab(view, title)
        self.setTabToolTip(3, GROUPS_TIP)

    @property
    def current_kind(self) -> str:
        """The list on screen (a key of explorer.core.views.CASE_LISTS)."""
        return list(self.models)[max(self.currentIndex(), 0)]

    def set_case(self, kind: str, frame: pd.DataFrame) -> None:
        """Show one list; the others keep their rows until they are shown again."""
        if kind == "confused" and len(frame):
            frame = frame.assign(sizes=[f"{a} + {b}" for a, b in zip(
                frame["group_size"], frame["neighbour_group_size"], strict=True)])
        self.models[kind].set_frame(frame)
        titles = {"false_positives": "Strongest false positives", "missed": "Closest misses",
                  "confused": "Confused groups"}
        if kind in titles:
            self.setTabText(list(self.models).index(kind), f"{titles[kind]} ({len(frame)})")

    def _activated(self, model: FrameModel, index: QModelIndex, pair: bool = True) -> None:
        row = model.frame.iloc[index.row()]
        self.queryRequested.emit(int(row["row"]))
        if pair and "neighbour" in row:
            self.pairRequested.emit(int(row["row"]), int(row["neighbour"]))
