"""The app's Audit tab (issue 12): the label audit of the settings on screen, computed by
the worker when its tab shows; a click goes to the finding's query, Enter opens its pair;
marks on a finding's postings, kept per bundle, exported and imported as the marks CSV;
and the metrics bar's F1 without the postings marked as label errors.

Over a bundle with deliberate label errors: two label groups given one label (a split)
and one posting given another group's label (a posting), among the merges the loose
threshold makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gui_window import TIMEOUT, apply, open_main_window, open_on, settle
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from explorer.core.audit import COLUMNS, audit
from explorer.core.audit_marks import (
    LABEL_ERROR,
    TRUE_DIFFERENCE,
    excluding,
    marked_rows,
    read_marks,
)
from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError, MatchConfig
from explorer.core.engine import Engine
from explorer.core.state import ViewerState, check_marks, mark_of, remarked
from explorer.core.views import CASES
from explorer.gui import menus
from explorer.gui.cases_panel import AUDIT
from explorer.gui.main_window import MainWindow

LOOSE = MatchConfig("single", ("tfidf",), (0.5,))
AUDIT_TAB = 4


@pytest.fixture
def window(qtbot, mislabelled, settings) -> MainWindow:
    w = open_on(qtbot, mislabelled, settings, "all", LOOSE)
    yield w
    w.worker.stop()


def expected(bundle: Path, cfg: MatchConfig = LOOSE):
    engine = Engine(Bundle.open(bundle), "all")
    return engine, engine.evaluate(cfg)


def show_audit(qtbot, w: MainWindow) -> None:
    with qtbot.waitSignal(w.caseShown, timeout=TIMEOUT,
                          check_params_cb=lambda kind: kind == "audit"):
        w.tabs.setCurrentWidget(w.cases)
        w.cases.setCurrentIndex(AUDIT_TAB)


def finding(w: MainWindow, kind: str) -> int:
    """The audit table's first row of `kind`, selected."""
    row = int(np.flatnonzero(w.cases.audit.frame["kind"] == kind)[0])
    w.cases.views["audit"].selectRow(row)
    return row


def cell(w: MainWindow, row: int, header: str) -> str:
    return w.cases.audit.index(row, list(AUDIT).index(header)).data()


def test_the_tab_lists_the_audit_of_the_settings_on_screen(qtbot, window, mislabelled):
    assert window.cases.audit.rowCount() == 0  # nothing computed while its tab is hidden
    show_audit(qtbot, window)
    want = audit(*expected(mislabelled), CASES)
    shown = window.cases.audit.frame
    assert set(want["kind"]) == {"split", "merge", "posting"}
    pd.testing.assert_frame_equal(shown[COLUMNS], want)
    assert window.cases.tabText(AUDIT_TAB) == f"Audit ({len(want)})"
    tip = window.cases.tabToolTip(AUDIT_TAB)
    assert all(k in tip for k in ("split", "merge", "posting"))
    split = finding(window, "split")
    assert cell(window, split, "groups") == "1003"  # one group, said once
    assert cell(window, split, "score") == f"{want['score'][split]:.3f}"
    merge = finding(window, "merge")
    top = want.iloc[merge]
    assert cell(window, merge, "groups") == f"{top['label_group']} / {top['other_label_group']}"
    assert cell(window, merge, "sizes") == f"{top['group_size']} / {top['other_group_size']}"
    assert cell(window, merge, "mark") == ""
    # other settings: the list follows them
    strict = LOOSE.replace(thresholds=(0.7,))
    with qtbot.waitSignal(window.caseShown, timeout=TIMEOUT):
        apply(qtbot, window, strict)
    qtbot.waitUntil(lambda: window.cases.audit.frame is not shown, timeout=TIMEOUT)
    pd.testing.assert_frame_equal(window.cases.audit.frame[COLUMNS],
                                  audit(*expected(mislabelled, strict), CASES))


