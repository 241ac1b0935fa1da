"""The threshold curve of a large scope comes after the view (the first paint of a million
postings must not wait for a sweep): computed on first use, equal to the inline one,
reused on a threshold move, cancellable between blocks, and drawn by the window when it
comes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from explorer.core import sweep as sweep_module
from explorer.core import views
from explorer.core.bundle import Bundle
from explorer.core.charts import threshold_curve
from explorer.core.config import MatchConfig
from explorer.core.session import Cancelled, Session
from explorer.core.views import curve_in_job, scope_view
from explorer.gui.app import app_context
from explorer.gui.main_window import MainWindow
from explorer.gui.settings import AppSettings

CFG = MatchConfig("single", ("tfidf",), (0.5,))


@pytest.fixture
def session(tiny_bundle: Path) -> Session:
    return Session(Bundle.open(tiny_bundle))


def test_a_deferred_curve_equals_the_inline_one(session, monkeypatch):
    snap = session.compute("fold2", CFG)
    inline = scope_view(snap, with_cases=False)
    assert inline.has_curve
    monkeypatch.setattr(views, "CURVE_INLINE_CELLS", 0)
    later = scope_view(snap, with_cases=False, with_curve="cheap")
    assert not later.has_curve  # the view itself is complete without it
    assert later.table is not None and later.histogram is not None
    curve = later.curve  # computed on first use
    assert later.has_curve
    np.testing.assert_array_equal(curve.f1, inline.curve.f1)
    np.testing.assert_array_equal(curve.values, inline.curve.values)
    assert curve.current == inline.curve.current == 0.5
    # a threshold move reuses the curve at once, even with deferral asked for
    moved = scope_view(session.compute("fold2", CFG.replace(thresholds=(0.6,))), later,
                       with_cases=False, with_curve=False)
    assert moved.has_curve and moved.curve.f1 is curve.f1 and moved.curve.current == 0.6
    # another structure does not
    other = scope_view(session.compute("fold2", CFG.replace(min2=(0.3,))), later,
                       with_cases=False, with_curve=False)
    assert not other.has_curve
    assert other.curve.f1 == pytest.approx(threshold_curve(
        other.snapshot.engine, other.snapshot.config).f1)


def test_a_curve_job_stops_between_blocks(session, monkeypatch):
    monkeypatch.setattr(sweep_module, "EVENT_BLOCK_ROWS", 1)  # many batches of blocks
    snap = session.compute("fold2", CFG.replace(thresholds=(0.45,)))
    view = scope_view(snap, with_cases=False, with_curve=False)
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return True

    with pytest.raises(Cancelled):
        curve_in_job(view, cancelled)
    assert asked and not view.has_curve
    assert snap.engine.checkpoint is None  # the hook is removed again
    done = curve_in_job(view, lambda: False)
    assert view.has_curve and done is view.curve and done.current == pytest.approx(0.45)


def test_the_window_draws_a_deferred_curve_when_it_comes(qtbot, tiny_bundle, tmp_path,
                                                         monkeypatch):
    monkeypatch.setattr(views, "CURVE_INLINE_CELLS", 0)
    settings = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    w = MainWindow(Session(Bundle.open(tiny_bundle)), tiny_bundle, app_context(settings))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.viewApplied, timeout=60_000):
        w.show()
    qtbot.waitUntil(lambda: w.threshold_plot.curve is not None, timeout=60_000)
    assert w.view.has_curve and w.threshold_plot.curve is w.view.curve
    assert "best" in w.threshold_plot.title_label.text()
    drawn = w.threshold_plot.curve
    # a threshold move keeps the drawn curve and moves the line
    value = round(w.config.thresholds[0] + 0.05, 3)
    with qtbot.waitSignal(w.viewApplied, timeout=60_000):
        w.set_config(w.config.replace(thresholds=(value,)))
    assert w.threshold_plot.curve.f1 is drawn.f1
    assert w.threshold_plot.threshold() == pytest.approx(value)
    # Min2 on: another curve, pending until its job has run, then drawn
    with qtbot.waitSignal(w.viewApplied, timeout=60_000):
        w.set_config(w.config.replace(min2=(0.3,)))
    qtbot.waitUntil(lambda: w.threshold_plot.curve is not None
                    and w.threshold_plot.curve.f1 is not drawn.f1, timeout=60_000)
    assert w.threshold_plot.curve is w.view.curve
    w.worker.stop()
