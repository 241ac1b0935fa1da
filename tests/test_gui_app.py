"""The main window over the demo bundle (pytest-qt, offscreen): what it displays equals
what explorer.core computes for the same settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gui_window import TIMEOUT, apply, open_main_window, settle
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QMessageBox

from explorer.core.bundle import Bundle
from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine
from explorer.core.explain import explain_query
from explorer.core.session import Session
from explorer.gui import menus
from explorer.gui.app import app_context, open_window, run_app
from explorer.gui.main_window import MainWindow
from explorer.gui.query_model import ROW_ROLE
from explorer.gui.settings import AppSettings
from explorer.gui.tile_delegate import TileRole

SUM = MatchConfig("sum", ("effnet", "minilm"), (0.55,), weights=(0.5, 0.5))


@pytest.fixture
def window(qtbot, demo_bundle: Path, settings: AppSettings) -> MainWindow:
    w = open_main_window(qtbot, demo_bundle, settings)
    yield w
    w.worker.stop()


def shown_f1(w: MainWindow) -> float:
    return float(re.search(r"F1 ([0-9.]+)", w.metrics.main.text()).group(1))


def core(demo_bundle: Path, scope: str, cfg: MatchConfig):
    return Engine(Bundle.open(demo_bundle), scope).evaluate(cfg)


def test_starts_on_the_test_fold_tuned_on_the_valid_fold(window: MainWindow, demo_bundle):
    assert window.scope == "fold0"
    cfg = window.config
    assert cfg.modalities == ("tfidf",) and cfg.thresholds != (0.5,)  # tuned on fold1
    assert shown_f1(window) == pytest.approx(core(demo_bundle, "fold0", cfg).metrics.f1,
                                             abs=5e-5)
    assert window.model.rowCount() == window.view.snapshot.n
    assert window.query is not None and window.grid.model().rowCount() >= 1


def test_threshold_change_updates_the_dataset_f1(qtbot, window: MainWindow, demo_bundle):
    for t in (0.3, 0.6):
        cfg = window.config.replace(thresholds=(t,))
        with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
            window.set_config(cfg)
        want = core(demo_bundle, "fold0", cfg).metrics
        assert shown_f1(window) == pytest.approx(want.f1, abs=5e-5)
        assert f"{want.n_queries:,} queries" in window.metrics.main.text()
    assert "since last change" in window.metrics.delta.text()


def test_threshold_drag_on_the_plot_sets_the_config(qtbot, window: MainWindow, demo_bundle):
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.threshold_plot.thresholdDragged.emit(0.42)
    assert window.config.thresholds == (pytest.approx(0.42),)
    assert window.controls.config() == window.config
    assert shown_f1(window) == pytest.approx(
        core(demo_bundle, "fold0", window.config).metrics.f1, abs=5e-5)


def test_grid_tiles_and_badges_match_the_core(qtbot, window: MainWindow, demo_bundle):
    apply(qtbot, window, SUM.replace(min2=(0.45,)))
    engine = Engine(Bundle.open(demo_bundle), "fold0")
    ev = engine.evaluate(window.config)
    q = int(np.argmin(ev.f1))  # an error case: some FP or missed tiles
    window.select_query(q)
    settle(qtbot, window)
    want = explain_query(engine, ev, q, near_misses=8)
    model = window.grid.model()
    assert model.rowCount() == len(want)
    rows = [model.index(i).data(TileRole.ScopeRow) for i in range(model.rowCount())]
    statuses = [model.index(i).data(TileRole.Status) for i in range(model.rowCount())]
    assert rows == list(want["row"]) and statuses == list(want["status"])
    pred = set(engine.graph.cand[q][ev.pred[q]]) - {q}
    tp = {int(r) for r, s in zip(want["row"], want["status"], strict=True) if s == "TP"}
    fp = {int(r) for r, s in zip(want["row"], want["status"], strict=True) if s == "FP"}
    assert tp | fp == pred
    truth = set(np.flatnonzero(engine.labels == engine.labels[q])) - {q}
    assert tp == pred & truth
    missed = {int(r) for r, s in zip(want["row"], want["status"], strict=True) if s == "missed"}
    assert missed == truth - pred
    # the query panel shows the query's own numbers
    assert f"F1 {ev.f1[q]:.3f}" in window.query_panel.scores.text()


def test_min2_inb_and_mode_toggles(qtbot, window: MainWindow, demo_bundle):
    before = window.config
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.controls.toggle_min2()
    assert window.config.min2 is not None and before.min2 is None
    assert shown_f1(window) == pytest.approx(
        core(demo_bundle, "fold0", window.config).metrics.f1, abs=5e-5)
    inb = SUM.replace(inb=(InbStage(0.7), InbStage(0.8)))
    apply(qtbot, window, inb)
    assert shown_f1(window) == pytest.approx(core(demo_bundle, "fold0", inb).metrics.f1,
                                             abs=5e-5)
    mode = window.config.mode, window.config.modalities
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.controls.cycle_mode(1)
    assert (window.config.mode, window.config.modalities) != mode


def test_stale_results_are_dropped(qtbot, window: MainWindow, demo_bundle):
    slow = SUM.replace(inb=(InbStage(0.7), InbStage(0.8), InbStage(0.9)))
    fast = MatchConfig("single", ("tfidf",), (0.45,))
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.set_config(slow)
        window.set_config(fast)  # supersedes the INB request at once
    qtbot.wait(200)
    assert window.view.snapshot.config == fast
    assert shown_f1(window) == pytest.approx(core(demo_bundle, "fold0", fast).metrics.f1,
                                             abs=5e-5)


def test_pin_and_compare(qtbot, window: MainWindow, demo_bundle):
    base = window.config
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.pin()
    apply(qtbot, window, SUM)
    delta = core(demo_bundle, "fold0", SUM).f1 - core(demo_bundle, "fold0", base).f1
    np.testing.assert_allclose(window.view.table.delta_f1, delta)
    assert "ΔF1" in [window.model.headerData(c, window.list.horizontalHeader().orientation())
                     for c in range(window.model.columnCount())]
    window.filter.setCurrentText("improved")
    shown = {window.model.index(r, 0).data(ROW_ROLE) for r in range(window.model.rowCount())}
    assert shown == set(np.flatnonzero(delta > 1e-9))
    window.filter.setCurrentText("worse")
    assert window.model.rowCount() == int((delta < -1e-9).sum())
    assert "pinned F1" in window.metrics.pinned.text()


def test_search_filters_the_list(qtbot, window: MainWindow):
    pid = window.view.table.posting_id[3]
    window.search.setText(pid)
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5000)
    assert window.model.index(0, 0).data() == pid


def test_exports_round_trip(qtbot, window: MainWindow, demo_bundle, tmp_path, capsys):
    apply(qtbot, window, SUM.replace(min2=(0.45,), units=True))
    pred = menus.export(window, "predictions", tmp_path / "pred.csv")
    frame = pd.read_csv(pred)
    assert list(frame.columns) == ["posting_id", "matches"]
    assert len(frame) == window.view.snapshot.n
    mets = pd.read_csv(menus.export(window, "metrics", tmp_path / "m.csv"))
    assert mets["f1"].mean() == pytest.approx(shown_f1(window), abs=5e-5)
    errors = pd.read_csv(menus.export(window, "errors", tmp_path / "e.csv"))
    assert (errors["kind"] == "false positive").sum() == (mets["n_pred"]
                                                        - mets["true_positives"]).sum()
    assert (errors["kind"] == "missed").sum() == (mets["group_size"]
                                                - mets["true_positives"]).sum()
    confused = pd.read_csv(menus.export(window, "confused", tmp_path / "c.csv"))
    assert confused["fp_pairs"].sum() == (errors["kind"] == "false positive").sum()
    js = menus.export(window, "settings", tmp_path / "s.json")
    data = json.loads(js.read_text())
    assert MatchConfig.from_dict(data["config"]) == window.config
    # the headless command reads the same file and gives the same number
    from explorer.cli import main as cli_main

    assert cli_main(["evaluate", str(demo_bundle), "--settings", str(js), "--scope", "fold0",
                     "--no-timing", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"]["f1"] == pytest.approx(shown_f1(window), abs=5e-5)
    # and the app loads it back
    apply(qtbot, window, MatchConfig("single", ("phash",), (0.8,)))
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        menus.load_settings(window, js)
    assert window.config == MatchConfig.from_dict(data["config"])


def test_settings_persist_per_bundle(qtbot, demo_bundle, settings):
    w = MainWindow(Session(Bundle.open(demo_bundle)), demo_bundle, app_context(settings))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.viewApplied, timeout=TIMEOUT):
        w.show()
    apply(qtbot, w, SUM)
    w.close()
    assert settings.recent() == [] or isinstance(settings.recent(), list)
    again = MainWindow(Session(Bundle.open(demo_bundle)), demo_bundle, app_context(settings))
    qtbot.addWidget(again)
    assert again.config == SUM and again.scope == "fold0"
    with qtbot.waitSignal(again.viewApplied, timeout=TIMEOUT):
        again.show()
    again.close()


def show_case(qtbot, window: MainWindow, index: int) -> None:
    """Show error-case tab `index` and wait for its list (computed by the worker)."""
    kind = list(window.cases.models)[index]
    if window.tabs.currentWidget() is window.cases and window.cases.currentIndex() == index:
        return
    with qtbot.waitSignal(window.caseShown, timeout=TIMEOUT,
                          check_params_cb=lambda k: k == kind):
        window.tabs.setCurrentWidget(window.cases)
        window.cases.setCurrentIndex(index)


def test_item_models(qtbot, qtmodeltester, window: MainWindow):
    assert window.cases.worst.rowCount() == 0  # nothing computed while the cases are hidden
    show_case(qtbot, window, 0)
    assert window.cases.worst.rowCount() == window.view.snapshot.n  # fewer than 200
    qtmodeltester.check(window.model)
    for index, model in enumerate(window.cases.models.values()):
        show_case(qtbot, window, index)  # each list is computed when its tab shows
        qtmodeltester.check(model)


def test_corrupt_bundle_shows_a_dialog(qapp, tmp_path, settings, monkeypatch):
    bad = tmp_path / "bad.bundle"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    seen = []
    monkeypatch.setattr(QMessageBox, "critical",
                        lambda parent, title, text, *a, **k: seen.append((title, text)))
    assert open_window(bad, app_context(settings)) is None
    assert len(seen) == 1 and "manifest.json" in seen[0][1]
    assert settings.recent() == []


def test_screenshot_option_writes_a_picture(demo_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    png = tmp_path / "shot.png"
    pid = Bundle.open(demo_bundle).items["posting_id"].iloc[
        Engine(Bundle.open(demo_bundle), "fold0").rows[5]]
    assert run_app([str(demo_bundle), "--screenshot", str(png), "--query", pid]) == 0
    img = QImage(str(png))
    assert (img.width(), img.height()) == (1600, 1000)
    sample = {img.pixel(x, y) for x in range(0, 1600, 37) for y in range(0, 1000, 29)}
    assert len(sample) > 50  # not blank


def test_error_cases_jump_to_the_query_and_open_the_pair(qtbot, window: MainWindow):
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        # fold0 of the small demo is nearly one group
        window.controls.scope_combo.setCurrentText("all")
    apply(qtbot, window, MatchConfig("single", ("tfidf",), (0.2,)))  # many false positives
    show_case(qtbot, window, 0)
    assert window.cases.false_pos.rowCount() == 0  # not computed while its tab is hidden
    show_case(qtbot, window, 1)
    fp = window.cases.false_pos.frame
    assert len(fp) > 0 and (fp["kind"] == "false positive").all()
    first = fp.iloc[0]
    window.cases._activated(window.cases.false_pos, window.cases.false_pos.index(0, 0))
    settle(qtbot, window)
    assert window.query == int(first["row"])
    dialog = window.pair_dialog
    assert dialog is not None and dialog.isVisible()
    text = dialog.view.right.posting_id.text() + dialog.view.left.posting_id.text()
    assert first["posting_id"] in text and first["neighbour_id"] in text
    show_case(qtbot, window, 0)
    worst = window.cases.worst.frame
    window.cases._activated(window.cases.worst, window.cases.worst.index(2, 0))
    assert window.query == int(worst.iloc[2]["row"])
    confused = window.cases.confused
    show_case(qtbot, window, 3)
    assert confused.rowCount() > 0
    assert window.cases.tabText(3) == f"Confused groups ({confused.rowCount()})"
    top = confused.frame.iloc[0]
    assert confused.index(0, 0).data() == f"{top['coverage']:.3f}"
    assert confused.index(0, 2).data() == f"{top['group_size']} + {top['neighbour_group_size']}"
    window.cases._activated(confused, confused.index(0, 0))
    settle(qtbot, window)
    assert window.query == int(top["row"])
    text = dialog.view.right.posting_id.text() + dialog.view.left.posting_id.text()
    assert top["posting_id"] in text and top["neighbour_id"] in text


def test_tile_click_opens_the_pair_and_double_click_makes_it_the_query(qtbot, window):
    model = window.grid.model()
    assert model.rowCount() >= 2
    other = model.index(1).data(TileRole.ScopeRow)
    window.grid.tileClicked.emit(other)
    assert window.pair_dialog is not None and window.pair_dialog.isVisible()
    window.grid.tileActivated.emit(other)
    assert window.query == other
    settle(qtbot, window)
    assert model.index(0).data(TileRole.Status) == "query"
    assert model.index(0).data(TileRole.ScopeRow) == other


def test_keyboard(qtbot, window: MainWindow):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window.activateWindow()
    first = window.query
    at = window.model.view_row(first)
    QTest.keyClick(window, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert window.query == window.model.scope_row(at + 1)
    QTest.keyClick(window, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert window.query == first
    QTest.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(window.search.hasFocus, timeout=2000)
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        QTest.keyClick(window, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert window.config.min2 is not None
    mode = window.config.modalities
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        QTest.keyClick(window, Qt.Key.Key_BracketRight, Qt.KeyboardModifier.ControlModifier)
    assert window.config.modalities != mode


def test_demo_is_reused_from_the_cache(qtbot, demo_bundle, settings, monkeypatch):
    from explorer.gui import app

    monkeypatch.setenv("EXPLORER_DEMO_DIR", str(demo_bundle.parent))
    assert app.demo_dir() == demo_bundle.parent
    assert app.build_demo(app_context(settings)) == demo_bundle  # nothing rebuilt, no child process
    window = open_window(None, app_context(settings))  # the demo, with its original pictures
    qtbot.addWidget(window)
    assert window.images is not None
    assert window.images.root == (demo_bundle.parent / "data" / "train_images").resolve()
    window.set_image_folder(None)  # the analyst prefers thumbnails: remembered for the demo
    window.worker.stop()
    again = open_window(None, app_context(settings))
    qtbot.addWidget(again)
    assert again.images is None
    again.worker.stop()


def test_demo_build_failure_is_a_dialog(qapp, tmp_path, monkeypatch):
    from explorer.gui import app

    out = tmp_path / "demo"
    (out / "data").mkdir(parents=True)
    (out / "data" / "train.csv").write_text("not,a\nshopee,table\n")
    (out / "data" / "generated.json").write_text('{"seed": 0, "n_postings": 1600}')
    monkeypatch.setenv("EXPLORER_DEMO_DIR", str(out))
    seen = []
    monkeypatch.setattr(QMessageBox, "critical",
                        lambda parent, title, text, *a, **k: seen.append(text))
    assert app.build_demo(app_context(AppSettings(QSettings(str(tmp_path / "s.ini"),
                                                            QSettings.Format.IniFormat)))) is None
    assert len(seen) == 1 and "precompute: error: " in seen[0], seen
    assert "train_images" in seen[0]  # the child's own one-line reason
    assert not (out / "demo.bundle").exists()


def test_no_display_is_one_line(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    if not __import__("sys").platform.startswith("linux"):
        pytest.skip("the check applies to Linux")
    assert run_app([]) == 2
    assert "no display" in capsys.readouterr().err


def test_near_misses_toggle_and_list_position(qtbot, window: MainWindow):
    model = window.grid.model()
    with_near = [model.index(i).data(TileRole.Status) for i in range(model.rowCount())]
    window.set_near_misses(False)
    settle(qtbot, window)
    without = [model.index(i).data(TileRole.Status) for i in range(model.rowCount())]
    assert "near miss" not in without
    assert without == [s for s in with_near if s != "near miss"]
    window.set_near_misses(True)
    settle(qtbot, window)
    # a slider move keeps the list where it was, not recentred on the query
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.controls.scope_combo.setCurrentText("all")
    window.list.scrollToBottom()
    top = window._top_row()
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.set_config(window.config.replace(units=not window.config.units))
    assert window._top_row() == top


@pytest.fixture(scope="module")
def unlabelled_bundle(tmp_path_factory) -> Path:
    from conftest import synthetic_table

    from precompute.build import BuildOptions, build

    root = tmp_path_factory.mktemp("unlabelled")
    csv = root / "test.csv"
    synthetic_table(n_groups=30).drop(columns=["label_group"]).to_csv(csv, index=False)
    return build(BuildOptions(csv=csv, out=root / "test.bundle", k=10, progress=False))


def test_a_bundle_without_labels(qtbot, unlabelled_bundle, settings):
    w = MainWindow(Session(Bundle.open(unlabelled_bundle)), unlabelled_bundle,
                   app_context(settings))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.viewApplied, timeout=TIMEOUT):
        w.show()
    settle(qtbot, w)
    assert w.scope == "all" and w.config.thresholds == (0.5,)  # nothing tuned
    assert "no labels" in w.metrics.main.text()
    f1_col = w.model.columns.index("f1")
    assert w.model.index(0, f1_col).data() == "–"
    statuses = {w.grid.model().index(i).data(TileRole.Status)
                for i in range(w.grid.model().rowCount())}
    assert statuses <= {"query", "match", "near miss"} and "query" in statuses
    with qtbot.waitSignal(w.worker.failed, timeout=TIMEOUT):
        w.controls.tuneRequested.emit("all")
    qtbot.waitUntil(lambda: "needs labels" in w.statusBar().currentMessage(), timeout=5000)
    with qtbot.waitSignal(w.worker.failed, timeout=TIMEOUT):
        w.controls.bestRequested.emit("all")
    qtbot.waitUntil(lambda: "best search needs labels" in w.statusBar().currentMessage(),
                    timeout=5000)
    for index in range(4):  # every error-case list is empty, none fails
        show_case(qtbot, w, index)
        assert list(w.cases.models.values())[index].rowCount() == 0
    w.close()


def test_image_folder_is_checked_remembered_and_used_by_the_pair(qtbot, window, demo_bundle,
                                                                 settings, tmp_path):
    pictures = demo_bundle.parent / "data" / "train_images"
    assert "not a folder" in window.set_image_folder(tmp_path / "missing")
    assert "none of the bundle's pictures" in window.set_image_folder(tmp_path)
    assert window.images is None and settings.image_folder(demo_bundle) is None  # no choice
    assert window.set_image_folder(pictures) is None
    assert window.images is not None and settings.image_folder(demo_bundle) == str(
        pictures.resolve())
    window.grid.tileClicked.emit(window.grid.model().index(1).data(TileRole.ScopeRow))
    assert str(pictures.resolve()) in window.pair_dialog.view.right.image.toolTip()
    again = MainWindow(Session(Bundle.open(demo_bundle)), demo_bundle, app_context(settings))
    qtbot.addWidget(again)
    assert again.images is not None and again.images.root == pictures.resolve()
    again.worker.stop()
    assert window.set_image_folder(None) is None
    assert window.images is None and settings.image_folder(demo_bundle) == ""  # thumbnails
    later = MainWindow(Session(Bundle.open(demo_bundle)), demo_bundle, app_context(settings))
    qtbot.addWidget(later)
    assert later.images is None
    later.worker.stop()


def test_images_option_with_a_wrong_folder_is_one_line(demo_bundle, tmp_path, monkeypatch,
                                                       capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    png = tmp_path / "shot.png"
    args = [str(demo_bundle), "--images", str(tmp_path / "nope"), "--screenshot", str(png)]
    assert run_app(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--images" in err and "not a folder" in err
    assert not png.exists()


def test_export_dialog_writes_or_explains(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QApplication, QFileDialog

    target = tmp_path / "errors.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    menus.export_dialog(window, "errors")
    assert target.is_file() and str(target) in window.statusBar().currentMessage()
    assert QApplication.overrideCursor() is None  # the wait cursor is gone again
    seen = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text: seen.append(text))
    bad = tmp_path / "missing" / "errors.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(bad), ""))
    menus.export_dialog(window, "errors")
    assert len(seen) == 1 and str(bad) in seen[0]
    assert QApplication.overrideCursor() is None


def test_showing_the_cases_never_cancels_a_pending_view(qtbot, window: MainWindow):
    """A case list is computed by the worker, newest request first; asking for one while
    a view for new settings is being computed must not supersede that view."""
    slow = MatchConfig("single", ("tfidf",), (0.3,), inb=(InbStage(0.6), InbStage(0.7)))
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.set_config(slow)
        window.tabs.setCurrentWidget(window.cases)  # while the INB view is computed
        window.cases.setCurrentIndex(2)
    assert window.view.snapshot.config == slow
    qtbot.waitUntil(lambda: window.cases.missed.rowCount() > 0, timeout=TIMEOUT)


def test_best_button_applies_the_searched_configuration(qtbot, tiny_bundle, settings):
    from PySide6.QtCore import Qt

    session = Session(Bundle.open(tiny_bundle))
    w = MainWindow(session, tiny_bundle, app_context(settings))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.viewApplied, timeout=TIMEOUT):
        w.show()
    want = Session(session.bundle).best("fold1")
    assert w.controls.tune_scope.currentText() == "fold1"
    with qtbot.waitSignal(w.viewApplied, timeout=TIMEOUT):
        qtbot.mouseClick(w.controls.best_button, Qt.MouseButton.LeftButton)
    assert w.config == want and w.view.snapshot.config == want
    assert w.controls.config() == want
    assert w.view.snapshot.scope == "fold0"  # searched on fold1, shown on the current scope
    # a change while the search runs cancels it: the newer settings win
    plain = MatchConfig("single", ("tfidf",), (0.5,))
    with qtbot.waitSignal(w.viewApplied, timeout=TIMEOUT):
        w.controls.bestRequested.emit("fold1")
        w.set_config(plain)
    qtbot.wait(200)
    assert w.view.snapshot.config == plain and w.config == plain
    w.worker.stop()


def test_sorting_keeps_the_selected_posting(qtbot, window: MainWindow):
    from PySide6.QtCore import Qt

    window.select_query(int(window.model.scope_row(5)))
    chosen = window.query
    for column in ("posting_id", "title", "f1"):
        for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder):
            window.list.sortByColumn(window.model.columns.index(column), order)
            current = window.list.selectionModel().currentIndex()
            assert current.isValid() and int(current.data(ROW_ROLE)) == chosen