def test_a_click_goes_to_the_query_and_enter_opens_the_pair(qtbot, window):
    show_audit(qtbot, window)
    view = window.cases.views["audit"]
    for kind in ("posting", "split"):
        row = finding(window, kind)
        top = window.cases.audit.frame.iloc[row]
        index = window.cases.audit.index(row, 0)
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         pos=view.visualRect(index).center())
        assert window.query == top["row"]
        settle(qtbot, window)
        view.setCurrentIndex(index)
        qtbot.keyClick(view, Qt.Key.Key_Return)
        settle(qtbot, window)
        ids = window.view.table.posting_id
        pair = window.pair_dialog.view
        assert pair.left.posting_id.text() == ids[top["row"]]
        assert pair.right.posting_id.text() == ids[top["other_row"]]
    # a finding's other posting outside the query's grid: the two postings alone
    grid = window.grid.model()
    far = next(r for r in range(window.view.snapshot.n) if grid.row_of_scope(r) is None)
    window.cases.pairRequested.emit(window.query, far)
    settle(qtbot, window)
    assert window.pair_dialog.view.left.posting_id.text() == ids[window.query]
    assert window.pair_dialog.view.right.posting_id.text() == ids[far]
    assert "near miss" in window.pair_dialog.view.status.text()


def test_marking_a_finding_marks_its_members(qtbot, window):
    show_audit(qtbot, window)
    actions = window.cases.mark_actions
    window.cases.views["audit"].clearSelection()
    assert not any(a.isEnabled() for a in actions.values())  # nothing selected
    split = finding(window, "split")
    members = window.cases.audit.frame["member_ids"][split]
    rows = window.cases.audit.frame["members"][split].split()
    assert len(members) == len(rows) >= 2
    assert list(members) == [window.view.table.posting_id[int(r)] for r in rows]
    actions[LABEL_ERROR].trigger()
    assert window.marks == dict.fromkeys(members, LABEL_ERROR)
    assert cell(window, split, "mark") == LABEL_ERROR
    assert window.cases.selected_finding()["kind"] == "split"  # still selected
    posting = finding(window, "posting")
    actions[TRUE_DIFFERENCE].trigger()
    pid = window.cases.audit.frame["posting_id"][posting]
    assert window.marks == {**dict.fromkeys(members, LABEL_ERROR), pid: TRUE_DIFFERENCE}
    assert cell(window, posting, "mark") == TRUE_DIFFERENCE
    finding(window, "split")
    actions[""].trigger()
    assert window.marks == {pid: TRUE_DIFFERENCE}
    assert cell(window, split, "mark") == ""
    # the same from the table's keyboard shortcuts and context menu
    view = window.cases.views["audit"]
    assert set(actions.values()) <= set(view.actions())
    assert view.contextMenuPolicy() == Qt.ContextMenuPolicy.ActionsContextMenu
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.marks == {pid: TRUE_DIFFERENCE, **dict.fromkeys(members, LABEL_ERROR)}
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert window.marks == {pid: TRUE_DIFFERENCE}


def shown_without(w: MainWindow) -> str:
    return w.metrics.marked.text()


def test_the_metrics_bar_shows_f1_without_the_label_errors(qtbot, window, mislabelled):
    show_audit(qtbot, window)
    assert shown_without(window) == ""
    finding(window, "posting")
    window.mark_finding(TRUE_DIFFERENCE)  # a true difference leaves the figure alone
    assert shown_without(window) == ""
    finding(window, "split")
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.mark_finding(LABEL_ERROR)
    engine, ev = expected(mislabelled)
    rows = marked_rows(engine, window.marks)
    assert len(rows) >= 2
    want = excluding(engine, ev, rows)
    assert shown_without(window) == f"| without {len(rows)} marked: F1 {want.f1:.4f}"
    assert want.f1 != pytest.approx(ev.metrics.f1)
    # with the settings: another threshold, the same marks
    strict = LOOSE.replace(thresholds=(0.7,))
    apply(qtbot, window, strict)
    engine, ev = expected(mislabelled, strict)
    assert shown_without(window) == (f"| without {len(rows)} marked: F1 "
                                     f"{excluding(engine, ev, rows).f1:.4f}")
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.state.update(marks={})
    assert shown_without(window) == ""


