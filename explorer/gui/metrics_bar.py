"""The always-visible dataset line: mean F1 / P / R and query count of the scope, the
change since the last adjustment, the pinned baseline's F1, the F1 without the postings
marked as label errors (the label audit), and INB progress."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from explorer.core.metrics import Metrics
from explorer.core.views import WithoutMarked


def _signed(x: float) -> str:
    return "±0.000" if abs(x) < 5e-4 else f"{x:+.3f}"


def _colour(x: float) -> str:
    return "#888" if abs(x) < 5e-4 else ("#14823c" if x > 0 else "#be2828")


class MetricsBar(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.main = QLabel(objectName="metricsMain")
        self.delta = QLabel(objectName="metricsDelta")
        self.pinned = QLabel(objectName="metricsPinned")
        self.marked = QLabel(objectName="metricsMarked")
        self.marked.setToolTip("Mean F1 without the postings marked as label errors in the "
                               "Audit tab: none of them is a query, nor counts in another "
                               "query's predictions or true group.")
        self.progress = QProgressBar(objectName="metricsProgress", maximumWidth=160,
                                     textVisible=True)
        # keep its room when hidden: showing it must not re-lay out the window (that resizes
        # every plot, whose repaint costs more than the whole recompute)
        policy = self.progress.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress.setSizePolicy(policy)
        self.progress.hide()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        for w in (self.main, self.delta, self.pinned, self.marked):
            lay.addWidget(w)
        lay.addStretch(1)
        lay.addWidget(self.progress)
        self.main.setText("no bundle")

    def set_metrics(self, metrics: Metrics | None, n_queries: int, scope: str,
                    previous: Metrics | None = None, baseline: Metrics | None = None,
                    without: WithoutMarked | None = None) -> None:
        self.set_without_marked(without if metrics is not None else None)
        if metrics is None:
            self.main.setText(f"<b>{scope}</b>: {n_queries:,} queries, no labels")
            self.delta.clear()
            self.pinned.clear()
            return
        self.main.setText(
            f"<b>{scope}</b> &nbsp; <b>F1 {metrics.f1:.4f}</b> &nbsp; P {metrics.precision:.4f}"
            f" &nbsp; R {metrics.recall:.4f} &nbsp; {metrics.n_queries:,} queries")
        if previous is None:
            self.delta.clear()
        else:
            d = metrics.f1 - previous.f1
            self.delta.setText(f"<span style='color:{_colour(d)}'>{_signed(d)} F1</span> "
                               "since last change")
        if baseline is None:
            self.pinned.clear()
        else:
            d = metrics.f1 - baseline.f1
            self.pinned.setText(f"| pinned F1 {baseline.f1:.4f} "
                                f"(<span style='color:{_colour(d)}'>{_signed(d)}</span>)")

    def set_without_marked(self, without: WithoutMarked | None) -> None:
        """The second figure, while a posting of the scope is marked as a label error."""
        if without is None or not without.n:
            self.marked.clear()
        elif without.metrics is None:
            self.marked.setText(f"| without {without.n:,} marked: no query left")
        else:
            self.marked.setText(f"| without {without.n:,} marked: F1 {without.metrics.f1:.4f}")

    def set_progress(self, done: int, total: int) -> None:
        if total <= 1 or done >= total:
            self.progress.hide()
            return
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"INB {done}/{total}")
        self.progress.show()
