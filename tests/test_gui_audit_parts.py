"""The Audit tab's parts view (explorer/gui/audit_parts_view.py): Enter on a split finding
shows its label group's parts side by side (one column per part, the right postings, the
scores in the headers), Ctrl+G a merge's two groups; a part is marked from its column; the
parts are computed on the worker, sharing the cases lane with the case lists.

Over a bundle with deliberate label errors (as tests/test_gui_audit.py builds it)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from gui_window import TIMEOUT, open_on, settle
from PySide6.QtCore import Qt

from explorer.core.audit_marks import LABEL_ERROR
from explorer.core.audit_parts import finding_parts
from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.engine import Engine
from explorer.gui.main_window import MainWindow
from explorer.gui.tile_delegate import TileRole

LOOSE = MatchConfig("single", ("tfidf",), (0.5,))
AUDIT_TAB = 4


@pytest.fixture
def window(qtbot, mislabelled, settings) -> MainWindow:
    w = open_on(qtbot, mislabelled, settings, "all", LOOSE)
    with qtbot.waitSignal(w.caseShown, timeout=TIMEOUT,
                          check_params_cb=lambda kind: kind == "audit"):
        w.tabs.setCurrentWidget(w.cases)
        w.cases.setCurrentIndex(AUDIT_TAB)
    yield w
    w.worker.stop()


def select(w: MainWindow, kind: str):
    """The audit table's first finding of `kind`, selected and current."""
    row = int(np.flatnonzero(w.cases.audit.frame["kind"] == kind)[0])
    view = w.cases.views["audit"]
    view.setCurrentIndex(w.cases.audit.index(row, 0))
    view.selectRow(row)
    return w.cases.audit.frame.iloc[row]


def shown_parts(qtbot, w: MainWindow):
    qtbot.waitUntil(lambda: w.parts_dialog is not None and w.parts_dialog.view.shown
                    is not None, timeout=TIMEOUT)
    return w.parts_dialog.view


def column_ids(view, i: int) -> list[str]:
    model = view.columns[i].grid.model()
    return [model.index(r).data(TileRole.PostingId) for r in range(model.rowCount())]


def expected_parts(bundle: Path, finding):
    engine = Engine(Bundle.open(bundle), "all")
    return finding_parts(engine, engine.evaluate(LOOSE), finding).gathered()


def test_enter_on_a_split_shows_its_parts_side_by_side(qtbot, window, mislabelled):
    finding = select(window, "split")
    view = window.cases.views["audit"]
    assert window.cases.parts_action.isEnabled()
    assert "side by side" in window.cases.tabToolTip(AUDIT_TAB)
    qtbot.keyClick(view, Qt.Key.Key_Return)
    parts = shown_parts(qtbot, window)
    settle(qtbot, window)
    assert window.parts_dialog.isVisible()
    want = expected_parts(mislabelled, finding)
    ids = window.view.table.posting_id
    assert len(parts.columns) == len(want.rows) >= 2
    for i, rows in enumerate(want.rows):
        assert column_ids(parts, i) == [ids[int(r)] for r in rows]
    # the audit's first two parts: the finding's row and other row; the second its members
    assert column_ids(parts, 0)[0] == ids[finding["row"]]
    assert column_ids(parts, 1)[0] == ids[finding["other_row"]]
    assert tuple(column_ids(parts, 1)) == finding["member_ids"]
    head = parts.columns[0].header.text()
    assert f"{len(want.rows[0])} postings" in head and "group 1003" in head
    assert f"within {want.within()[0]:.3f}" in head
    assert f"to the others {want.between()[0]:.3f}" in head
    assert f"{want.mean_between:.3f}" in parts.summary.text()
    assert want.mean_between == pytest.approx(1 - finding["score"])
    # Enter still opens the pair of the finding's two postings, as before
    pair = window.pair_dialog.view
    assert pair.left.posting_id.text() == ids[finding["row"]]
    assert pair.right.posting_id.text() == ids[finding["other_row"]]


def test_a_merge_shows_its_two_groups_and_a_part_is_marked(qtbot, window, mislabelled):
    finding = select(window, "merge")
    window.cases.views["audit"].setFocus()
    qtbot.keyClick(window.cases.views["audit"], Qt.Key.Key_G,
                   Qt.KeyboardModifier.ControlModifier)
    parts = shown_parts(qtbot, window)
    items = Bundle.open(mislabelled).items
    groups = items["label_group"].astype(str)
    assert len(parts.columns) == 2
    for i, name in enumerate((finding["label_group"], finding["other_label_group"])):
        assert column_ids(parts, i) == items["posting_id"][groups == name].tolist()
    assert window.pair_dialog is None  # Ctrl+G: the parts alone
    # marking the second column marks its postings, and the finding's mark follows
    second = column_ids(parts, 1)
    parts.columns[1].buttons[LABEL_ERROR].click()
    assert window.marks == dict.fromkeys(second, LABEL_ERROR)
    assert "marked: label error" in parts.columns[1].header.text()
    assert "marked" not in parts.columns[0].header.text()
    # the finding's members are its smaller group: that column, or the other one
    mine = set(finding["member_ids"]) == set(second)
    assert mine or set(finding["member_ids"]) == set(column_ids(parts, 0))
    assert window.cases.audit.frame["mark"][finding.name] == (LABEL_ERROR if mine else "")
    parts.columns[1].buttons[""].click()
    assert window.marks == {}
    # a click on a tile makes that posting the query
    grid = parts.columns[0].grid
    index = grid.model().index(len(column_ids(parts, 0)) - 1)
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton,
                     pos=grid.visualRect(index).center())
    assert window.view.table.posting_id[window.query] == column_ids(parts, 0)[-1]


def test_parts_are_computed_on_the_worker_and_survive_a_case_list_job(qtbot, window,
                                                                     monkeypatch):
    import explorer.gui.audit_parts_view as module

    threads = []
    real = module.finding_parts

    def recorded(*args):
        threads.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(module, "finding_parts", recorded)
    finding = select(window, "split")
    assert not window.view.has_case("worst")
    window.show_parts(finding)
    # another list's job in the same lane supersedes the parts' job: both still arrive
    with qtbot.waitSignal(window.caseShown, timeout=TIMEOUT,
                          check_params_cb=lambda kind: kind == "worst"):
        window.cases.setCurrentIndex(0)
    parts = shown_parts(qtbot, window)
    assert threads and threading.main_thread() not in threads
    assert window.cases.worst.rowCount() > 0
    assert len(parts.columns) >= 2
    # a posting finding has no parts: the action is off, Enter opens only the pair
    select(window, "posting")
    assert not window.cases.parts_action.isEnabled()
