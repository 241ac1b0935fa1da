"""Error cases behind the means: worst queries, strongest false-positive pairs, closest
missed pairs (explorer.core.cases), the label groups the predictions join
(explorer.core.confusion), and the label audit (explorer.core.audit) with the analyst's
marks. Clicking a row makes its query current; activating it also opens its pair, and a
split or merge finding's parts side by side (explorer.gui.audit_parts_view)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QTableView,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from explorer.core.audit_marks import LABEL_ERROR, TRUE_DIFFERENCE
from explorer.core.audit_parts import PART_KINDS
from explorer.core.state import mark_of
from explorer.gui.frame_model import FrameModel

WORST = {"posting id": "posting_id", "title": "title", "group": "group_size",
         "predicted": "n_pred", "F1": "f1", "P": "precision", "R": "recall"}
PAIRS = {"score": "score", "posting id": "posting_id", "title": "title",
         "neighbour id": "neighbour_id", "neighbour title": "neighbour_title"}
GROUPS = {"joined": "coverage", "FP pairs": "fp_pairs", "sizes": "sizes",
          "mean score": "mean_score", "amounts differ": "amounts", "title": "title",
          "other group's title": "neighbour_title"}
AUDIT = {"kind": "kind", "score": "score", "groups": "groups", "sizes": "sizes",
         "title": "title", "detail": "detail", "mark": "mark"}
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
    "kind": "split: one label group, two products; merge: two label groups, one product; "
            "posting: one posting in the wrong group.",
    "groups": "The label group, and the other group of a merge or a posting.",
    "detail": "The evidence, in words (in-fold: a learned model's scores on a fold it "
              "trained on, which it has learned by heart).",
    "mark": "Your verdict on the postings a fix would relabel (a split's second part, a "
            "merge's smaller group, the posting); 'mixed' when they differ.",
}
GROUPS_TIP = ("Pairs of label groups joined by false positives. 'joined' is the share of "
              "all cross pairs predicted (1.000: every posting of each group matches every "
              "posting of the other). Different amounts: a pack-size hard case; none: the "
              "two groups may be one product labelled twice.")
AUDIT_TIP = ("Where the labels, not the matcher, look wrong: a split is a label group whose "
             "postings fall apart into parts the settings never match, a merge two label "
             "groups the predictions join, a posting one its own group rejects and another "
             "group takes. The score (0-1, one scale for the three kinds) is the strength "
             "of that evidence under the current settings, best first. Click: the "
             "finding's query. Enter / double-click: its pair, and for a split or a merge "
             "its parts side by side (Ctrl+G: the parts alone), where each part can be "
             "marked.")
MARK_KEYS = {LABEL_ERROR: "Ctrl+L", TRUE_DIFFERENCE: "Ctrl+T", "": "Delete"}
PARTS_KEY = "Ctrl+G"


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


class AuditModel(FrameModel):
    """The audit's findings with a `mark` column from the analyst's marks (by posting id):
    marking repaints that column only, so the selection stays where it was."""

    def __init__(self, parent=None) -> None:
        super().__init__(AUDIT, parent, TIPS)
        self._marks: Mapping[str, str] = {}

    def set_frame(self, frame: pd.DataFrame) -> None:
        super().set_frame(self._marked(frame))

    def set_marks(self, marks: Mapping[str, str]) -> None:
        self._marks = marks
        if self.rowCount():
            self._frame = self._marked(self._frame)
            col = list(AUDIT.values()).index("mark")
            self.dataChanged.emit(self.index(0, col), self.index(self.rowCount() - 1, col))

    def _marked(self, frame: pd.DataFrame) -> pd.DataFrame:
        if "member_ids" not in frame:  # no findings (no labels)
            return frame
        return frame.assign(mark=[mark_of(self._marks, ids) for ids in frame["member_ids"]])


def _audit_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The audit frame with its two display columns: the groups and their sizes (a
    split's once: it is one group)."""
    one = frame["kind"] == "split"
    groups = [a if o else f"{a} / {b}" for a, b, o in zip(
        frame["label_group"], frame["other_label_group"], one, strict=True)]
    sizes = [str(a) if o else f"{a} / {b}" for a, b, o in zip(
        frame["group_size"], frame["other_group_size"], one, strict=True)]
    detail = [f"in-fold scores; {d}" if f else d
              for d, f in zip(frame["detail"], frame["in_fold"], strict=True)]
    return frame.assign(groups=groups, sizes=sizes, detail=detail)


