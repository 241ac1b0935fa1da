"""Matching modes as plug-ins. A mode is a `Mode` (explorer/core/modes/base.py) in a module
of this package, registered below: the configuration's checks, the engine's scoring and
stage-0 pairs, the sweeps, tuning, `best`'s search, the explanations and the wording all
read its properties, so adding a mode is adding a module and a line here."""

from __future__ import annotations

from explorer.core.modes import learned, prob_fusion, single, sum_fusion, union
from explorer.core.modes.base import NEG, Mode

__all__ = ["MODES", "NEG", "Mode", "find", "fusions", "names"]

# in the order `best` tries them and the controls list them
MODES: dict[str, Mode] = {m.name: m for m in (single.MODE, union.MODE, sum_fusion.MODE,
                                              prob_fusion.MODE, learned.MODE)}


def names() -> tuple[str, ...]:
    return tuple(MODES)


def find(name: object) -> Mode | None:
    """The mode of that name, or None."""
    return MODES.get(name) if isinstance(name, str) else None


def fusions() -> tuple[Mode, ...]:
    return tuple(m for m in MODES.values() if m.fusion)
