"""pyqtgraph views of the data in explorer.core.charts: the threshold curve with its
draggable threshold line, the per-query F1 histogram and mean F1 by true group size.

Each widget creates its plot items once and updates them with setData / setOpts, so a
refresh after every slider move stays cheap."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QGraphicsItem, QLabel, QVBoxLayout, QWidget

from explorer.core.charts import Curve, SizeTable, param_label

F1_COLOUR = (31, 119, 180)
PRECISION_COLOUR = (44, 160, 44)
RECALL_COLOUR = (214, 39, 40)
LINE_COLOUR = (60, 60, 60)
BASELINE_COLOUR = (230, 120, 0)
LABEL_STYLE = {"color": "#202020", "font-size": "10pt"}
# 0..1 ticks only: the headroom above 1 holds a legend or counts, not values
UNIT_TICKS = [[(v, f"{v:.1f}") for v in np.linspace(0.0, 1.0, 6)],
              [(v, "") for v in np.linspace(0.1, 0.9, 5)]]


def _plot_widget(parent: QWidget, x_label: str, y_label: str) -> pg.PlotWidget:
    """A white, antialiased plot with dark, readable axes and no pan / zoom (the views
    are fixed summaries; dragging belongs to the threshold line)."""
    pw = pg.PlotWidget(parent, background="w")
    pw.setAntialiasing(True)
    item = pw.getPlotItem()
    item.setMouseEnabled(x=False, y=False)
    item.setMenuEnabled(False)
    item.hideButtons()
    item.showGrid(x=True, y=True, alpha=0.15)
    font = QFont()
    font.setPointSize(9)
    for name, text in (("bottom", x_label), ("left", y_label)):
        axis = item.getAxis(name)
        axis.setPen("#404040")
        axis.setTextPen("#202020")
        axis.setStyle(tickFont=font)
        axis.setLabel(text, **LABEL_STYLE)
        # replaying an axis (ticks, text, grid) costs ~4 ms a paint; the line moves on
        # every slider step, so keep each axis as a pixmap until it really changes
        axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    return pw


def _legend(pw: pg.PlotWidget, **kwargs) -> pg.LegendItem:
    kwargs.setdefault("offset", (-10, 10))
    return pw.getPlotItem().addLegend(labelTextColor="#202020", brush=(255, 255, 255, 210),
                                      pen="#c0c0c0", **kwargs)


class _PlotHolder(QWidget):
    """A QWidget wrapping one PlotWidget (so the app lays out plain widgets)."""

    def __init__(self, x_label: str, y_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot_widget = _plot_widget(self, x_label, y_label)
        self.plot_item: pg.PlotItem = self.plot_widget.getPlotItem()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot_widget)


class ThresholdPlot(_PlotHolder):
    """Mean P, R and F1 against the active threshold. The vertical line is the threshold:
    dragging it emits `thresholdDragged(value)` on every move (value rounded to
    `decimals`, repeats suppressed) and `thresholdReleased(value)` when let go;
    `set_threshold` moves it without emitting either. The title reads the curve's F1 at
    the line and its best F1."""

    thresholdDragged = Signal(float)
    thresholdReleased = Signal(float)

    def __init__(self, parent: QWidget | None = None, decimals: int = 3) -> None:
        super().__init__("threshold", "mean over queries", parent)
        self.title_label = QLabel(objectName="thresholdTitle",
                                  alignment=Qt.AlignmentFlag.AlignCenter)
        self.title_label.setStyleSheet("QLabel {background: white; color: #202020;}")
        self.layout().insertWidget(0, self.title_label)
        self.decimals = decimals
        self._quiet = False
        self._last: float | None = None
        # headroom above 1 keeps the one-row legend off the curves
        self.plot_item.setYRange(-0.01, 1.22, padding=0)
        self.plot_item.getAxis("left").setTicks(UNIT_TICKS)
        _legend(self.plot_widget, offset=(10, 5), colCount=4)
        self.curves: dict[str, pg.PlotDataItem] = {}
        for key, name, colour in (("f1", "F1", F1_COLOUR),
                                  ("precision", "precision", PRECISION_COLOUR),
                                  ("recall", "recall", RECALL_COLOUR)):
            width = 3 if key == "f1" else 2
            self.curves[key] = self.plot_item.plot(
                [], [], name=name, antialias=True, pen=pg.mkPen(colour, width=width))
        self.best_marker = self.plot_item.plot(
            [], [], name="best F1", pen=None, symbol="o", symbolSize=10, antialias=True,
            symbolBrush=F1_COLOUR, symbolPen=pg.mkPen("w", width=1.5))
        self.line = pg.InfiniteLine(pos=0.5, angle=90, movable=True,
                                    pen=pg.mkPen(LINE_COLOUR, width=2),
                                    hoverPen=pg.mkPen((0, 0, 0), width=3))
        self.line.setZValue(10)
        self.line_label = pg.InfLineLabel(self.line, text="{value:.3f}", position=0.06,
                                          color="#202020", fill=(255, 255, 255, 200))
        self.plot_item.addItem(self.line)
        self.line.sigPositionChanged.connect(self._on_moved)
        self.line.sigPositionChangeFinished.connect(self._on_released)
        self.curve: Curve | None = None

    # -- updates --------------------------------------------------------------------------
    def set_curve(self, curve: Curve) -> None:
        """Draw `curve`, mark its F1 optimum and put the line at its current value."""
        self.curve = curve
        x = np.asarray(curve.values, np.float64)
        for key, item in self.curves.items():
            item.setData(x, np.asarray(getattr(curve, key), np.float64))
        self.best_marker.setData([curve.best], [curve.best_f1])
        # the parameter in words ("INB iteration 2 threshold"), not its name (inb2.threshold)
        self.plot_item.getAxis("bottom").setLabel(curve.label or param_label(curve.param),
                                                  **LABEL_STYLE)
        lo, hi = float(x.min()), float(x.max())
        self.line.setBounds((lo, hi))
        self.plot_item.setXRange(lo, hi, padding=0.02)
        self.set_threshold(curve.current)

    def set_pending(self, value: float) -> None:
        """No curve yet (computed in a job of its own at a million postings): the old one is
        cleared, never shown for settings it does not describe; the line stays at `value`."""
        self.curve = None
        for item in (*self.curves.values(), self.best_marker):
            item.setData([], [])
        self.set_threshold(value)
        self.title_label.setText("computing the threshold curve…")

    def set_threshold(self, value: float) -> None:
        """Move the line (within the curve's range) without emitting a signal."""
        self._quiet = True
        try:
            self.line.setValue(float(value))
        finally:
            self._quiet = False
        self._last = self._rounded()
        self._update_title()

    def threshold(self) -> float:
        return self._rounded()

    def title(self) -> str:
        """The curve's F1 at the line and its best F1, as the title shows them ("" with
        no curve)."""
        if self.curve is None:
            return ""
        t = self.line.value()
        return (f"F1 {self.curve.at(t)[0]:.4f} at {t:.3f}  ·  "
                f"best {self.curve.best_f1:.4f} at {self.curve.best:.3f}")

    def _update_title(self) -> None:
        if self.curve is None:
            return  # "computing…" stays until the curve comes
        # a Qt label, not the plot's title item: retitling the plot re-lays it out and
        # regenerates both axes, which cost more than the rest of a threshold move
        self.title_label.setText(self.title())

    # -- line events -----------------------------------------------------------------------
    def _rounded(self) -> float:
        return round(float(self.line.value()), self.decimals)

    def _on_moved(self) -> None:
        if self._quiet:
            return
        self._update_title()
        value = self._rounded()
        if value != self._last:
            self._last = value
            self.thresholdDragged.emit(value)

    def _on_released(self) -> None:
        if not self._quiet:
            self.thresholdReleased.emit(self._rounded())


class HistogramPlot(_PlotHolder):
    """Per-query F1 histogram as bars, optionally with a pinned baseline's histogram
    drawn over it as an outline."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("per-query F1", "queries", parent)
        self.plot_item.setXRange(0.0, 1.0, padding=0.02)
        self.plot_item.enableAutoRange(axis="y")
        self.legend = _legend(self.plot_widget)
        self.bars = pg.BarGraphItem(x0=[], x1=[], height=[], brush=(*F1_COLOUR, 170),
                                    pen=pg.mkPen("w", width=1))
        self.plot_item.addItem(self.bars)
        self.legend.addItem(self.bars, "current")
        self.baseline = pg.PlotDataItem(stepMode="center", antialias=True,
                                        pen=pg.mkPen(BASELINE_COLOUR, width=2))
        self.baseline.setZValue(5)
        self.baseline.hide()
        self.plot_item.addItem(self.baseline)

    def set_data(self, edges: np.ndarray, counts: np.ndarray) -> None:
        """Bars of `counts` between consecutive `edges` (as from `f1_histogram`)."""
        edges = np.asarray(edges, np.float64)
        self.bars.setOpts(x0=edges[:-1], x1=edges[1:],
                          height=np.asarray(counts, np.float64))

    def set_baseline(self, edges: np.ndarray | None, counts: np.ndarray | None = None
                     ) -> None:
        """Outline a baseline's histogram; `None` removes it."""
        if edges is None or counts is None:
            if self.baseline.isVisible():
                self.baseline.hide()
                self.baseline.clear()
                self.legend.removeItem(self.baseline)
            return
        self.baseline.setData(np.asarray(edges, np.float64), np.asarray(counts, np.float64))
        if not self.baseline.isVisible():
            self.baseline.show()
            self.legend.addItem(self.baseline, "baseline")


class GroupSizePlot(_PlotHolder):
    """Mean F1 by true group size bucket: one bar per bucket, the bucket labels on the
    x axis, the number of queries written above each bar and listed in the tooltip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("true group size", "mean F1", parent)
        self.plot_item.setYRange(0.0, 1.1, padding=0)
        self.plot_item.getAxis("left").setTicks(UNIT_TICKS)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.65, brush=(*F1_COLOUR, 200),
                                    pen=pg.mkPen("w", width=1))
        self.plot_item.addItem(self.bars)
        self.count_texts: list[pg.TextItem] = []  # a pool: grown when needed, never rebuilt
        self.table: SizeTable | None = None

    def set_data(self, table: SizeTable) -> None:
        """Draw a table from `f1_by_group_size`."""
        self.table = table
        n = len(table)
        x = np.arange(n, dtype=np.float64)
        self.bars.setOpts(x=x, height=np.asarray(table.mean_f1, np.float64))
        self.plot_item.getAxis("bottom").setTicks(
            [[(float(i), label) for i, label in enumerate(table.labels)]])
        self.plot_item.setXRange(-0.6, max(n, 1) - 0.4, padding=0)
        while len(self.count_texts) < n:
            text = pg.TextItem(color="#202020", anchor=(0.5, 1.0))
            self.plot_item.addItem(text)
            self.count_texts.append(text)
        for i, text in enumerate(self.count_texts):
            if i < n:
                text.setText(f"n={int(table.n_queries[i])}")
                text.setPos(float(i), float(table.mean_f1[i]))
            text.setVisible(i < n)
        rows = [f"{label}: {int(c)} queries, mean F1 {m:.4f}" for label, c, m in
                zip(table.labels, table.n_queries, table.mean_f1, strict=True)]
        self.setToolTip("\n".join(rows) if rows else "no queries")
