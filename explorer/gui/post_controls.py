"""The graph post-processing rows of the controls panel (explorer.core.post): the mutual
filter, merging of groups and chiselling, each a check box with its values underneath.

`PostControls` holds no configuration of its own: `set_post` shows a `Post`, and every
analyst change is emitted as a function of the stored `Post` (`edited(change, rebuild)`),
so the panel applies it to its current configuration through its one commit path (which
refuses an invalid value) and a field the analyst did not touch keeps its exact value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.core.config import Post
from explorer.gui.value_rows import DECIMALS, ThresholdSlider, set_value

PostChange = Callable[[Post], Post]

# what a stage starts from when it is switched on
MUTUAL_DEFAULT = 0.0
MERGE_DEFAULT = (3.0, 51)    # 51: the largest label group of the real table
CHISEL_DEFAULT = (10, 0.9)
MUTUAL_LOW = -1.0            # reverse scores are cosines: -1 keeps any pair scored back
TARGET_RANGE, LARGEST_RANGE, SIZE_RANGE = (1.0, 100.0), (2, 1000), (1, 1000)
TARGET_DECIMALS = 2

# one sentence each, in explorer.core.post's words
MUTUAL_TIP = ("Reciprocal filter: a pair q → c is kept only when c scores q back at least "
              "this threshold (a q that is not among c's candidates is dropped); Min2 then "
              "rescues a query the filter left alone.")
MERGE_TIP = ("Agglomerative merging: the predicted pairs, best score first, join their two "
             "postings' groups unless the joined group would exceed the largest group, "
             "until the mean group size reaches the target; a query then predicts every "
             "candidate of its group.")
CHISEL_TIP = ("Group-size shaping: a query that predicts more than the set size keeps only "
              "the pairs scoring at least the stricter threshold (and itself).")


def _show_number(box: QSpinBox | QDoubleSpinBox, value: float, lo: float, hi: float) -> None:
    """`value` without signals, the range widened to hold a stored value outside the usual
    one (a settings file may say merge target 250) so that the widget shows what is stored."""
    with QSignalBlocker(box):
        box.setRange(min(lo, value), max(hi, value))
        box.setValue(value)


class PostControls(QWidget):
    """Three checkable stages (see the module docstring). Emits nothing from `set_post`."""

    edited = Signal(object, bool)  # (PostChange, whether the rows change shape)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, objectName="postStages")
        self.mutual_check = self._check("Mutual", "postMutual", "Mutual filter", MUTUAL_TIP)
        self.mutual = ThresholdSlider("postMutualThreshold", "Mutual threshold")
        self.mutual.setRange(MUTUAL_LOW, 1.0)

        self.merge_check = self._check("Merge groups", "postMerge", "Merge groups", MERGE_TIP)
        self.merge_target = QDoubleSpinBox(
            objectName="postMergeTarget", minimum=TARGET_RANGE[0], maximum=TARGET_RANGE[1],
            singleStep=0.5, decimals=TARGET_DECIMALS, keyboardTracking=False)
        self.merge_target.setAccessibleName("Merge target mean group size")
        self.merge_largest = self._int_spin("postMergeLargest", "Merge largest group",
                                            LARGEST_RANGE)

        self.chisel_check = self._check("Chisel", "postChisel", "Chisel large sets",
                                        CHISEL_TIP)
        self.chisel_size = self._int_spin("postChiselSize", "Chisel set size", SIZE_RANGE)
        self.chisel_threshold = ThresholdSlider("postChiselThreshold",
                                                "Chisel stricter threshold")

        self.mutual_row = self._row("postMutualRow", "Mutual filter settings", MUTUAL_TIP,
                                    ("Reverse score ≥", self.mutual))
        self.merge_row = self._row("postMergeRow", "Merge settings", MERGE_TIP,
                                   ("Target mean size", self.merge_target),
                                   ("Largest group", self.merge_largest))
        self.chisel_row = self._row("postChiselRow", "Chisel settings", CHISEL_TIP,
                                    ("Set size >", self.chisel_size),
                                    ("Stricter threshold", self.chisel_threshold))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for part in (self.mutual_check, self.mutual_row, self.merge_check, self.merge_row,
                     self.chisel_check, self.chisel_row):
            lay.addWidget(part)

        self.mutual_check.toggled.connect(
            lambda on: self._emit(mutual=MUTUAL_DEFAULT if on else None))
        self.merge_check.toggled.connect(
            lambda on: self._emit(merge=MERGE_DEFAULT if on else None))
        self.chisel_check.toggled.connect(
            lambda on: self._emit(chisel=CHISEL_DEFAULT if on else None))
        self.mutual.valueChanged.connect(self._on_mutual)
        self.merge_target.valueChanged.connect(
            lambda v: self._on_pair("merge", 0, round(float(v), TARGET_DECIMALS)))
        self.merge_largest.valueChanged.connect(lambda v: self._on_pair("merge", 1, int(v)))
        self.chisel_size.valueChanged.connect(lambda v: self._on_pair("chisel", 0, int(v)))
        self.chisel_threshold.valueChanged.connect(
            lambda v: self._on_pair("chisel", 1, round(float(v), DECIMALS)))

    # -- building -------------------------------------------------------------------------
    @staticmethod
    def _check(text: str, name: str, accessible: str, tip: str) -> QCheckBox:
        box = QCheckBox(text, objectName=name)
        box.setAccessibleName(accessible)
        box.setToolTip(tip)
        return box

    @staticmethod
    def _int_spin(name: str, accessible: str, span: tuple[int, int]) -> QSpinBox:
        spin = QSpinBox(objectName=name, minimum=span[0], maximum=span[1],
                        keyboardTracking=False)  # a value per typed number, not per digit
        spin.setAccessibleName(accessible)
        return spin

    @staticmethod
    def _row(name: str, accessible: str, tip: str, *fields: tuple[str, QWidget]) -> QWidget:
        row = QWidget(objectName=name)
        row.setAccessibleName(accessible)
        row.setToolTip(tip)
        form = QFormLayout(row)
        form.setContentsMargins(18, 0, 0, 0)  # under its check box
        for label, widget in fields:
            widget.setToolTip(tip)
            if isinstance(widget, QAbstractSpinBox):
                widget.setAccelerated(True)
            form.addRow(label, widget)
        return row

    # -- showing --------------------------------------------------------------------------
    def set_post(self, post: Post) -> None:
        """Show `post`: a stage that is off shows its default values, hidden."""
        for check, row, on in ((self.mutual_check, self.mutual_row, post.mutual),
                               (self.merge_check, self.merge_row, post.merge),
                               (self.chisel_check, self.chisel_row, post.chisel)):
            with QSignalBlocker(check):
                check.setChecked(on is not None)
            row.setVisible(on is not None)
        set_value(self.mutual, MUTUAL_DEFAULT if post.mutual is None else post.mutual,
                  low=MUTUAL_LOW)
        target, largest = post.merge or MERGE_DEFAULT
        _show_number(self.merge_target, target, *TARGET_RANGE)
        _show_number(self.merge_largest, largest, *LARGEST_RANGE)
        size, threshold = post.chisel or CHISEL_DEFAULT
        _show_number(self.chisel_size, size, *SIZE_RANGE)
        set_value(self.chisel_threshold, threshold)

    # -- the analyst's changes ------------------------------------------------------------
    def _emit(self, **stage: object) -> None:
        """A stage switched on (its defaults) or off: the rows change shape."""
        self.edited.emit(lambda post: replace(post, **stage), True)

    def _on_mutual(self, value: float) -> None:
        value = round(float(value), DECIMALS)
        self.edited.emit(lambda post: replace(post, mutual=value), False)

    def _on_pair(self, stage: str, index: int, value: float) -> None:
        """One number of merge or chisel; the other keeps its stored value."""
        default = MERGE_DEFAULT if stage == "merge" else CHISEL_DEFAULT

        def change(post: Post) -> Post:
            pair = list(getattr(post, stage) or default)
            pair[index] = value
            return replace(post, **{stage: tuple(pair)})

        self.edited.emit(change, False)
