"""The analyst's knobs: scope, mode, thresholds, Min2, INB, the unit filter, graph
post-processing (explorer.gui.post_controls) and tuning.

`ControlsPanel` is a view of the viewer state (explorer.core.state.ViewerState, once
`bind` is called): it shows the state's scope and configuration whenever they change, from
anywhere, and writes the analyst's changes back to it. It changes the configuration one
field at a time as a widget moves, so values the analyst did not touch keep their exact
stored value (sliders show 3 decimals). Structural changes (mode, fusion members, INB
depth, Min2 on/off) rebuild the affected rows. A change that would make an invalid
configuration is refused: the widgets go back to the last valid state and the status line
says why. So the widgets always show `config()`, and `configChanged` only ever carries a
valid configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QSignalBlocker, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.core import modes
from explorer.core.config import MAX_INB, ConfigError, InbStage, MatchConfig
from explorer.core.state import ViewerState
from explorer.gui.post_controls import PostChange, PostControls
from explorer.gui.value_rows import (
    DECIMALS,
    InbRows,
    ThresholdSlider,
    ValueRows,
    min2_default,
    weight_box,
)

DEFAULT_THRESHOLD = 0.5
DEFAULT_WEIGHT = 0.5  # shown for weights=None; sum fusion normalises, so equal = unweighted
INB_TIP = ("Iterative neighbourhood blending: replace each embedding by the similarity-"
           "weighted sum of its predicted matches, search again and threshold again.")
NO_INB_TIP = ("INB blends one embedding space, which {words} does not have: choose a "
              "single modality, sum or prob fusion to use INB.")
EXACT_TIP = ("Search the blended embeddings exactly over the whole scope instead of "
             "re-ranking the original top-K candidates.")


def default_fusion(modalities: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The first text and the first image modality, topped up to two in listed order."""
    picked = [n for kind in ("text", "image")
              for n in [next((n for n, k in modalities if k == kind), None)] if n is not None]
    for name, _ in modalities:
        if len(picked) >= 2:
            break
        if name not in picked:
            picked.append(name)
    return tuple(picked)


def _memory_keys(mode: str, modalities: tuple[str, ...]) -> tuple[str, ...]:
    """What a threshold belongs to: a modality (single, union) or the fused score."""
    if modes.MODES[mode].own_thresholds:
        return modalities
    return (f"{mode}:{','.join(sorted(modalities))}",)


