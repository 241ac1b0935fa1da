"""The post-processing controls (explorer.gui.post_controls in the controls panel): each
stage's check box and values edit `config.post` through the panel's one commit path, the
window then shows what the core computes, a state change from anywhere (settings file,
stored settings, Tune) repaints them, and the grid and the pair view say which stage added
or removed a pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gui_window import TIMEOUT, apply, open_main_window, settle
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QSpinBox, QWidget

from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig, Post
from explorer.core.engine import Engine
from explorer.core.explain import explain_query
from explorer.gui import menus
from explorer.gui.controls import ControlsPanel
from explorer.gui.main_window import MainWindow
from explorer.gui.settings import AppSettings
from explorer.gui.tile_delegate import TileRole

# a loose threshold on the tiny bundle, where each stage's default changes the F1
BASE = MatchConfig("single", ("tfidf",), (0.1,))
FULL = BASE.replace(post=Post(mutual=0.25, merge=(4.5, 20), chisel=(6, 0.85)))
STAGES = (("postMutual", "mutual", 0.0), ("postMerge", "merge", (3.0, 51)),
          ("postChisel", "chisel", (10, 0.9)))


# -- the panel alone ----------------------------------------------------------------------
@pytest.fixture
def panel(qtbot) -> ControlsPanel:
    p = ControlsPanel()
    qtbot.addWidget(p)
    p.set_choices(["all", "fold0", "fold1"], [("tfidf", "text"), ("phash", "image")])
    return p


def emitted(qtbot, panel: ControlsPanel, action) -> MatchConfig:
    with qtbot.waitSignal(panel.configChanged, timeout=1000) as blocker:
        action()
    assert blocker.args[0] == panel.config()
    return blocker.args[0]


def shown_post(panel: ControlsPanel) -> Post:
    """What the widgets say, read back as a Post."""
    r = panel.post_rows
    return Post(r.mutual.value() if r.mutual_check.isChecked() else None,
                (r.merge_target.value(), r.merge_largest.value())
                if r.merge_check.isChecked() else None,
                (r.chisel_size.value(), r.chisel_threshold.value())
                if r.chisel_check.isChecked() else None)


def test_every_new_widget_is_named_and_explained(panel: ControlsPanel) -> None:
    r = panel.post_rows
    assert panel.findChild(QWidget, "groupPost").title() == "Post-processing"
    for name in ("postMutual", "postMutualThreshold", "postMerge", "postMergeTarget",
                 "postMergeLargest", "postChisel", "postChiselSize", "postChiselThreshold",
                 "postMutualRow", "postMergeRow", "postChiselRow"):
        w = panel.findChild(QWidget, name)
        assert w is not None and w.accessibleName() and w.toolTip(), name
    assert "scores q back" in r.mutual_check.toolTip()
    assert "mean group size" in r.merge_check.toolTip()
    assert "stricter threshold" in r.chisel_check.toolTip()
    assert (r.merge_target.minimum(), r.merge_target.maximum(), r.merge_target.singleStep()) \
        == (1.0, 100.0, 0.5)
    assert (r.merge_largest.minimum(), r.merge_largest.maximum()) == (2, 1000)
    assert (r.chisel_size.minimum(), r.chisel_size.maximum()) == (1, 1000)
    assert r.mutual.minimum() == -1.0  # a reverse score is a cosine


@pytest.mark.parametrize(("name", "field", "default"), STAGES)
def test_a_stage_turns_on_with_its_default_and_off_again(qtbot, panel, name, field, default):
    check = panel.findChild(QCheckBox, name)
    row = panel.findChild(QWidget, f"{name}Row")
    before = panel.config()
    cfg = emitted(qtbot, panel, check.click)
    assert getattr(cfg.post, field) == default
    assert cfg == before.replace(post=Post(**{field: default}))
    assert not row.isHidden() and shown_post(panel) == cfg.post
    cfg = emitted(qtbot, panel, check.click)
    assert cfg == before and not cfg.post.active and row.isHidden()


def test_set_state_shows_every_stage_and_emits_nothing(qtbot, panel) -> None:
    odd = FULL.replace(post=Post(mutual=-0.4, merge=(250.0, 2000), chisel=(1500, -0.2)))
    for cfg in (FULL, odd, BASE):  # odd: stored values outside the widgets' usual ranges
        with qtbot.assertNotEmitted(panel.configChanged):
            panel.set_state(cfg, "fold1")
        assert panel.config() == cfg and shown_post(panel) == cfg.post
    assert all(panel.findChild(QWidget, f"{n}Row").isHidden() for n, _, _ in STAGES)


def test_one_number_changes_and_the_other_keeps_its_exact_value(qtbot, panel) -> None:
    panel.set_state(BASE.replace(post=Post(merge=(3.333, 7), chisel=(4, 0.8765))), "fold0")
    r = panel.post_rows
    cfg = emitted(qtbot, panel, lambda: r.merge_largest.setValue(9))
    assert cfg.post.merge == (3.333, 9)  # the spin box shows 3.33, the stored 3.333 stays
    cfg = emitted(qtbot, panel, lambda: r.merge_target.setValue(5.5))
    assert cfg.post.merge == (5.5, 9)
    cfg = emitted(qtbot, panel, lambda: r.chisel_size.setValue(12))
    assert cfg.post.chisel == (12, 0.8765)
    cfg = emitted(qtbot, panel, lambda: r.chisel_threshold.setValue(0.95))
    assert cfg.post.chisel == (12, 0.95)
    panel.post_rows.mutual_check.click()
    cfg = emitted(qtbot, panel, lambda: r.mutual.setValue(-0.5))
    assert cfg.post == Post(-0.5, (5.5, 9), (12, 0.95))


def test_an_invalid_stage_is_refused_like_any_other_field(qtbot, panel) -> None:
    panel.set_state(BASE.replace(post=Post(merge=(3.0, 51))), "fold0")
    before = panel.config()
    with qtbot.assertNotEmitted(panel.configChanged):
        panel.post_rows.edited.emit(lambda post: Post(merge=(3.0, 1)), False)
    assert "merge largest group" in panel.status.text()
    assert panel.config() == before and shown_post(panel) == before.post


def test_post_stages_survive_a_change_of_mode(qtbot, panel) -> None:
    panel.set_state(FULL, "fold0")
    cfg = emitted(qtbot, panel, lambda: panel.cycle_mode(1))
    assert (cfg.mode, cfg.modalities) != (FULL.mode, FULL.modalities)
    assert cfg.post == FULL.post and shown_post(panel) == FULL.post


# -- the window ---------------------------------------------------------------------------
@pytest.fixture
def window(qtbot, tiny_bundle: Path, settings: AppSettings) -> MainWindow:
    w = open_main_window(qtbot, tiny_bundle, settings)
    apply(qtbot, w, BASE)
    yield w
    w.worker.stop()


def wait_view(qtbot, w: MainWindow, action) -> None:
    with qtbot.waitSignal(w.viewApplied, timeout=TIMEOUT):
        action()
    settle(qtbot, w)


def core_f1(bundle: Path, w: MainWindow) -> float:
    return Engine(Bundle.open(bundle), w.scope).evaluate(w.config).metrics.f1


def shows_core(bundle: Path, w: MainWindow) -> float:
    """The window's F1 (its evaluation and its metrics bar) is the core's; returns it."""
    want = core_f1(bundle, w)
    assert w.view.snapshot.config == w.config
    assert w.view.snapshot.metrics.f1 == pytest.approx(want, abs=1e-9)
    assert f"F1 {want:.4f}" in w.metrics.main.text()
    return want


def test_toggling_each_stage_shows_what_the_core_computes(qtbot, window, tiny_bundle):
    base_f1 = shows_core(tiny_bundle, window)
    for name, field, default in STAGES:
        check = window.controls.findChild(QCheckBox, name)
        wait_view(qtbot, window, check.click)
        assert window.config == BASE.replace(post=Post(**{field: default}))
        # the stage changes this configuration's F1, so a view without it would differ
        assert shows_core(tiny_bundle, window) != pytest.approx(base_f1, abs=1e-6), name
        wait_view(qtbot, window, check.click)
        assert window.config == BASE and getattr(window.config.post, field) is None
        assert shows_core(tiny_bundle, window) == pytest.approx(base_f1, abs=1e-9)
    # a value: merge's largest group down to 3, mutual up to 0.6
    wait_view(qtbot, window, window.controls.post_rows.merge_check.click)
    spin = window.controls.findChild(QSpinBox, "postMergeLargest")
    wait_view(qtbot, window, lambda: spin.setValue(3))
    assert window.config.post.merge == (3.0, 3)
    shows_core(tiny_bundle, window)
    wait_view(qtbot, window, window.controls.post_rows.mutual_check.click)
    wait_view(qtbot, window, lambda: window.controls.post_rows.mutual.setValue(0.6))
    assert window.config.post == Post(mutual=0.6, merge=(3.0, 3))
    shows_core(tiny_bundle, window)


def test_outside_changes_and_settings_files_repaint_the_stages(qtbot, window, tiny_bundle,
                                                               settings, tmp_path):
    panel = window.controls
    apply(qtbot, window, FULL)
    assert shown_post(panel) == FULL.post
    assert panel.findChild(QDoubleSpinBox, "postMergeTarget").value() == 4.5
    shows_core(tiny_bundle, window)
    # the exported settings carry the stages, and loading them back restores them
    path = menus.export(window, "settings", tmp_path / "s.json")
    assert json.loads(path.read_text())["config"]["post"] == {
        "mutual": 0.25, "merge": {"target": 4.5, "max_size": 20},
        "chisel": {"size": 6, "threshold": 0.85}}
    apply(qtbot, window, BASE)
    assert shown_post(panel) == Post()
    wait_view(qtbot, window, lambda: menus.load_settings(window, path))
    assert window.config == FULL and shown_post(panel) == FULL.post
    # the settings stored per bundle keep them for the next window
    window.close()
    again = open_main_window(qtbot, tiny_bundle, settings)
    assert again.config == FULL and shown_post(again.controls) == FULL.post
    again.worker.stop()


def test_tune_keeps_the_stages_on_and_shows_its_values(qtbot, window, tiny_bundle):
    apply(qtbot, window, BASE.replace(post=Post(chisel=(10, 0.9))))
    wait_view(qtbot, window, window.controls.tune_button.click)
    cfg = window.config
    assert cfg.post.chisel is not None and cfg.post.mutual is None and cfg.post.merge is None
    assert shown_post(window.controls) == cfg.post
    shows_core(tiny_bundle, window)


@pytest.mark.parametrize(("cfg", "status", "role", "text"), [
    (BASE.replace(thresholds=(0.3,), post=Post(merge=(8.0, 51))), ("TP", "FP"),
     TileRole.AdmittedBy, "added by merging groups"),
    (BASE.replace(post=Post(merge=(3.0, 51))), ("missed",), TileRole.Reason,
     "removed: merging kept the groups apart"),
    (BASE.replace(post=Post(chisel=(10, 0.9))), ("missed",), TileRole.Reason,
     "removed by chiselling a large set"),
])
def test_the_grid_and_the_pair_say_which_stage_moved_a_pair(qtbot, window, tiny_bundle, cfg,
                                                           status, role, text):
    apply(qtbot, window, cfg)
    engine = Engine(Bundle.open(tiny_bundle), window.scope)
    ev = engine.evaluate(cfg)
    column = "admitted_by" if role == TileRole.AdmittedBy else "reason"
    q, row = next((q, int(f["row"][f[column] == text].iloc[0]))
                  for q in range(len(ev.f1))
                  for f in [explain_query(engine, ev, q)] if (f[column] == text).any())
    window.select_query(q)
    settle(qtbot, window)
    model = window.grid.model()
    at = model.row_of_scope(row)
    tile = model.index(at)
    assert tile.data(TileRole.Status) in status and tile.data(role) == text
    tip = tile.data(Qt.ItemDataRole.ToolTipRole)
    assert text in tip and "admitted by added" not in tip
    window.grid.tileClicked.emit(row)
    assert text in window.pair_dialog.view.status.text()
