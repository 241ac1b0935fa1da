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
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.core import modes

MAX_INB = 5
# Every score the engine thresholds lies in [-1, 1]: a modality's similarity is a cosine
# (dense, TF-IDF, a --fuse modality; also after INB blending, whose rows are re-normalised)
# or 1 - hamming / 64 for a hash, in [0, 1] (its blended form (1 + dot) / 2 too); sum is a
# weighted mean of those (a missing embedding counts 0); prob clips each similarity to
# [0, 1] before 1 - prod(1 - s), so it is in [0, 1]. Below a score's least value a
# threshold admits every candidate and above 1 none: both ends are reachable, so every
# threshold and Min2 threshold of every mode may be anything in [-1, 1] (a hash or prob
# threshold in [-1, 0) admits every candidate, as 0 does; refusing it would take the
# bundle's storage kinds, and it does no harm).
THRESHOLD_RANGE = (-1.0, 1.0)
# Sum weights are normalised, so only their ratios matter; the cap keeps float32 sums finite
# and catches a value typed in the wrong unit.
WEIGHT_RANGE = (0.0, 1000.0)


class ConfigError(ValueError):
    """An impossible configuration; the message says which setting and why."""


@dataclass(frozen=True)
class InbStage:
    threshold: float
    min2: float | None = None


# a merge's target mean group size and largest group, a chisel's set size: postings
GROUP_SIZE_RANGE = (1, 100_000)


