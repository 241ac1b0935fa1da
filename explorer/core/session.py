"""What the app works on: one bundle, an engine per scope, and immutable snapshots.

A `Snapshot` is everything one (scope, configuration) shows: the evaluation, the mean
metrics and, when a baseline is pinned, the baseline's evaluation on the same scope. The
app computes snapshots off the GUI thread (`Session.compute`) and only ever reads them, so
a slow INB request never blocks a repaint and a stale one is simply dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError, MatchConfig
from explorer.core.engine import Engine, Evaluation
from explorer.core.metrics import Metrics
from explorer.core.pair_model import learned_modalities
from explorer.core.post_tuning import STAGES as POST_STAGES
from explorer.core.tune import best, candidate_modes, tune

ENGINES = 3  # scopes whose engines a session keeps (see Session.engine)


class Cancelled(Exception):
    """A newer request superseded this computation."""


@contextmanager
def cancellable(engine: Engine, cancelled: Callable[[], bool] | None) -> Iterator[None]:
    """Engine work inside yields to a newer request: each of its checkpoints (between INB
    steps, between blocks of a sweep) raises Cancelled once `cancelled()` is true."""
    def check() -> None:
        if cancelled is not None and cancelled():
            raise Cancelled

    engine.checkpoint = check
    try:
        yield
    finally:
        engine.checkpoint = None


@dataclass(frozen=True)
class Snapshot:
    scope: str
    config: MatchConfig
    engine: Engine
    evaluation: Evaluation
    baseline: Evaluation | None = None  # the pinned configuration on the same scope

    @property
    def metrics(self) -> Metrics | None:
        return self.evaluation.metrics

    @property
    def n(self) -> int:
        return self.engine.n

    @property
    def delta_f1(self) -> np.ndarray | None:
        """Per-query F1 change against the pinned baseline (None when nothing is pinned)."""
        if self.baseline is None:
            return None
        return self.evaluation.f1 - self.baseline.f1


def default_scope(bundle: Bundle) -> str:
    """fold0 (the study's test fold) when the bundle has labels, else all."""
    scopes = bundle.manifest.scopes
    return "fold0" if "fold0" in scopes and bundle.manifest.has_labels else scopes[0]


def tuning_scope(bundle: Bundle, scope: str) -> str:
    """Where thresholds are tuned for `scope`: fold1 for the test fold (the study's
    protocol), otherwise the scope itself."""
    return "fold1" if scope == "fold0" and "fold1" in bundle.manifest.scopes else scope


class Session:
    """Engines per scope over one bundle (built lazily, kept), and snapshot computation.
    Not thread-safe: the app calls `compute` and `tune` from one worker thread only."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._derived = learned_modalities(bundle)

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.bundle.manifest.scopes)

    @property
    def modalities(self) -> list[tuple[str, str]]:
        """(name, kind) of every modality, in the bundle's order."""
        return [(m.name, m.kind) for m in self.bundle.manifest.modalities]

    @property
    def derived(self) -> list[str]:
        """The modalities the engine derives for this bundle: one per stored model
        (`learned:NAME`), listed when the session opened the bundle."""
        return list(self._derived)

    def engine(self, scope: str) -> Engine:
        """The scope's engine (built on first use). At most ENGINES are kept, the least
        recently used dropped first: the scope on screen and the one it is tuned on stay,
        and a million-posting bundle does not hold all six scopes' arrays at once."""
        if scope in self._engines:
            self._engines.move_to_end(scope)
        else:
            self._engines[scope] = Engine(self.bundle, scope)
            while len(self._engines) > ENGINES:
                self._engines.popitem(last=False)
        return self._engines[scope]

    def is_quick(self, scope: str, cfg: MatchConfig) -> bool:
        """True when computing cfg is only a re-threshold of cached scores."""
        return scope in self._engines and self._engines[scope].is_cached(cfg)

    def default_config(self) -> MatchConfig:
        """A text modality alone (TF-IDF when present) at 0.5; tune it for a better start."""
        names = [n for n, _ in self.modalities]
        text = [n for n, k in self.modalities if k == "text"]
        name = "tfidf" if "tfidf" in names else (text or names)[0]
        return MatchConfig("single", (name,), (0.5,))

    def compute(self, scope: str, cfg: MatchConfig, baseline: MatchConfig | None = None, *,
                progress: Callable[[int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> Snapshot:
        """Evaluate cfg (and the pinned baseline) on scope. INB stages are computed one at a
        time: `progress(done, total)` after each, and `cancelled()` is checked between them
        and between the per-modality steps inside each (raising Cancelled), so a superseded
        request stops early and the caller can do quick work there."""
        engine = self.engine(scope)
        todo = [cfg] if baseline is None else [cfg, baseline]
        total = sum(len(c.inb) + 1 for c in todo)
        done = 0

        with cancellable(engine, cancelled):  # inside a stage too, between its steps
            for c in todo:
                for upto in range(len(c.inb) + 1):
                    engine.yield_point()
                    engine.stage(c, upto)
                    done += 1
                    if progress is not None:
                        progress(done, total)
        ev = engine.evaluate(cfg)
        base = engine.evaluate(baseline) if baseline is not None else None
        return Snapshot(scope, cfg, engine, ev, base)

    def tune(self, cfg: MatchConfig, on: str) -> MatchConfig:
        """Every threshold of cfg tuned for mean F1 on scope `on` (the structure is kept)."""
        engine = self.engine(on)
        if not engine.has_labels:
            raise ConfigError("tuning needs labels: this bundle has no label_group")
        return tune(engine, cfg)

    def best(self, on: str, *, progress: Callable[[int, int], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> MatchConfig:
        """The configuration `explorer evaluate --best` picks on scope `on` (mode, weights,
        Min2, INB depth, unit filter, post-processing, every threshold) over all the
        bundle's modalities.
        `progress(done, total)` counts the modes tried; `cancelled()` is checked before
        each (raising Cancelled): a search of minutes must yield to a newer request."""
        engine = self.engine(on)
        if not engine.has_labels:
            raise ConfigError("the best search needs labels: this bundle has no label_group")
        mods = [name for name, _ in self.modalities]
        # each mode x units x Min2, then each post-processing stage tried on the winner
        total = len(candidate_modes(mods, self._derived)) * 4 + len(POST_STAGES)
        done = 0

        def step(_label: str) -> None:
            nonlocal done
            engine.yield_point()
            if progress is not None:
                progress(done, total)
            done += 1

        with cancellable(engine, cancelled):  # INB stages of the search yield too
            return best(engine, mods, progress=step, derived=self._derived)[0].config
