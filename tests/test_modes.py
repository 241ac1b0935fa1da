"""Modes are plug-ins (explorer/core/modes): a new one, registered, is checked by the
configuration, scored by the engine, swept, tuned, tried by `best` and described in
words, with no other code knowing its name; the built-in ones keep their rules."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core import modes
from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError, InbStage, MatchConfig
from explorer.core.engine import Engine
from explorer.core.modes.base import NEG, Mode, excluded, finite_or_zero
from explorer.core.sweep import sweep, with_param
from explorer.core.tune import candidate_modes, tune
from explorer.core.wording import describe_config, mode_words


def _max_score(cfg, cand, sims, topk, conflict):
    best = np.maximum.reduce([finite_or_zero(sims[m]) for m in cfg.modalities])
    return np.where(excluded(cand, conflict), NEG, best).astype(np.float32), None


MAX = Mode("max", fusion=True, per_modality=False, weighted=False, blends=True,
           columns="all", words="max fusion", choice="max (best similarity)",
           score=_max_score)


@pytest.fixture
def with_max(monkeypatch):
    monkeypatch.setitem(modes.MODES, "max", MAX)


def test_a_registered_mode_works_everywhere(with_max, tiny_bundle):
    cfg = MatchConfig("max", ("tfidf", "phash"), (0.7,), min2=(0.5,))
    engine = Engine(Bundle.open(tiny_bundle), "fold2")
    ev = engine.evaluate(cfg)
    g = engine.graph
    want = np.maximum(np.where(np.isfinite(g.sims["tfidf"]), g.sims["tfidf"], 0),
                      np.where(np.isfinite(g.sims["phash"]), g.sims["phash"], 0))
    want = np.where(g.cand < 0, -np.inf, want)
    np.testing.assert_array_equal(ev.stage.score, want.astype(np.float32))
    # swept = evaluated value by value
    values = np.round(np.linspace(0.3, 1.0, 15), 3)
    s = sweep(engine, cfg, "threshold", values)
    for k, v in enumerate(values):
        assert s.f1[k] == pytest.approx(
            engine.evaluate(with_param(cfg, "threshold", float(v))).metrics.f1, abs=2e-6)
    tuned = tune(engine, cfg)
    assert tuned.mode == "max" and engine.evaluate(tuned).metrics.f1 >= ev.metrics.f1 - 1e-9
    assert any(c.mode == "max" for c in candidate_modes(["tfidf", "phash"]))
    assert mode_words(cfg) == "max fusion"
    assert describe_config(cfg).startswith("max fusion of tfidf + phash ≥ 0.7")
    assert cfg.label == "max:tfidf,phash"
    with pytest.raises(ConfigError, match="weights apply only to sum fusion"):
        MatchConfig("max", ("tfidf", "phash"), (0.7,), weights=(1.0, 2.0))


def test_an_unknown_mode_is_refused_naming_the_registered_ones():
    with pytest.raises(ConfigError, match="expected one of single, union, sum, prob"):
        MatchConfig("max", ("tfidf", "phash"), (0.7,))


@pytest.mark.parametrize("name", modes.names())
def test_the_built_in_modes_keep_their_rules(name):
    mode = modes.MODES[name]
    n = 2 if mode.fusion else 1
    mods = ("tfidf", "phash")[:n]
    cfg = MatchConfig(name, mods, (0.5,) * mode.n_thresholds(n))
    assert cfg.spec is mode
    with pytest.raises(ConfigError):
        MatchConfig(name, ("tfidf", "phash", "x")[: 3 - n], (0.5,))  # wrong modality count
    if not mode.blends:
        with pytest.raises(ConfigError, match="INB blends one embedding space"):
            cfg.replace(inb=(InbStage(0.6),))
    if mode.per_modality:
        with pytest.raises(ConfigError, match="needs 2 threshold"):
            MatchConfig(name, mods, (0.5,))



def test_the_controls_offer_a_registered_mode(with_max, qtbot):
    from PySide6.QtWidgets import QComboBox

    from explorer.gui.controls import ControlsPanel

    panel = ControlsPanel()
    qtbot.addWidget(panel)
    panel.set_choices(["fold0", "fold1"], [("tfidf", "text"), ("phash", "image")])
    combo = panel.findChild(QComboBox, "modeCombo")
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts[-1] == "max (best similarity)"
    with qtbot.waitSignal(panel.configChanged, timeout=1000) as got:
        combo.setCurrentIndex(len(texts) - 1)
    cfg = got.args[0]
    assert cfg.mode == "max" and len(cfg.modalities) == 2 and len(cfg.thresholds) == 1