class CasesPanel(QTabWidget):
    queryRequested = Signal(int)          # scope-local row
    pairRequested = Signal(int, int)      # scope-local query row, neighbour row
    markRequested = Signal(str)           # a mark for the selected finding ("": clear it)
    partsRequested = Signal(object)       # a split / merge finding (a row of the audit frame)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.worst = FrameModel(WORST, self, TIPS)
        self.false_pos = FrameModel(PAIRS, self, TIPS)
        self.missed = FrameModel(PAIRS, self, TIPS)
        self.confused = FrameModel(GROUPS, self, TIPS)
        self.audit = AuditModel(self)
        self.models = {"worst": self.worst, "false_positives": self.false_pos,
                       "missed": self.missed, "confused": self.confused,
                       "audit": self.audit}  # tab order
        self.views: dict[str, QTableView] = {}
        for (kind, model), title in zip(self.models.items(), (
                "Worst queries", "Strongest false positives", "Closest misses",
                "Confused groups", "Audit"), strict=True):
            view = self.views[kind] = _view(model)
            # a click jumps to the query; double-click / Enter also opens the pair (and
            # an audit split's or merge's parts)
            view.clicked.connect(lambda idx, m=model: self._activated(m, idx, pair=False))
            view.activated.connect(lambda idx, m=model: self._activated(m, idx))
            self.addTab(self._audit_page(view) if kind == "audit" else view, title)
        self.setTabToolTip(3, GROUPS_TIP)
        self.setTabToolTip(4, AUDIT_TIP)
        self._shown: dict[str, pd.DataFrame] = {}  # the frame each list was last given

    def _audit_page(self, view: QTableView) -> QWidget:
        """The audit table under its mark buttons (also its context menu and shortcuts)."""
        page = QWidget()
        buttons = QHBoxLayout()
        self.mark_actions: dict[str, QAction] = {}
        for mark, text in ((LABEL_ERROR, "Mark as label error"),
                           (TRUE_DIFFERENCE, "Mark as true difference"), ("", "Clear mark")):
            act = QAction(text, view, enabled=False)
            act.setShortcut(QKeySequence(MARK_KEYS[mark]))
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.setToolTip(f"{text}: every posting a fix would relabel "
                           f"({MARK_KEYS[mark]})")
            act.triggered.connect(lambda _=False, m=mark: self.markRequested.emit(m))
            view.addAction(act)
            button = QToolButton()
            button.setDefaultAction(act)
            buttons.addWidget(button)
            self.mark_actions[mark] = act
        self.parts_action = QAction("Show parts side by side", view, enabled=False)
        self.parts_action.setShortcut(QKeySequence(PARTS_KEY))
        self.parts_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.parts_action.setToolTip(f"A split's parts, a merge's two groups, side by side "
                                     f"({PARTS_KEY})")
        self.parts_action.triggered.connect(
            lambda: self.partsRequested.emit(self.selected_finding()))
        view.addAction(self.parts_action)
        parts = QToolButton()
        parts.setDefaultAction(self.parts_action)
        buttons.addWidget(parts)
        buttons.addStretch(1)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        view.selectionModel().selectionChanged.connect(lambda *_: self._enable_marks())
        self.audit.modelReset.connect(self._enable_marks)
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(buttons)
        lay.addWidget(view)
        return page

    def _enable_marks(self) -> None:
        finding = self.selected_finding()
        for act in self.mark_actions.values():
            act.setEnabled(finding is not None)
        self.parts_action.setEnabled(finding is not None and finding["kind"] in PART_KINDS)

    def selected_finding(self) -> pd.Series | None:
        """The audit finding selected (None: none)."""
        rows = self.views["audit"].selectionModel().selectedRows()
        if not rows or rows[0].row() >= self.audit.rowCount():
            return None
        return self.audit.frame.iloc[rows[0].row()]

    def set_marks(self, marks: Mapping[str, str]) -> None:
        """The analyst's marks (posting_id -> mark): the audit's mark column."""
        self.audit.set_marks(marks)

    @property
    def current_kind(self) -> str:
        """The list on screen (a key of explorer.core.views.CASE_LISTS)."""
        return list(self.models)[max(self.currentIndex(), 0)]

    def set_case(self, kind: str, frame: pd.DataFrame) -> None:
        """Show one list; the others keep their rows until they are shown again. The same
        frame again (a view that evaluates the same settings) keeps the rows and selection."""
        if frame is self._shown.get(kind):
            return
        self._shown[kind] = frame
        if kind == "confused" and len(frame):
            frame = frame.assign(sizes=[f"{a} + {b}" for a, b in zip(
                frame["group_size"], frame["neighbour_group_size"], strict=True)])
        if kind == "audit" and len(frame):
            frame = _audit_rows(frame)
        self.models[kind].set_frame(frame)
        titles = {"false_positives": "Strongest false positives", "missed": "Closest misses",
                  "confused": "Confused groups", "audit": "Audit"}
        if kind in titles:
            self.setTabText(list(self.models).index(kind), f"{titles[kind]} ({len(frame)})")

    def _activated(self, model: FrameModel, index: QModelIndex, pair: bool = True) -> None:
        row = model.frame.iloc[index.row()]
        self.queryRequested.emit(int(row["row"]))
        other = "other_row" if model is self.audit else "neighbour"
        if pair and other in row:
            self.pairRequested.emit(int(row["row"]), int(row[other]))
        if pair and model is self.audit and row["kind"] in PART_KINDS:
            self.partsRequested.emit(row)