@dataclass(frozen=True)
class Post:
    """Graph post-processing after the last stage's selection (explorer.core.post), each
    stage optional (None: off): `mutual`, the reverse score a pair needs; `merge`,
    (target mean group size, largest group); `chisel`, (set size, stricter threshold)."""

    mutual: float | None = None
    merge: tuple[float, int] | None = None
    chisel: tuple[int, float] | None = None

    @property
    def active(self) -> bool:
        return self.mutual is not None or self.merge is not None or self.chisel is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.mutual is not None:
            out["mutual"] = self.mutual
        if self.merge is not None:
            out["merge"] = {"target": self.merge[0], "max_size": self.merge[1]}
        if self.chisel is not None:
            out["chisel"] = {"size": self.chisel[0], "threshold": self.chisel[1]}
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Post:
        if not isinstance(data, dict):
            raise ConfigError(f"post: {_show(data)} is not an object")
        unknown = set(data) - {"mutual", "merge", "chisel"}
        if unknown:
            raise ConfigError(f"post: unknown stage(s) {', '.join(sorted(map(str, unknown)))}"
                              " (expected mutual, merge, chisel)")

        def pair(name: str, keys: tuple[str, str]) -> tuple | None:
            value = data.get(name)
            if value is None:
                return None
            if not isinstance(value, dict) or set(value) != set(keys):
                raise ConfigError(f"post.{name}: expected {{{', '.join(keys)}}}, not "
                                  f"{_show(value)}")
            return tuple(value[k] for k in keys)

        return cls(data.get("mutual"), pair("merge", ("target", "max_size")),
                   pair("chisel", ("size", "threshold")))

    def checked(self) -> Post:
        """The same stages with every number checked and stored as float / int."""
        lo, hi = THRESHOLD_RANGE
        glo, ghi = GROUP_SIZE_RANGE
        mutual = None if self.mutual is None else _number(self.mutual, "mutual", lo, hi)
        merge = chisel = None
        if self.merge is not None:
            target, size = _two(self.merge, "merge")
            merge = (_number(target, "merge target", glo, ghi),
                     _integer(size, "merge largest group", 2, ghi))
        if self.chisel is not None:
            size, t = _two(self.chisel, "chisel")
            chisel = (_integer(size, "chisel size", glo, ghi), _number(t, "chisel threshold",
                                                                      lo, hi))
        return Post(mutual, merge, chisel)


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
    post: Post = field(default_factory=Post)

    def __post_init__(self) -> None:
        self._check_values()
        mode = modes.find(self.mode)
        if mode is None:
            raise ConfigError(f"mode {_show(self.mode)}: expected one of "
                              f"{', '.join(modes.names())}")
        n = len(self.modalities)
        if not mode.fusion and n != 1:
            raise ConfigError("a single-modality mode names exactly one modality")
        if mode.fusion and n < 2:
            raise ConfigError(f"{self.mode}: a fusion needs at least two modalities")
        if len(set(self.modalities)) != n:
            raise ConfigError(f"{self.mode}: a modality is named twice")
        want = mode.n_thresholds(n)
        if len(self.thresholds) != want:
            raise ConfigError(f"{self.label}: needs {want} threshold(s), got "
                              f"{len(self.thresholds)}")
        if self.min2 is not None and len(self.min2) != want:
            raise ConfigError(f"{self.label}: Min2 needs {want} threshold(s), got "
                              f"{len(self.min2)}")
        if self.weights is not None:
            if not mode.weighted:
                raise ConfigError("weights apply only to " + " or ".join(
                    m.words for m in modes.MODES.values() if m.weighted))
            if len(self.weights) != n or min(self.weights) < 0 or sum(self.weights) <= 0:
                raise ConfigError(f"{self.label}: needs {n} non-negative weights, not all zero")
        if self.inb and not mode.blends:
            raise ConfigError(f"INB blends one embedding space: use a single modality, sum or "
                              f"prob fusion, not a {mode.words}")
        if len(self.inb) > MAX_INB:
            raise ConfigError(f"INB: at most {MAX_INB} iterations")

    def _check_values(self) -> None:
        """Refuse NaN, infinities, out-of-range numbers and non-numbers (a bool is an int
        in Python, a string is not a number); store every number as a Python float."""
        if not isinstance(self.mode, str):
            raise ConfigError(f"mode: {_show(self.mode)} is not a name")
        mods = _sequence(self.modalities, "modalities")
        if not all(isinstance(m, str) and m for m in mods):
            raise ConfigError(f"modalities: {_show(mods)} are not all names")
        mode = modes.find(self.mode)
        per_modality = mode is not None and mode.per_modality and len(mods) > 1

        def names(kind: str, values: tuple) -> list[str]:
            if per_modality and len(values) == len(mods):
                return [f"{kind} of {m}" for m in mods]
            return [kind if len(values) == 1 else f"{kind} {k + 1}" for k in range(len(values))]

        lo, hi = THRESHOLD_RANGE
        fix = {"modalities": tuple(mods)}
        thresholds = _sequence(self.thresholds, "thresholds")
        fix["thresholds"] = tuple(_number(v, what, lo, hi) for v, what in zip(
            thresholds, names("threshold", thresholds), strict=True))
        if self.min2 is not None:
            min2 = _sequence(self.min2, "Min2 thresholds")
            fix["min2"] = tuple(_number(v, what, lo, hi) for v, what in zip(
                min2, names("Min2 threshold", min2), strict=True))
        if self.weights is not None:
            weights = _sequence(self.weights, "weights")
            what = ([f"weight of {m}" for m in mods] if len(weights) == len(mods)
                    else [f"weight {k + 1}" for k in range(len(weights))])
            fix["weights"] = tuple(_number(v, w, *WEIGHT_RANGE) for v, w in zip(
                weights, what, strict=True))
        stages = []
        for k, st in enumerate(_sequence(self.inb, "INB")):
            if not isinstance(st, InbStage):
                raise ConfigError(f"INB iteration {k + 1}: {_show(st)} is not an INB stage")
            t = _number(st.threshold, f"INB iteration {k + 1} threshold", lo, hi)
            m2 = None if st.min2 is None else _number(
                st.min2, f"INB iteration {k + 1} Min2 threshold", lo, hi)
            stages.append(InbStage(t, m2))
        fix["inb"] = tuple(stages)
        fix["inb_exact"] = _flag(self.inb_exact, "inb_exact")
        fix["units"] = _flag(self.units, "units")
        if not isinstance(self.post, Post):
            raise ConfigError(f"post: {_show(self.post)} is not post-processing stages")
        fix["post"] = self.post.checked()
        for name, value in fix.items():
            object.__setattr__(self, name, value)

    # -- naming -------------------------------------------------------------------------
    @property
    def label(self) -> str:
        if not self.spec.fusion:
            return self.modalities[0]
        text = f"{self.mode}:{','.join(self.modalities)}"
        if self.weights is not None:
            text += ":" + ",".join(f"{w:g}" for w in self.weights)
        return text

    @property
    def spec(self) -> modes.Mode:
        """The mode's properties (explorer.core.modes)."""
        return modes.MODES[self.mode]

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
        } | ({"post": self.post.to_dict()} if self.post.active else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatchConfig:
        """A configuration from JSON (`to_dict`'s shape). Types are checked, not coerced:
        "0.5", true, "false" or NaN where a number or a boolean belongs are refused with
        a ConfigError naming the field (callers add the file)."""
        if not isinstance(data, dict):
            raise ConfigError(f"a configuration is a JSON object, not {_show(data)}")
        if not isinstance(data.get("mode"), str):
            raise ConfigError(f"mode: {_show(data.get('mode'))} is not a mode name")
        mode, mods, weights = parse_mode(data["mode"])
        if "thresholds" not in data:
            raise ConfigError("thresholds: missing")
        min2 = data.get("min2")
        inb = _sequence(data.get("inb", []), "inb")
        stages = []
        for k, st in enumerate(inb):
            if not isinstance(st, dict) or "threshold" not in st:
                raise ConfigError(f"INB iteration {k + 1}: {_show(st)} has no threshold")
            t = st["threshold"]
            m2 = st.get("min2")
            # InbStage holds what it is given; MatchConfig checks the numbers
            stages.append(InbStage(t, m2))
        return cls(
            mode=mode, modalities=mods, weights=weights,
            thresholds=_sequence(data["thresholds"], "thresholds"),
            min2=None if min2 is None else _sequence(min2, "min2"),
            inb=tuple(stages), inb_exact=data.get("inb_exact", False),
            units=data.get("units", False),
            post=Post.from_dict(data.get("post", {})),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _show(value: Any, limit: int = 40) -> str:
    """A value for a one-line message: its repr, cut short."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sequence(values: Any, what: str) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)):
        raise ConfigError(f"{what}: {_show(values)} is not a list")
    return tuple(values)


def _number(value: Any, what: str, lo: float, hi: float) -> float:
    """`value` as a float in [lo, hi], else a ConfigError naming `what`."""
    span = f"a number in [{lo:g}, {hi:g}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{what}: {_show(value)} is not {span}")
    x = float(value)
    if math.isnan(x) or not lo <= x <= hi:  # (NaN fails both comparisons anyway)
        raise ConfigError(f"{what}: {x!r} is not {span}")  # repr: 1.0000001, not 1
    return x


def _integer(value: Any, what: str, lo: int, hi: int) -> int:
    """`value` as an int in [lo, hi] (an integral float such as 3.0 too), else one line."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value) or value != int(value) or not lo <= value <= hi:
        raise ConfigError(f"{what}: {_show(value)} is not a whole number in [{lo}, {hi}]")
    return int(value)


def _two(value: Any, what: str) -> tuple:
    seq = _sequence(value, what)
    if len(seq) != 2:
        raise ConfigError(f"{what}: {_show(value)} is not two numbers")
    return seq


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{what}: {_show(value)} is not true or false")
    return bool(value)


def parse_mode(text: str) -> tuple[str, tuple[str, ...], tuple[float, ...] | None]:
    """'tfidf' | 'union:A,B' | 'sum:A,B[:wA,wB]' | 'prob:A,B' | 'learned[:NAME]' ->
    (mode, modalities, weights); a derived mode's one modality is 'learned:NAME'."""
    parts = text.strip().split(":")
    spec = modes.find(parts[0])
    if spec is not None and spec.derived:  # learned[:NAME]: the model is its modality
        name = parts[1].strip() if len(parts) == 2 else modes.learned.DEFAULT_MODEL
        if len(parts) > 2 or not name:
            raise ConfigError(f"mode {_show(text)}: {parts[0]} or {parts[0]}:NAME")
        return spec.name, (f"{spec.name}:{name}",), None
    if len(parts) == 1:
        if not parts[0] or "," in parts[0]:
            raise ConfigError(f"mode {_show(text)}: name one modality, or a fusion like sum:A,B")
        return "single", (parts[0],), None
    mode, names = parts[0], tuple(p.strip() for p in parts[1].split(",") if p.strip())
    spec = modes.find(mode)
    if spec is None or not spec.fusion:
        fusion_names = [m.name for m in modes.fusions()]
        raise ConfigError(f"mode {_show(text)}: fusion must be {', '.join(fusion_names[:-1])} or "
                          f"{fusion_names[-1]}")
    weights = None
    if len(parts) == 3:
        if not spec.weighted:
            raise ConfigError(f"mode {_show(text)}: only "
                              f"{' or '.join(m.name for m in modes.fusions() if m.weighted)} "
                              f"takes weights")
        try:
            weights = tuple(float(w) for w in parts[2].split(","))
        except ValueError:
            raise ConfigError(f"mode {_show(text)}: weights must be numbers") from None
        if len(weights) != len(names):
            raise ConfigError(f"mode {_show(text)}: one weight per modality")
    elif len(parts) > 3:
        raise ConfigError(f"mode {_show(text)}: too many ':'")
    return mode, names, weights
