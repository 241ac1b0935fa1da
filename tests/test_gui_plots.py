"""The plot widgets, offscreen: they show the data they are given, the threshold line
emits when dragged and stays quiet when set, items are reused across updates, and each
widget paints something."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pg = pytest.importorskip("pyqtgraph")

from explorer.core.bundle import Bundle  # noqa: E402
from explorer.core.charts import (  # noqa: E402
    Curve,
    f1_by_group_size,
    f1_histogram,
    threshold_curve,
)
from explorer.core.config import MatchConfig  # noqa: E402
from explorer.core.engine import Engine  # noqa: E402
from explorer.gui.plots import GroupSizePlot, HistogramPlot, ThresholdPlot  # noqa: E402


def hand_curve() -> Curve:
    v = np.linspace(0.0, 1.0, 11)
    f1 = np.array([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.75, 0.6, 0.4, 0.2])
    return Curve("threshold", v, f1, np.linspace(0.1, 1.0, 11), np.linspace(1.0, 0.1, 11),
                 current=0.4, best=0.6)


def colours(widget, size=(420, 300)) -> int:
    widget.resize(*size)
    img = widget.grab().toImage()
    assert img.width() > 0 and img.height() > 0
    step = 3
    seen = {img.pixel(x, y) for x in range(0, img.width(), step)
            for y in range(0, img.height(), step)}
    return len(seen)


@pytest.fixture
def tplot(qtbot):
    w = ThresholdPlot()
    qtbot.addWidget(w)
    return w


def test_threshold_plot_shows_the_curve(tplot):
    c = hand_curve()
    tplot.set_curve(c)
    for key in ("f1", "precision", "recall"):
        x, y = tplot.curves[key].getData()
        np.testing.assert_allclose(x, c.values)
        np.testing.assert_allclose(y, getattr(c, key))
    assert tplot.line.value() == pytest.approx(0.4)
    bx, by = tplot.best_marker.getData()
    assert bx.tolist() == [0.6] and by.tolist() == [pytest.approx(0.8)]
    assert tplot.title() == "F1 0.6000 at 0.400  ·  best 0.8000 at 0.600"
    tplot.set_threshold(0.65)  # between grid points: interpolated
    assert tplot.title().startswith("F1 0.7750 at 0.650")
    tplot.line.setValue(0.1)
    assert tplot.title().startswith("F1 0.3000 at 0.100")
    assert tplot.line.movable
    assert tplot.plot_item.getAxis("bottom").labelText == "threshold"


def test_threshold_plot_reuses_its_items(tplot):
    before = list(tplot.plot_item.items)
    tplot.set_curve(hand_curve())
    tplot.set_curve(hand_curve())
    assert list(tplot.plot_item.items) == before


def test_dragging_the_line_emits_the_threshold(tplot, qtbot):
    tplot.set_curve(hand_curve())
    with qtbot.waitSignal(tplot.thresholdDragged, timeout=1000) as blocker:
        tplot.line.setValue(0.42)
    assert blocker.args == [pytest.approx(0.42)]
    got = []
    tplot.thresholdDragged.connect(got.append)
    tplot.line.setValue(0.7004)  # rounds to 0.7
    tplot.line.setValue(0.7001)  # still 0.7: no second recompute
    tplot.line.setValue(0.55)
    assert got == [pytest.approx(0.7), pytest.approx(0.55)]
    assert tplot.threshold() == pytest.approx(0.55)


def test_release_emits_once(tplot, qtbot):
    tplot.set_curve(hand_curve())
    tplot.line.setValue(0.33)
    with qtbot.waitSignal(tplot.thresholdReleased, timeout=1000) as blocker:
        tplot.line.sigPositionChangeFinished.emit(tplot.line)
    assert blocker.args == [pytest.approx(0.33)]


def test_set_threshold_does_not_emit(tplot, qtbot):
    tplot.set_curve(hand_curve())
    with qtbot.assertNotEmitted(tplot.thresholdDragged), \
            qtbot.assertNotEmitted(tplot.thresholdReleased):
        tplot.set_threshold(0.8)
        tplot.set_curve(hand_curve())
    assert tplot.line.value() == pytest.approx(0.4)
    # after a quiet move, dragging back to the previous value is a change again
    tplot.set_threshold(0.8)
    with qtbot.waitSignal(tplot.thresholdDragged, timeout=1000):
        tplot.line.setValue(0.4)


def test_line_stays_within_the_curve(tplot):
    c = hand_curve()
    tplot.set_curve(Curve(c.param, c.values * 0.5, c.f1, c.precision, c.recall, 0.2, 0.3))
    tplot.set_threshold(0.9)
    assert tplot.line.value() == pytest.approx(0.5)


def test_threshold_plot_renders(tplot):
    blank = colours(tplot)
    tplot.set_curve(hand_curve())
    assert colours(tplot) > max(blank, 4)


def test_threshold_plot_with_engine_curve(tplot, tiny_bundle):
    engine = Engine(Bundle.open(tiny_bundle), "fold2")
    cfg = MatchConfig("single", ("tfidf",), (0.537,))
    c = threshold_curve(engine, cfg)
    tplot.set_curve(c)
    assert tplot.line.value() == pytest.approx(0.537, abs=1e-6)
    assert tplot.plot_item.getAxis("bottom").labelText == "tfidf threshold"
    assert len(tplot.curves["f1"].getData()[0]) == len(c.values)


# -- histogram ---------------------------------------------------------------------------
def test_histogram_bars_and_baseline(qtbot):
    w = HistogramPlot()
    qtbot.addWidget(w)
    edges, counts = f1_histogram(np.array([0.1, 0.1, 0.6, 1.0, 1.0, 1.0]), bins=5)
    w.set_data(edges, counts)
    np.testing.assert_allclose(w.bars.opts["x0"], edges[:-1])
    np.testing.assert_allclose(w.bars.opts["x1"], edges[1:])
    assert np.asarray(w.bars.opts["height"]).tolist() == [2, 0, 0, 1, 3]
    assert not w.baseline.isVisible()

    base_counts = np.array([1, 1, 1, 1, 2])
    w.set_baseline(edges, base_counts)
    assert w.baseline.isVisible()
    x, y = w.baseline.getData()
    np.testing.assert_allclose(x, edges)
    np.testing.assert_allclose(y, base_counts)
    assert "baseline" in [label.text for _, label in w.legend.items]
    w.set_baseline(edges, base_counts)  # again: one legend entry, not two
    assert [label.text for _, label in w.legend.items].count("baseline") == 1

    w.set_baseline(None)
    assert not w.baseline.isVisible()
    assert "baseline" not in [label.text for _, label in w.legend.items]


def test_histogram_renders(qtbot):
    w = HistogramPlot()
    qtbot.addWidget(w)
    blank = colours(w)
    w.set_data(*f1_histogram(np.random.default_rng(0).random(200)))
    w.set_baseline(*f1_histogram(np.random.default_rng(1).random(200)))
    assert colours(w) > max(blank, 4)


# -- group size --------------------------------------------------------------------------
def test_group_size_bars_labels_counts(qtbot):
    w = GroupSizePlot()
    qtbot.addWidget(w)
    t = f1_by_group_size(np.array([1.0, 0.5, 0.2, 0.4, 0.8, 0.3]),
                         np.array([2, 2, 3, 5, 9, 12]))
    w.set_data(t)
    np.testing.assert_allclose(w.bars.opts["x"], [0, 1, 2, 3])
    np.testing.assert_allclose(w.bars.opts["height"], [0.75, 0.2, 0.6, 0.3])
    ticks = w.plot_item.getAxis("bottom")._tickLevels[0]
    assert [label for _, label in ticks] == ["2", "3", "5-9", "10-19"]
    shown = [tx.toPlainText() for tx in w.count_texts if tx.isVisible()]
    assert shown == ["n=2", "n=1", "n=2", "n=1"]
    assert "5-9: 2 queries, mean F1 0.6000" in w.toolTip()

    pool = list(w.count_texts)
    w.set_data(f1_by_group_size(np.array([0.5]), np.array([4])))  # fewer buckets
    assert w.count_texts == pool  # reused, extra ones hidden
    assert [tx.toPlainText() for tx in w.count_texts if tx.isVisible()] == ["n=1"]
    w.set_data(f1_by_group_size(np.array([]), np.array([], int)))
    assert not any(tx.isVisible() for tx in w.count_texts)


def test_group_size_renders(qtbot):
    w = GroupSizePlot()
    qtbot.addWidget(w)
    blank = colours(w)
    w.set_data(f1_by_group_size(np.array([1.0, 0.5, 0.2]), np.array([2, 3, 60])))
    assert colours(w) > max(blank, 4)
