"""The value widgets of the settings panel: a 0..1 threshold slider with numeric entry
and keyboard steps, a weight spin box, a column of labelled values rebuilt only when its
labels change, and the rows of INB iterations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from PySide6.QtCore import QEvent, QObject, QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QWidget
from superqt import QDoubleSlider, QLabeledDoubleSlider

from explorer.core.config import InbStage

MIN2_GAP = 0.1
DECIMALS = 3


def min2_default(threshold: float) -> float:
    """Min2's threshold when it is switched on: 0.1 looser than the threshold, not below 0."""
    return round(max(threshold - MIN2_GAP, 0.0), DECIMALS)


class ThresholdSlider(QLabeledDoubleSlider):
    """A 0..1 slider and its numeric entry in one widget (3 decimals). Arrow keys step
    0.005 and Page Up/Down 0.05: superqt's float slider handles no keys of its own."""

    def __init__(self, name: str, accessible: str) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.setRange(0.0, 1.0)
        self.setDecimals(DECIMALS)
        self.setSingleStep(0.005)
        self.setPageStep(0.05)
        self.setObjectName(name)
        self.setAccessibleName(accessible)
        self._bar = self.findChild(QDoubleSlider)
        self._bar.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self._bar and event.type() == QEvent.Type.KeyPress:
            step = {Qt.Key.Key_Right: 1, Qt.Key.Key_Up: 1, Qt.Key.Key_Left: -1,
                    Qt.Key.Key_Down: -1}.get(event.key())
            page = {Qt.Key.Key_PageUp: 1, Qt.Key.Key_PageDown: -1}.get(event.key())
            if step or page:
                delta = step * self.singleStep() if step else page * self.pageStep()
                self.setValue(round(self.value() + delta, DECIMALS))
                return True
        return super().eventFilter(obj, event)


def weight_box(name: str, accessible: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox(objectName=name, minimum=0.0, maximum=1.0, singleStep=0.05,
                         decimals=2, keyboardTracking=False)
    box.setAccessibleName(accessible)
    return box


def set_value(widget: QLabeledDoubleSlider | QDoubleSpinBox, value: float,
              low: float = 0.0) -> None:
    """Show `value` without signals on a `low`..1 range, widened to hold a stored value
    outside it (cosines can be negative) so that it round-trips."""
    with QSignalBlocker(widget):
        widget.setRange(min(low, value), max(1.0, value))
        widget.setValue(value)


class ValueRows(QWidget):
    """A column of labelled value widgets (sliders or spin boxes), rebuilt only when the
    labels change so a widget being dragged is never replaced under the mouse."""

    edited = Signal(int, float)

    def __init__(self, name: str, item_name: str, title: str,
                 make: Callable[[str, str], QLabeledDoubleSlider | QDoubleSpinBox]) -> None:
        super().__init__(objectName=name)
        self._item_name = item_name
        self._title = title
        self._make = make
        self._labels: tuple[str, ...] = ()
        self.widgets: list[QLabeledDoubleSlider | QDoubleSpinBox] = []
        self._form = QFormLayout(self)
        self._form.setContentsMargins(0, 0, 0, 0)

    def set_rows(self, labels: Sequence[str], values: Sequence[float]) -> None:
        if tuple(labels) != self._labels:
            while self._form.rowCount():
                self._form.removeRow(0)
            self.widgets = []
            for i, label in enumerate(labels):
                w = self._make(f"{self._item_name}{i}", f"{self._title} {label}")
                w.valueChanged.connect(partial(self._on_value, i))
                self._form.addRow(label, w)
                self.widgets.append(w)
            self._labels = tuple(labels)
        for w, v in zip(self.widgets, values, strict=True):
            set_value(w, v)

    def _on_value(self, row: int, value: float) -> None:
        self.edited.emit(row, float(value))


class InbRows(QWidget):
    """One row per INB iteration: its threshold, and a Min2 check box with its threshold."""

    thresholdEdited = Signal(int, float)
    min2Toggled = Signal(int, bool)
    min2Edited = Signal(int, float)

    def __init__(self) -> None:
        super().__init__(objectName="inbStages")
        self.thresholds: list[QLabeledDoubleSlider] = []
        self.min2_checks: list[QCheckBox] = []
        self.min2s: list[QLabeledDoubleSlider] = []
        self._form = QFormLayout(self)
        self._form.setContentsMargins(0, 0, 0, 0)

    def set_stages(self, stages: Sequence[InbStage]) -> None:
        if len(stages) != len(self.thresholds):
            self._rebuild(len(stages))
        for k, st in enumerate(stages):
            set_value(self.thresholds[k], st.threshold)
            on = st.min2 is not None
            with QSignalBlocker(self.min2_checks[k]):
                self.min2_checks[k].setChecked(on)
            set_value(self.min2s[k], st.min2 if on else min2_default(st.threshold))
            self.min2s[k].setVisible(on)

    def _rebuild(self, n: int) -> None:
        while self._form.rowCount():
            self._form.removeRow(0)
        self.thresholds, self.min2_checks, self.min2s = [], [], []
        for k in range(n):
            t = ThresholdSlider(f"inbThreshold{k}", f"INB iteration {k + 1} threshold")
            t.valueChanged.connect(partial(self._on_threshold, k))
            check = QCheckBox("Min2", objectName=f"inbMin2Check{k}")
            check.setAccessibleName(f"INB iteration {k + 1} Min2")
            check.toggled.connect(partial(self._on_min2_toggled, k))
            m2 = ThresholdSlider(f"inbMin2{k}", f"INB iteration {k + 1} Min2 threshold")
            m2.valueChanged.connect(partial(self._on_min2, k))
            row = QHBoxLayout()
            row.addWidget(check)
            row.addWidget(m2, 1)
            self._form.addRow(f"Iteration {k + 1}", t)
            self._form.addRow("", row)
            self.thresholds.append(t)
            self.min2_checks.append(check)
            self.min2s.append(m2)

    def _on_threshold(self, k: int, value: float) -> None:
        self.thresholdEdited.emit(k, float(value))

    def _on_min2_toggled(self, k: int, on: bool) -> None:
        self.min2Toggled.emit(k, bool(on))

    def _on_min2(self, k: int, value: float) -> None:
        self.min2Edited.emit(k, float(value))