def test_marks_export_import_and_persist(qtbot, window, mislabelled, settings, tmp_path,
                                         monkeypatch):
    show_audit(qtbot, window)
    with pytest.raises(ValueError, match="no posting is marked"):
        menus.export(window, "marks", tmp_path / "none.csv")
    finding(window, "split")
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.mark_finding(LABEL_ERROR)
    finding(window, "posting")
    window.mark_finding(TRUE_DIFFERENCE)
    marks = dict(window.marks)
    out = menus.export(window, "marks", tmp_path / "marks.csv")
    assert read_marks(out) == marks
    table = pd.read_csv(out, dtype=str)
    items = Bundle.open(mislabelled).items.set_index("posting_id")["label_group"]
    assert table["label_group"].tolist() == [str(items[p]) for p in table["posting_id"]]
    # cleared, then imported back
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        window.state.update(marks={})
    with qtbot.waitSignal(window.viewApplied, timeout=TIMEOUT):
        said = menus.import_marks(window, out)
    assert window.marks == marks and f"{len(marks)} audit marks" in said
    assert "marked: F1" in shown_without(window)
    # a bad file: one line in a dialog, nothing changed
    bad = tmp_path / "bad.csv"
    bad.write_text("posting_id,mark\ntrain_0_0,maybe\n")
    with pytest.raises(ConfigError, match="line 2"):
        menus.import_marks(window, bad)
    seen = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text: seen.append(text))
    from PySide6.QtWidgets import QFileDialog
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    menus.import_marks_dialog(window)
    assert len(seen) == 1 and "line 2" in seen[0] and window.marks == marks
    # a new window over the same bundle and settings has them, and their figure
    window.close()
    again = open_main_window(qtbot, mislabelled, settings)
    try:
        assert again.marks == marks and again.scope == "all"
        assert shown_without(again) == shown_without(window)
    finally:
        again.worker.stop()


def test_stored_marks_that_are_not_marks_are_ignored(mislabelled, settings):
    settings.save_marks(mislabelled, {"train_0_0": LABEL_ERROR})
    assert settings.marks(mislabelled) == {"train_0_0": LABEL_ERROR}
    key = next(k for k in settings.store.allKeys() if k.startswith("marks/"))
    for raw in ('{"train_0_0": "maybe"}', "[1, 2]", "{not json"):
        settings.store.setValue(key, raw)
        assert settings.marks(mislabelled) == {}


def test_a_learned_models_own_folds_are_flagged_in_fold(qtbot, mislabelled, settings,
                                                        tmp_path, capsys):
    import shutil

    from explorer.cli import main

    bundle = shutil.copytree(mislabelled, tmp_path / "learned.bundle")
    assert main(["learn", str(bundle), "--rounds", "40"]) == 0
    capsys.readouterr()
    w = open_main_window(qtbot, bundle, settings)
    try:
        learned = MatchConfig("learned", ("learned:pairs",), (0.5,))
        with qtbot.waitSignal(w.viewApplied, timeout=TIMEOUT):
            w.state.update(scope="all", config=learned)
        show_audit(qtbot, w)
        frame = w.cases.audit.frame
        assert len(frame) and frame["in_fold"].all()  # "all" holds the folds it learned
        details = [cell(w, r, "detail") for r in range(len(frame))]
        assert all(d.startswith("in-fold scores; ") for d in details)
    finally:
        w.worker.stop()


def test_marks_in_the_state_are_checked_and_replaced_never_changed():
    marks = {"a": LABEL_ERROR}
    both = remarked(marks, ["b", "c"], TRUE_DIFFERENCE)
    assert marks == {"a": LABEL_ERROR}  # a copy
    assert both == {"a": LABEL_ERROR, "b": TRUE_DIFFERENCE, "c": TRUE_DIFFERENCE}
    assert remarked(both, ["a", "b", "z"], None) == {"c": TRUE_DIFFERENCE}
    assert mark_of(both, ["b", "c"]) == TRUE_DIFFERENCE
    assert mark_of(both, ["a", "b"]) == mark_of(both, ["c", "z"]) == "mixed"
    assert mark_of(both, ["z"]) == ""
    for bad in ({"a": "maybe"}, {"": LABEL_ERROR}, {1: LABEL_ERROR}, ["a"]):
        with pytest.raises(ConfigError):
            check_marks(bad, "here")
    state = ViewerState(["all"], ["tfidf"], "all", LOOSE)
    with pytest.raises(ConfigError):
        state.update(marks={"a": "maybe"})
    assert state.marks == {} and state.update(marks=marks) == {"marks"}


def test_marking_during_a_best_search_never_cancels_it(qtbot, window, monkeypatch):
    import threading

    show_audit(qtbot, window)
    gate = threading.Event()
    real = window.session.best
    searched = []

    def held(on, **kw):  # the search waits until the analyst has marked
        gate.wait(TIMEOUT / 1000)
        searched.append(real(on, **kw))
        return searched[-1]

    monkeypatch.setattr(window.session, "best", held)
    window.controls.bestRequested.emit("all")
    finding(window, "split")
    window.mark_finding(LABEL_ERROR)
    assert window._searching()  # still the view lane's newest: not cancelled
    gate.set()
    qtbot.waitUntil(lambda: "marked: F1" in shown_without(window), timeout=TIMEOUT)
    assert window.config == window.view.snapshot.config == searched[0]
