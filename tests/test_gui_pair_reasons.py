"""The learned classifier's reasons in the app, offscreen (pytest-qt): computed with the
query's explanation on the worker's query lane (never on the GUI thread), carried by the
neighbour tiles, shown in a tile's tooltip and in the pair view; nothing of them in a
mode other than learned."""

from __future__ import annotations

import html
import threading

import pytest
from PySide6.QtCore import Qt
from test_pair_reasons import learned_bundle

from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.explain import explain_query
from explorer.core.pair_reasons import TOP, config_reasons
from explorer.core.session import Session
from explorer.gui.neighbours import TOOLTIP_REASONS, NeighbourGrid
from explorer.gui.pair_view import PairDialog
from explorer.gui.tile_delegate import TileRole
from explorer.gui.worker import Worker

LEARNED = MatchConfig("learned", ("learned:pairs",), (0.5,))
TIP = Qt.ItemDataRole.ToolTipRole


@pytest.fixture(scope="module")
def session(tiny_bundle, tmp_path_factory) -> Session:
    return Session(Bundle.open(learned_bundle(tiny_bundle, tmp_path_factory.mktemp("gui"))))


def explained(qtbot, session: Session, cfg: MatchConfig, q: int = 0):
    """The query's tiles and reasons, computed in the worker's query lane as the app's
    query jobs are; returns (frame, reasons, engine) and the thread that ran the job."""
    worker = Worker()
    ran_on = []

    def job(_progress, _cancelled):
        ran_on.append(threading.current_thread())
        snap = session.compute("fold0", cfg)
        frame = explain_query(snap.engine, snap.evaluation, q, near_misses=4)
        return frame, config_reasons(snap.engine, cfg, q, frame["row"]), snap.engine

    with qtbot.waitSignal(worker.finished, timeout=60_000) as got:
        gen = worker.submit(job, "query", lane="query")
    result = worker.take(*got.args)
    worker.stop()
    assert got.args == ["query", gen] and ran_on[0] is not threading.main_thread()
    return result


def test_tooltip_and_pair_view_show_the_classifiers_reasons(qtbot, session):
    frame, reasons, engine = explained(qtbot, session, LEARNED)
    grid = NeighbourGrid()
    qtbot.addWidget(grid)
    grid.set_tiles(frame, engine.rows, reasons)
    model = grid.model()
    tiles = [r for r in range(model.rowCount())
             if model.index(r).data(TileRole.Status) != "query"]
    assert tiles and reasons
    dialog = PairDialog(session.bundle)
    qtbot.addWidget(dialog)
    shown = 0
    for r in tiles:
        index = model.index(r)
        why = index.data(TileRole.Why)
        assert why is reasons.get(model.scope_row(r))
        if why is None:  # a missed match outside the candidate graph: never scored
            continue
        tip = index.data(TIP)
        assert html.escape(why.headline) in tip
        for reason in why.top(TOOLTIP_REASONS):
            assert html.escape(reason.text) in tip
        dialog.show_tile(model, r)
        assert dialog.view.why.isVisibleTo(dialog)
        text = dialog.view.why.text()
        assert html.escape(why.headline) in text
        for reason in why.top(TOP):
            assert html.escape(reason.text) in text
        shown += bool(why.top(TOP))
    assert shown  # at least one pair with a reason that moved its score
    # the query's own tile explains nothing
    query = next(r for r in range(model.rowCount())
                 if model.index(r).data(TileRole.Status) == "query")
    assert model.index(query).data(TileRole.Why) is None
    assert "match probability" not in model.index(query).data(TIP)


def test_no_reasons_in_another_mode(qtbot, session):
    frame, reasons, engine = explained(qtbot, session, MatchConfig("single", ("tfidf",),
                                                                   (0.5,)))
    assert reasons == {}
    grid = NeighbourGrid()
    qtbot.addWidget(grid)
    grid.set_tiles(frame, engine.rows, reasons)
    model = grid.model()
    dialog = PairDialog(session.bundle)
    qtbot.addWidget(dialog)
    r = next(r for r in range(model.rowCount())
             if model.index(r).data(TileRole.Status) != "query")
    assert model.index(r).data(TileRole.Why) is None
    assert "match probability" not in model.index(r).data(TIP)
    dialog.show_tile(model, r)
    assert not dialog.view.why.isVisibleTo(dialog) and dialog.view.why.text() == ""


def test_reasons_of_another_query_are_refused(qtbot, session):
    frame, _, engine = explained(qtbot, session, LEARNED, q=0)
    other = explained(qtbot, session, LEARNED, q=1)[1]
    grid = NeighbourGrid()
    qtbot.addWidget(grid)
    with pytest.raises(ValueError, match="not of the frame's query"):
        grid.set_tiles(frame, engine.rows, other)


def test_the_app_shows_the_reasons_of_its_learned_mode(qtbot, session, tmp_path):
    """The main window in the learned mode: the query's tiles carry the reasons (its query
    lane computes them with the explanation), shown in the tooltip and the pair view."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QComboBox

    from explorer.gui.app import app_context
    from explorer.gui.main_window import MainWindow
    from explorer.gui.settings import AppSettings

    settings = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    w = MainWindow(Session(session.bundle), session.bundle.root, app_context(settings))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.viewApplied, timeout=60_000):
        w.show()
    combo = w.controls.findChild(QComboBox, "modeCombo")

    def explained(mode: str) -> bool:
        return w.view.snapshot.config.mode == mode and not w.query_pending()

    combo.setCurrentIndex(combo.count() - 1)  # learned:pairs (classifier)
    qtbot.waitUntil(lambda: explained("learned"), timeout=60_000)
    model = w.grid.model()
    r = next(r for r in range(model.rowCount())
             if model.index(r).data(TileRole.Why) is not None)
    why = model.index(r).data(TileRole.Why)
    assert why.query == w.query and html.escape(why.headline) in model.index(r).data(TIP)
    w._show_pair(model.scope_row(r))
    assert html.escape(why.headline) in w.pair_dialog.view.why.text()
    combo.setCurrentIndex(0)  # a mode without a classifier: no reasons
    qtbot.waitUntil(lambda: explained(w.config.mode) and w.config.mode != "learned",
                    timeout=60_000)
    assert all(model.index(r).data(TileRole.Why) is None for r in range(model.rowCount()))
    w.worker.stop()
