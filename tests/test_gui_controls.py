"""ControlsPanel: set_state round-trips, emits nothing, and every analyst change emits one
valid MatchConfig (or none, with the reason in the status line)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QListWidget, QSpinBox
from superqt import QDoubleSlider, QLabeledDoubleSlider

from explorer.core.config import InbStage, MatchConfig
from explorer.gui.controls import ControlsPanel

SCOPES = ["all", "fold0", "fold1", "fold2", "fold3", "fold4"]
MODALITIES = [("phash", "image"), ("tfidf", "text"), ("minilm", "text"), ("effnet", "image")]

CONFIGS = [
    MatchConfig("single", ("tfidf",), (0.55,)),
    MatchConfig("single", ("minilm",), (0.7123456,), min2=(0.6,),
                inb=(InbStage(0.8), InbStage(0.75, 0.65)), inb_exact=True),
    MatchConfig("union", ("tfidf", "effnet"), (0.6, 0.8), min2=(0.5, 0.7)),
    MatchConfig("sum", ("effnet", "minilm"), (0.65,), weights=(0.6, 0.4),
                inb=(InbStage(0.7), InbStage(0.72))),
    MatchConfig("sum", ("tfidf", "phash", "minilm"), (0.5,)),
    MatchConfig("prob", ("minilm", "phash"), (0.9,), units=True),
]


@pytest.fixture
def panel(qtbot) -> ControlsPanel:
    w = ControlsPanel()
    qtbot.addWidget(w)
    w.set_choices(SCOPES, MODALITIES)
    return w


def find(panel: ControlsPanel, cls, name: str):
    w = panel.findChild(cls, name)
    assert w is not None, name
    return w


def slider(panel: ControlsPanel, name: str) -> QLabeledDoubleSlider:
    return find(panel, QLabeledDoubleSlider, name)


def emitted(qtbot, panel: ControlsPanel, action) -> MatchConfig:
    with qtbot.waitSignal(panel.configChanged, timeout=1000) as blocker:
        action()
    cfg = blocker.args[0]
    assert isinstance(cfg, MatchConfig)
    assert panel.config() == cfg
    return cfg


def test_defaults_after_set_choices(panel: ControlsPanel) -> None:
    assert panel.config() == MatchConfig("single", ("phash",), (0.5,))
    assert panel.scope() == "fold0"
    assert find(panel, QComboBox, "tuneScope").currentText() == "fold1"
    assert [find(panel, QComboBox, "scopeCombo").itemText(i) for i in range(6)] == SCOPES


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.label)
def test_set_state_round_trips_and_emits_nothing(qtbot, panel: ControlsPanel,
                                                 cfg: MatchConfig) -> None:
    with qtbot.assertNotEmitted(panel.configChanged), \
            qtbot.assertNotEmitted(panel.scopeChanged):
        panel.set_state(cfg, "fold2")
    assert panel.config() == cfg
    assert panel.scope() == "fold2"
    assert find(panel, QComboBox, "scopeCombo").currentText() == "fold2"
    for i, t in enumerate(cfg.thresholds):
        assert slider(panel, f"threshold{i}").value() == pytest.approx(t)
    assert find(panel, QCheckBox, "min2Check").isChecked() == (cfg.min2 is not None)
    assert find(panel, QSpinBox, "inbIterations").value() == len(cfg.inb)
    for k, st in enumerate(cfg.inb):
        assert slider(panel, f"inbThreshold{k}").value() == pytest.approx(st.threshold)
        assert find(panel, QCheckBox, f"inbMin2Check{k}").isChecked() == (st.min2 is not None)
    assert find(panel, QCheckBox, "unitsCheck").isChecked() == cfg.units
    assert find(panel, QCheckBox, "inbExact").isChecked() == cfg.inb_exact
    fusion = find(panel, QListWidget, "fusionList")
    checked = {fusion.item(i).data(Qt.ItemDataRole.UserRole) for i in range(fusion.count())
               if fusion.item(i).checkState() == Qt.CheckState.Checked}
    # a single mode shows the fusion the mode combo would switch to (hidden)
    assert checked == (set(cfg.modalities) if cfg.mode != "single" else {"tfidf", "phash"})
    assert fusion.isHidden() == (cfg.mode == "single")


def test_set_state_moves_between_shapes(panel: ControlsPanel) -> None:
    # rows are rebuilt as the shape changes, and the result still round-trips
    for cfg in [*CONFIGS, *reversed(CONFIGS)]:
        panel.set_state(cfg, "all")
        assert panel.config() == cfg
        assert len(panel.inb_rows.thresholds) == len(cfg.inb)
        assert len(panel.thresholds.widgets) == len(cfg.thresholds)


def test_out_of_range_threshold_round_trips(panel: ControlsPanel) -> None:
    cfg = MatchConfig("single", ("tfidf",), (-0.2,))
    panel.set_state(cfg, "fold0")
    assert panel.config() == cfg
    assert slider(panel, "threshold0").value() == pytest.approx(-0.2)
    panel.set_state(CONFIGS[0], "fold0")
    assert slider(panel, "threshold0").minimum() == 0.0


def test_set_state_rejects_unknown_choices(panel: ControlsPanel) -> None:
    with pytest.raises(ValueError, match="clip"):
        panel.set_state(MatchConfig("single", ("clip",), (0.5,)), "fold0")
    with pytest.raises(ValueError, match="fold9"):
        panel.set_state(CONFIGS[0], "fold9")
    assert panel.config() == MatchConfig("single", ("phash",), (0.5,))


def test_moving_threshold_slider_emits_that_threshold(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[2], "fold0")
    cfg = emitted(qtbot, panel, lambda: slider(panel, "threshold1").setValue(0.8321))
    assert cfg == CONFIGS[2].replace(thresholds=(0.6, 0.832))


def test_arrow_key_on_slider_emits_a_step(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[0], "fold0")
    inner = slider(panel, "threshold0").findChild(QDoubleSlider)
    cfg = emitted(qtbot, panel, lambda: qtbot.keyClick(inner, Qt.Key.Key_Right))
    assert cfg.thresholds == (0.555,)
    cfg = emitted(qtbot, panel, lambda: qtbot.keyClick(inner, Qt.Key.Key_PageDown))
    assert cfg.thresholds == (0.505,)


def test_typing_in_the_slider_entry_emits(qtbot, panel: ControlsPanel) -> None:
    entry = slider(panel, "threshold0").findChild(QLineEdit)
    entry.selectAll()
    qtbot.keyClicks(entry, "0.615")
    cfg = emitted(qtbot, panel, lambda: qtbot.keyClick(entry, Qt.Key.Key_Return))
    assert cfg.thresholds == (0.615,)


def test_moving_single_threshold_keeps_other_values_exact(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[1], "fold0")
    cfg = emitted(qtbot, panel, lambda: slider(panel, "inbThreshold1").setValue(0.7))
    assert cfg.thresholds == (0.7123456,)
    assert cfg.inb == (InbStage(0.8), InbStage(0.7, 0.65))


def test_min2_toggle_defaults_to_threshold_minus_0_1(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[0], "fold0")
    cfg = emitted(qtbot, panel, lambda: find(panel, QCheckBox, "min2Check").setChecked(True))
    assert cfg.min2 == pytest.approx((0.45,))
    assert not slider(panel, "min2Threshold0").isHidden()
    cfg = emitted(qtbot, panel, lambda: slider(panel, "min2Threshold0").setValue(0.4))
    assert cfg.min2 == (0.4,)
    cfg = emitted(qtbot, panel, panel.toggle_min2)
    assert cfg.min2 is None
    assert find(panel, QCheckBox, "min2Check").isChecked() is False


def test_union_min2_is_per_modality(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[2].replace(min2=None), "fold0")
    cfg = emitted(qtbot, panel, panel.toggle_min2)
    assert cfg.min2 == pytest.approx((0.5, 0.7))


def test_min2_on_switches_inb_stage_min2_on(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[3], "fold0")
    cfg = emitted(qtbot, panel, panel.toggle_min2)
    assert cfg.min2 == pytest.approx((0.55,))
    assert [s.min2 for s in cfg.inb] == pytest.approx([0.6, 0.62])
    cfg = emitted(qtbot, panel, lambda: find(panel, QCheckBox, "inbMin2Check1").setChecked(False))
    assert cfg.inb[1].min2 is None and cfg.inb[0].min2 == pytest.approx(0.6)


def test_inb_iterations_add_stages_at_previous_threshold(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[0], "fold0")
    spin = find(panel, QSpinBox, "inbIterations")
    assert spin.maximum() == 5
    cfg = emitted(qtbot, panel, lambda: spin.setValue(1))
    assert cfg.inb == (InbStage(0.55),)
    emitted(qtbot, panel, lambda: slider(panel, "inbThreshold0").setValue(0.6))
    cfg = emitted(qtbot, panel, lambda: spin.setValue(3))
    assert cfg.inb == (InbStage(0.6), InbStage(0.6), InbStage(0.6))
    cfg = emitted(qtbot, panel, lambda: find(panel, QCheckBox, "inbExact").setChecked(True))
    assert cfg.inb_exact is True
    cfg = emitted(qtbot, panel, lambda: spin.setValue(0))
    assert cfg.inb == ()


def test_switching_to_union_disables_inb_and_drops_stages(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[3], "fold0")
    mode = find(panel, QComboBox, "modeCombo")
    cfg = emitted(qtbot, panel, lambda: mode.setCurrentIndex(mode.findText("union",
                                                                           Qt.MatchStartsWith)))
    assert cfg.mode == "union" and cfg.inb == ()
    assert cfg.modalities == ("effnet", "minilm")
    assert len(cfg.thresholds) == 2
    spin = find(panel, QSpinBox, "inbIterations")
    assert not spin.isEnabled()
    assert "union" in spin.toolTip()
    assert spin.value() == 0


def test_switching_to_sum_shows_weights_and_emits_valid_sum(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[0], "fold0")
    weights = panel.findChild(type(panel.weights), "weights")
    assert weights.isHidden()
    mode = find(panel, QComboBox, "modeCombo")
    cfg = emitted(qtbot, panel, lambda: mode.setCurrentIndex(mode.findText("sum",
                                                                           Qt.MatchStartsWith)))
    # default fusion: the first text and the first image modality
    assert cfg.mode == "sum" and cfg.modalities == ("tfidf", "phash")
    assert cfg.thresholds == (0.55,) and cfg.weights is None
    assert not weights.isHidden()
    assert len(weights.widgets) == 2
    assert weights.widgets[0].singleStep() == pytest.approx(0.05)
    cfg = emitted(qtbot, panel, lambda: weights.widgets[1].setValue(0.25))
    assert cfg.weights == (0.5, 0.25)
    assert cfg.label == "sum:tfidf,phash:0.5,0.25"


def test_checking_a_modality_adds_it_to_the_fusion(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[2], "fold0")
    fusion = find(panel, QListWidget, "fusionList")
    item = fusion.findItems("minilm", Qt.MatchStartsWith)[0]
    cfg = emitted(qtbot, panel, lambda: item.setCheckState(Qt.CheckState.Checked))
    assert cfg.modalities == ("tfidf", "effnet", "minilm")
    assert cfg.thresholds == (0.6, 0.8, 0.6)
    assert len(cfg.min2) == 3


def test_fusion_never_drops_below_two_modalities(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[5], "fold0")
    fusion = find(panel, QListWidget, "fusionList")
    item = fusion.findItems("phash", Qt.MatchStartsWith)[0]
    with qtbot.assertNotEmitted(panel.configChanged):
        item.setCheckState(Qt.CheckState.Unchecked)
    assert panel.config() == CONFIGS[5]
    assert item.checkState() == Qt.CheckState.Checked
    assert "two modalities" in find(panel, QLabel, "controlsStatus").text()
    # the next valid change clears the message
    emitted(qtbot, panel, lambda: slider(panel, "threshold0").setValue(0.85))
    assert find(panel, QLabel, "controlsStatus").text() == ""


def test_all_zero_weights_are_refused(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(MatchConfig("sum", ("tfidf", "phash"), (0.5,), weights=(0.0, 0.3)),
                    "fold0")
    with qtbot.assertNotEmitted(panel.configChanged):
        panel.weights.widgets[1].setValue(0.0)
    assert panel.config().weights == (0.0, 0.3)
    assert panel.weights.widgets[1].value() == pytest.approx(0.3)
    assert "weights" in find(panel, QLabel, "controlsStatus").text()


def test_scope_change_emits_scope_changed(qtbot, panel: ControlsPanel) -> None:
    combo = find(panel, QComboBox, "scopeCombo")
    with qtbot.waitSignal(panel.scopeChanged, timeout=1000) as blocker, \
            qtbot.assertNotEmitted(panel.configChanged):
        combo.setCurrentText("fold3")
    assert blocker.args == ["fold3"]
    assert panel.scope() == "fold3"


def test_tune_and_reset_buttons(qtbot, panel: ControlsPanel) -> None:
    find(panel, QComboBox, "tuneScope").setCurrentText("fold4")
    with qtbot.waitSignal(panel.tuneRequested, timeout=1000) as blocker:
        qtbot.mouseClick(panel.tune_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["fold4"]
    with qtbot.waitSignal(panel.bestRequested, timeout=1000) as blocker, \
            qtbot.assertNotEmitted(panel.tuneRequested):
        qtbot.mouseClick(panel.best_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["fold4"]
    with qtbot.waitSignal(panel.resetRequested, timeout=1000):
        qtbot.mouseClick(panel.reset_button, Qt.MouseButton.LeftButton)


def test_units_checkbox(qtbot, panel: ControlsPanel) -> None:
    cfg = emitted(qtbot, panel, lambda: find(panel, QCheckBox, "unitsCheck").setChecked(True))
    assert cfg.units is True


def test_cycle_mode_walks_every_mode(qtbot, panel: ControlsPanel) -> None:
    seen = []
    for _ in range(7):
        seen.append(emitted(qtbot, panel, panel.cycle_mode).label)
    assert seen == ["tfidf", "minilm", "effnet", "union:tfidf,phash", "sum:tfidf,phash",
                    "prob:tfidf,phash", "phash"]
    assert emitted(qtbot, panel, lambda: panel.cycle_mode(-1)).mode == "prob"


def test_mode_round_trip_restores_thresholds(qtbot, panel: ControlsPanel) -> None:
    panel.set_state(CONFIGS[2], "fold0")
    mode = find(panel, QComboBox, "modeCombo")
    emitted(qtbot, panel, lambda: mode.setCurrentIndex(mode.findText("effnet",
                                                                     Qt.MatchStartsWith)))
    assert panel.config() == MatchConfig("single", ("effnet",), (0.8,), min2=(0.7,))
    emitted(qtbot, panel, lambda: mode.setCurrentIndex(mode.findText("union",
                                                                     Qt.MatchStartsWith)))
    assert panel.config() == CONFIGS[2]


def test_set_choices_with_one_modality_offers_no_fusion(qtbot) -> None:
    w = ControlsPanel()
    qtbot.addWidget(w)
    with pytest.raises(RuntimeError):
        w.config()
    w.set_choices(["all"], [("tfidf", "text")])
    assert w.config() == MatchConfig("single", ("tfidf",), (0.5,))
    assert w.scope() == "all"
    assert find(w, QComboBox, "modeCombo").count() == 1