class ControlsPanel(QWidget):
    """The matching controls. Call `set_choices` once a bundle is open, then `set_state`;
    neither emits. Every analyst change emits `configChanged` with a valid MatchConfig."""

    configChanged = Signal(object)
    scopeChanged = Signal(str)
    tuneRequested = Signal(str)
    bestRequested = Signal(str)     # search the whole configuration on this scope
    resetRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("controlsPanel")
        self.setMinimumWidth(280)
        self._cfg: MatchConfig | None = None
        self._scope = ""
        self._state: ViewerState | None = None
        self._scopes: list[str] = []
        self._modalities: list[tuple[str, str]] = []
        self._derived: list[str] = []  # the bundle's models (learned:NAME)
        self._modes: list[tuple[str, str | None]] = []  # mode combo rows: (mode, modality)
        # what the analyst last set, to restore on the way back through a mode
        self._thr_mem: dict[str, float] = {}
        self._min2_mem: dict[str, float] = {}
        self._fusion_mem: tuple[str, ...] = ()
        self._build()

    # -- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        self.scope_combo = QComboBox(objectName="scopeCombo")
        self.scope_combo.setAccessibleName("Scope")
        self.scope_combo.setToolTip("Which postings to evaluate: all, or one fold "
                                    "(neighbours searched within the fold)")
        self.mode_combo = QComboBox(objectName="modeCombo")
        self.mode_combo.setAccessibleName("Mode")
        self.fusion_list = QListWidget(objectName="fusionList")
        self.fusion_list.setAccessibleName("Fused modalities")
        self.fusion_list.setToolTip("The modalities the fusion combines (at least two)")
        self.weights = ValueRows("weights", "weight", "Weight", weight_box)
        self.weights.setToolTip("Sum fusion weights (normalised to sum to 1)")
        self._fusion_label = QLabel("Modalities")
        self._weights_label = QLabel("Weights")
        scope_form = QFormLayout()
        scope_form.addRow("Scope", self.scope_combo)
        scope_form.addRow("Mode", self.mode_combo)
        scope_form.addRow(self._fusion_label, self.fusion_list)
        scope_form.addRow(self._weights_label, self.weights)

        self.thresholds = ValueRows("thresholds", "threshold", "Threshold", ThresholdSlider)
        self.thresholds.setToolTip("A pair is predicted when its score is >= the threshold")

        self.min2_check = QCheckBox("Min2 for lonely queries", objectName="min2Check")
        self.min2_check.setAccessibleName("Min2")
        self.min2_check.setToolTip("When a query predicts only itself, add its nearest other "
                                   "posting if that passes the looser Min2 threshold")
        self.min2_rows = ValueRows("min2Thresholds", "min2Threshold", "Min2 threshold",
                                   ThresholdSlider)

        self.inb_spin = QSpinBox(objectName="inbIterations", minimum=0, maximum=MAX_INB,
                                 keyboardTracking=False)
        self.inb_spin.setAccessibleName("INB iterations")
        self.inb_exact = QCheckBox("exact re-search", objectName="inbExact")
        self.inb_exact.setAccessibleName("INB exact re-search")
        self.inb_exact.setToolTip(EXACT_TIP)
        self.inb_rows = InbRows()
        inb_top = QHBoxLayout()
        inb_top.addWidget(QLabel("Iterations"))
        inb_top.addWidget(self.inb_spin)
        inb_top.addWidget(self.inb_exact, 1)

        self.units_check = QCheckBox("Unit filter", objectName="unitsCheck")
        self.units_check.setAccessibleName("Unit filter")
        self.units_check.setToolTip("Drop pairs whose titles name different quantities: "
                                    "250ml vs 500ml are different products, 30g vs 30gr "
                                    "are the same")
        units_note = QLabel("drop pairs whose titles name different quantities",
                            wordWrap=True, styleSheet="color: #666")

        self.post_rows = PostControls()

        self.tune_scope = QComboBox(objectName="tuneScope")
        self.tune_scope.setAccessibleName("Scope to tune on")
        self.tune_button = QPushButton("Tune on…", objectName="tuneButton")
        self.tune_button.setAccessibleName("Tune")
        self.tune_button.setToolTip("Search the thresholds of this mode, then the "
                                    "post-processing stages that are on, on the chosen scope")
        self.best_button = QPushButton("Best", objectName="bestButton")
        self.best_button.setAccessibleName("Search the best configuration")
        self.best_button.setToolTip(
            "Search mode, fusion weights, Min2, INB depth, the unit filter, every "
            "threshold and each post-processing stage on the chosen scope (explorer "
            "evaluate --best); any change cancels")
        self.reset_button = QPushButton("Reset", objectName="resetButton")
        self.reset_button.setAccessibleName("Reset")
        tune_row = QHBoxLayout()
        tune_row.addWidget(self.tune_button)
        tune_row.addWidget(self.tune_scope, 1)
        tune_row.addWidget(self.best_button)
        tune_row.addWidget(self.reset_button)

        self.status = QLabel(objectName="controlsStatus", wordWrap=True)
        self.status.setAccessibleName("Controls status")
        self.status.setStyleSheet("color: #be2828")

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        for (name, title), inner in ((("Scope", "Scope && mode"), scope_form),
                                     (("Thresholds",) * 2, self.thresholds),
                                     (("Min2",) * 2, (self.min2_check, self.min2_rows)),
                                     (("Inb", "INB"), (inb_top, self.inb_rows)),
                                     (("Filters",) * 2, (self.units_check, units_note)),
                                     (("Post", "Post-processing"), self.post_rows),
                                     (("Tuning",) * 2, tune_row)):
            box = QGroupBox(title, objectName=f"group{name}")
            box_lay = QVBoxLayout(box)
            box_lay.setContentsMargins(6, 4, 6, 4)
            for part in inner if isinstance(inner, tuple) else (inner,):
                if isinstance(part, QWidget):
                    box_lay.addWidget(part)
                else:
                    box_lay.addLayout(part)
            lay.addWidget(box)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self.scope_combo.currentIndexChanged.connect(self._on_scope)
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self.fusion_list.itemChanged.connect(self._on_fusion_item)
        self.weights.edited.connect(self._on_weight)
        self.thresholds.edited.connect(self._on_threshold)
        self.min2_check.toggled.connect(self._on_min2_toggled)
        self.min2_rows.edited.connect(self._on_min2)
        self.inb_spin.valueChanged.connect(self._on_inb_depth)
        self.inb_rows.thresholdEdited.connect(self._on_inb_threshold)
        self.inb_rows.min2Toggled.connect(self._on_inb_min2_toggled)
        self.inb_rows.min2Edited.connect(self._on_inb_min2)
        self.inb_exact.toggled.connect(self._on_inb_exact)
        self.units_check.toggled.connect(self._on_units)
        self.post_rows.edited.connect(self._on_post)
        self.tune_button.clicked.connect(self._on_tune)
        self.best_button.clicked.connect(
            lambda: self.tune_scope.currentText() and self.bestRequested.emit(
                self.tune_scope.currentText()))
        self.reset_button.clicked.connect(self.resetRequested)

    def sizeHint(self) -> QSize:
        return QSize(320, super().sizeHint().height())

    # -- public API -----------------------------------------------------------------------
    def set_choices(self, scopes: list[str], modalities: list[tuple[str, str]],
                    derived: list[str] | tuple[str, ...] = ()) -> None:
        """The bundle's scopes and its modalities as (name, kind), kind image/text/fused.
        Keeps the current state where it still fits, else falls back to the first modality
        at threshold 0.5 on fold0 (or the first scope). Emits nothing."""
        if not scopes or not modalities:
            raise ValueError("the controls need at least one scope and one modality")
        self._scopes, self._modalities = list(scopes), list(modalities)
        names = [n for n, _ in modalities]
        # each modality under every one-modality mode, then the fusions (explorer.core.modes)
        self._modes = [(m.name, n) for m in modes.MODES.values()
                       if not m.fusion and not m.derived
                       for n in names]
        if len(names) >= 2:
            self._modes += [(m.name, None) for m in modes.fusions()]
        # then the bundle's models (learned:NAME), each under its derived mode
        self._derived = list(derived)
        self._modes += [(m.name, d) for m in modes.MODES.values() if m.derived
                        for d in derived if d.partition(":")[0] == m.name]
        with QSignalBlocker(self.scope_combo), QSignalBlocker(self.tune_scope), \
                QSignalBlocker(self.mode_combo), QSignalBlocker(self.fusion_list):
            self.scope_combo.clear()
            self.scope_combo.addItems(self._scopes)
            self.tune_scope.clear()
            self.tune_scope.addItems(self._scopes)
            self.tune_scope.setCurrentText("fold1" if "fold1" in scopes else scopes[0])
            self.mode_combo.clear()
            for mode, name in self._modes:
                kind = dict(modalities).get(name or "", "classifier")
                self.mode_combo.addItem(f"{name} ({kind})" if name
                                        else modes.MODES[mode].choice)
            self.fusion_list.clear()
            for name, kind in modalities:
                item = QListWidgetItem(f"{name} ({kind})")
                item.setData(Qt.ItemDataRole.UserRole, name)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked)
                self.fusion_list.addItem(item)
            rows = max(len(modalities), 1)
            self.fusion_list.setMaximumHeight(self.fusion_list.sizeHintForRow(0) * rows
                                              + 2 * self.fusion_list.frameWidth() + 2)
        self._thr_mem.clear()
        self._min2_mem.clear()
        self._fusion_mem = ()
        cfg = self._cfg
        if cfg is None or not set(cfg.modalities) <= set(names) or \
                (cfg.spec.fusion and len(names) < 2):
            cfg = MatchConfig("single", (names[0],), (DEFAULT_THRESHOLD,))
        scope = self._scope if self._scope in scopes else \
            ("fold0" if "fold0" in scopes else scopes[0])
        self.set_state(cfg, scope)

    def set_state(self, cfg: MatchConfig, scope: str) -> None:
        """Show `cfg` and `scope` on every widget, emitting nothing."""
        known = {*dict(self._modalities), *self._derived}
        unknown = [m for m in cfg.modalities if m not in known]
        if unknown:
            raise ValueError(f"modality {unknown[0]!r} is not among the choices "
                             "(call set_choices first)")
        if scope not in self._scopes:
            raise ValueError(f"scope {scope!r} is not among the choices")
        self._set_cfg(cfg)
        self._scope = scope
        with QSignalBlocker(self.scope_combo):
            self.scope_combo.setCurrentText(scope)
        self.status.clear()
        self._show(cfg)

    def bind(self, state: ViewerState) -> None:
        """Make the panel a view of `state` (call after `set_choices`): analyst changes
        update it, and every change of its scope or configuration repaints the panel."""
        self._state = state
        state.subscribe(self._on_state)
        self.set_state(state.config, state.scope)

    def _on_state(self, changed: frozenset[str]) -> None:
        state = self._state
        if changed & {"config", "scope"} and (state.config, state.scope) != (self._cfg,
                                                                            self._scope):
            self.set_state(state.config, state.scope)

    def config(self) -> MatchConfig:
        if self._cfg is None:
            raise RuntimeError("ControlsPanel has no configuration yet: call set_choices")
        return self._cfg

    def scope(self) -> str:
        return self._scope

    def toggle_min2(self) -> None:
        self.min2_check.setChecked(not self.min2_check.isChecked())

    def cycle_mode(self, step: int = 1) -> None:
        """Move the mode combo by `step` entries, wrapping around (emits like a user pick)."""
        n = self.mode_combo.count()
        if n:
            self.mode_combo.setCurrentIndex((self.mode_combo.currentIndex() + step) % n)

    # -- state ----------------------------------------------------------------------------
    def _set_cfg(self, cfg: MatchConfig) -> None:
        self._cfg = cfg
        keys = _memory_keys(cfg.mode, cfg.modalities)
        self._thr_mem.update(zip(keys, cfg.thresholds, strict=True))
        if cfg.min2 is not None:
            self._min2_mem.update(zip(keys, cfg.min2, strict=True))
        if cfg.spec.fusion:
            self._fusion_mem = cfg.modalities

    def _commit(self, make: Callable[[MatchConfig], MatchConfig], rebuild: bool) -> None:
        """Apply one change; refuse (and restore the widgets) when it is invalid."""
        try:
            cfg = make(self.config())
        except ConfigError as exc:
            self._show(self.config())
            self.status.setText(str(exc))
            return
        self.status.clear()
        if rebuild:
            self._show(cfg)
        if cfg != self._cfg:
            self._set_cfg(cfg)
            self.configChanged.emit(cfg)
            if self._state is not None:
                self._state.update(config=cfg)

    def _restructured(self, cfg: MatchConfig, mode: str,
                      modalities: tuple[str, ...]) -> MatchConfig:
        """`cfg` moved to another mode or modality set, reusing remembered thresholds."""
        keys = _memory_keys(mode, modalities)
        thresholds = tuple(self._thr_mem.get(k, cfg.thresholds[0]) for k in keys)
        min2 = None
        if cfg.min2 is not None:
            min2 = tuple(self._min2_mem.get(k, min2_default(t))
                         for k, t in zip(keys, thresholds, strict=True))
        spec = modes.MODES[mode]
        weights = None
        if spec.weighted and cfg.weights is not None:
            old = dict(zip(cfg.modalities, cfg.weights, strict=True))
            weights = tuple(old.get(m, DEFAULT_WEIGHT) for m in modalities)
        inb = cfg.inb if spec.blends else ()
        return cfg.replace(mode=mode, modalities=modalities, thresholds=thresholds,
                           weights=weights, min2=min2, inb=inb)

    def _fusion_members(self) -> tuple[str, ...]:
        return self._fusion_mem or default_fusion(self._modalities)

    def _show(self, cfg: MatchConfig) -> None:
        """Every widget to `cfg`, without signals; rows are rebuilt only when their shape
        changes."""
        fused = cfg.spec.fusion
        entry = (cfg.mode, None) if fused else (cfg.mode, cfg.modalities[0])
        with QSignalBlocker(self.mode_combo):
            self.mode_combo.setCurrentIndex(self._modes.index(entry))
        # a single mode keeps the list on the fusion the mode combo would switch to
        members = cfg.modalities if fused else self._fusion_members()
        with QSignalBlocker(self.fusion_list):
            for i in range(self.fusion_list.count()):
                item = self.fusion_list.item(i)
                on = item.data(Qt.ItemDataRole.UserRole) in members
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        for w in (self._fusion_label, self.fusion_list):
            w.setVisible(fused)
        weighted = cfg.spec.weighted
        for w in (self._weights_label, self.weights):
            w.setVisible(weighted)
        if weighted:
            self.weights.set_rows(cfg.modalities,
                                  cfg.weights or (DEFAULT_WEIGHT,) * len(cfg.modalities))

        labels = cfg.modalities if cfg.spec.own_thresholds else (cfg.mode,)
        self.thresholds.set_rows(labels, cfg.thresholds)
        with QSignalBlocker(self.min2_check):
            self.min2_check.setChecked(cfg.min2 is not None)
        self.min2_rows.setVisible(cfg.min2 is not None)
        self.min2_rows.set_rows(labels, cfg.min2 or tuple(min2_default(t)
                                                          for t in cfg.thresholds))

        blends = cfg.spec.blends
        no_inb = NO_INB_TIP.format(words=f"a {cfg.spec.words}" if cfg.spec.words
                                   else cfg.label)
        with QSignalBlocker(self.inb_spin):
            self.inb_spin.setValue(len(cfg.inb))
        self.inb_spin.setEnabled(blends)
        self.inb_spin.setToolTip(INB_TIP if blends else no_inb)
        self.inb_rows.set_stages(cfg.inb)
        with QSignalBlocker(self.inb_exact):
            self.inb_exact.setChecked(cfg.inb_exact)
        self.inb_exact.setEnabled(blends)
        self.inb_exact.setToolTip(EXACT_TIP if blends else no_inb)
        with QSignalBlocker(self.units_check):
            self.units_check.setChecked(cfg.units)
        self.post_rows.set_post(cfg.post)

    # -- handlers -------------------------------------------------------------------------
    def _on_scope(self, index: int) -> None:
        if index < 0:
            return
        self._scope = self.scope_combo.itemText(index)
        self.scopeChanged.emit(self._scope)
        if self._state is not None:
            self._state.update(scope=self._scope)

    def _on_mode(self, index: int) -> None:
        if index < 0:
            return
        mode, name = self._modes[index]

        def change(cfg: MatchConfig) -> MatchConfig:
            if name is not None:
                mods: tuple[str, ...] = (name,)
            else:
                mods = cfg.modalities if cfg.spec.fusion else self._fusion_members()
            return self._restructured(cfg, mode, mods)

        self._commit(change, rebuild=True)

    def _on_fusion_item(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.ItemDataRole.UserRole)
        on = item.checkState() == Qt.CheckState.Checked

        def change(cfg: MatchConfig) -> MatchConfig:
            mods = tuple(m for m in cfg.modalities if m != name) + ((name,) if on else ())
            if len(mods) < 2:
                raise ConfigError(f"{cfg.mode}: a fusion needs at least two modalities; "
                                  "check another one first")
            return self._restructured(cfg, cfg.mode, mods)

        self._commit(change, rebuild=True)

    def _on_weight(self, _row: int, _value: float) -> None:
        # all rows are read: with weights=None the others are only shown, not stored
        weights = tuple(round(w.value(), 2) for w in self.weights.widgets)
        self._commit(lambda cfg: cfg.replace(weights=weights), rebuild=False)

    def _on_threshold(self, row: int, value: float) -> None:
        def change(cfg: MatchConfig) -> MatchConfig:
            t = list(cfg.thresholds)
            t[row] = round(value, DECIMALS)
            return cfg.replace(thresholds=tuple(t))

        self._commit(change, rebuild=False)

    def _on_min2_toggled(self, on: bool) -> None:
        def change(cfg: MatchConfig) -> MatchConfig:
            if not on:
                return cfg.replace(min2=None, inb=tuple(InbStage(s.threshold)
                                                        for s in cfg.inb))
            # per-iteration Min2 follows the main check box
            return cfg.replace(min2=tuple(min2_default(t) for t in cfg.thresholds),
                               inb=tuple(InbStage(s.threshold, min2_default(s.threshold))
                                         for s in cfg.inb))

        self._commit(change, rebuild=True)

    def _on_min2(self, row: int, value: float) -> None:
        def change(cfg: MatchConfig) -> MatchConfig:
            m = list(cfg.min2 or ())
            m[row] = round(value, DECIMALS)
            return cfg.replace(min2=tuple(m))

        self._commit(change, rebuild=False)

    def _on_inb_depth(self, depth: int) -> None:
        def change(cfg: MatchConfig) -> MatchConfig:
            stages = list(cfg.inb[:depth])
            while len(stages) < depth:
                # a new iteration starts from the previous stage's thresholds; its Min2
                # follows the main Min2 check box
                t = stages[-1].threshold if stages else cfg.thresholds[0]
                m2 = None
                if cfg.min2 is not None:
                    prev = stages[-1].min2 if stages else cfg.min2[0]
                    m2 = min2_default(t) if prev is None else prev
                stages.append(InbStage(t, m2))
            return cfg.replace(inb=tuple(stages))

        self._commit(change, rebuild=True)

    def _replace_stage(self, k: int, rebuild: bool, **changes: float | None) -> None:
        def change(cfg: MatchConfig) -> MatchConfig:
            stages = list(cfg.inb)
            stages[k] = InbStage(**{"threshold": stages[k].threshold,
                                    "min2": stages[k].min2, **changes})
            return cfg.replace(inb=tuple(stages))

        self._commit(change, rebuild=rebuild)

    def _on_inb_threshold(self, k: int, value: float) -> None:
        self._replace_stage(k, False, threshold=round(value, DECIMALS))

    def _on_inb_min2_toggled(self, k: int, on: bool) -> None:
        t = self.config().inb[k].threshold
        self._replace_stage(k, True, min2=min2_default(t) if on else None)

    def _on_inb_min2(self, k: int, value: float) -> None:
        self._replace_stage(k, False, min2=round(value, DECIMALS))

    def _on_inb_exact(self, on: bool) -> None:
        self._commit(lambda cfg: cfg.replace(inb_exact=on), rebuild=False)

    def _on_units(self, on: bool) -> None:
        self._commit(lambda cfg: cfg.replace(units=on), rebuild=False)

    def _on_post(self, change: PostChange, rebuild: bool) -> None:
        self._commit(lambda cfg: cfg.replace(post=change(cfg.post)), rebuild=rebuild)

    def _on_tune(self) -> None:
        scope = self.tune_scope.currentText()
        if scope:
            self.tuneRequested.emit(scope)
