"""Matching configuration: what the analyst sets with the controls (or the CLI flags).

A mode is one modality (`tfidf`) or a fusion of several:
- `union:A,B`  predicted = union of each modality's own thresholded top-K (one threshold each);
- `sum:A,B`    score = weighted mean of the cosines, one threshold (the study's
               metric-layer fusion; equal to the cosine of the weight-scaled concatenation);
- `prob:A,B`   score = 1 - prod(1 - s_m), i.e. a + b - ab for two, one threshold.
A pair is predicted when its score is >= the threshold; a posting always predicts itself.
Min2 holds a looser threshold of the same shape (one per modality for a union). INB stages
(not for unions) each carry their own threshold and optional Min2 threshold.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

MODES = ("single", "union", "sum", "prob")
MAX_INB = 5


class ConfigError(ValueError):
    """An impossible configuration; the message says which setting and why."""


@dataclass(frozen=True)
class InbStage:
    threshold: float
    min2: float | None = None


@dataclass(frozen=True)
class MatchConfig:
    mode: str
    modalities: tuple[str, ...]
    thresholds: tuple[float, ...]
    weights: tuple[float, ...] | None = None
    min2: tuple[float, ...] | None = None
    inb: tuple[InbStage, ...] = field(default_factory=tuple)
    inb_exact: bool = False
    units: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r}: expected one of {', '.join(MODES)}")
        n = len(self.modalities)
        if self.mode == "single" and n != 1:
            raise ConfigError("a single-modality mode names exactly one modality")
        if self.mode != "single" and n < 2:
            raise ConfigError(f"{self.mode}: a fusion needs at least two modalities")
        if len(set(self.modalities)) != n:
            raise ConfigError(f"{self.mode}: a modality is named twice")
        want = n if self.mode == "union" else 1
        if len(self.thresholds) != want:
            raise ConfigError(f"{self.label}: needs {want} threshold(s), got "
                              f"{len(self.thresholds)}")
        if self.min2 is not None and len(self.min2) != want:
            raise ConfigError(f"{self.label}: Min2 needs {want} threshold(s), got "
                              f"{len(self.min2)}")
        if self.weights is not None:
            if self.mode != "sum":
                raise ConfigError("weights apply only to sum fusion")
            if len(self.weights) != n or min(self.weights) < 0 or sum(self.weights) <= 0:
                raise ConfigError(f"{self.label}: needs {n} non-negative weights, not all zero")
        if self.inb and self.mode == "union":
            raise ConfigError("INB blends one embedding space: use a single modality, sum or "
                              "prob fusion, not a union")
        if len(self.inb) > MAX_INB:
            raise ConfigError(f"INB: at most {MAX_INB} iterations")

    # -- naming -------------------------------------------------------------------------
    @property
    def label(self) -> str:
        if self.mode == "single":
            return self.modalities[0]
        text = f"{self.mode}:{','.join(self.modalities)}"
        if self.weights is not None:
            text += ":" + ",".join(f"{w:g}" for w in self.weights)
        return text

    @property
    def fusion_weights(self) -> tuple[float, ...]:
        if self.weights is not None:
            return self.weights
        return (1.0,) * len(self.modalities)

    def replace(self, **changes: Any) -> MatchConfig:
        return dataclasses.replace(self, **changes)

    # -- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.label,
            "thresholds": list(self.thresholds),
            "min2": None if self.min2 is None else list(self.min2),
            "inb": [{"threshold": s.threshold, "min2": s.min2} for s in self.inb],
            "inb_exact": self.inb_exact,
            "units": self.units,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatchConfig:
        try:
            mode, mods, weights = parse_mode(str(data["mode"]))
            min2 = data.get("min2")
            return cls(
                mode=mode, modalities=mods, weights=weights,
                thresholds=tuple(float(t) for t in data["thresholds"]),
                min2=None if min2 is None else tuple(float(t) for t in min2),
                inb=tuple(InbStage(float(s["threshold"]),
                                   None if s.get("min2") is None else float(s["min2"]))
                          for s in data.get("inb", [])),
                inb_exact=bool(data.get("inb_exact", False)), units=bool(data.get("units", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"settings: missing or malformed field ({exc})") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def parse_mode(text: str) -> tuple[str, tuple[str, ...], tuple[float, ...] | None]:
    """'tfidf' | 'union:A,B' | 'sum:A,B[:wA,wB]' | 'prob:A,B' -> (mode, modalities, weights)."""
    parts = text.strip().split(":")
    if len(parts) == 1:
        if not parts[0] or "," in parts[0]:
            raise ConfigError(f"mode {text!r}: name one modality, or a fusion like sum:A,B")
        return "single", (parts[0],), None
    mode, names = parts[0], tuple(p.strip() for p in parts[1].split(",") if p.strip())
    if mode not in MODES[1:]:
        raise ConfigError(f"mode {text!r}: fusion must be union, sum or prob")
    weights = None
    if len(parts) == 3:
        if mode != "sum":
            raise ConfigError(f"mode {text!r}: only sum takes weights")
        try:
            weights = tuple(float(w) for w in parts[2].split(","))
        except ValueError:
            raise ConfigError(f"mode {text!r}: weights must be numbers") from None
        if len(weights) != len(names):
            raise ConfigError(f"mode {text!r}: one weight per modality")
    elif len(parts) > 3:
        raise ConfigError(f"mode {text!r}: too many ':'")
    return mode, names, weights
