"""Settings in words, for a person: a sweep parameter ("inb2.threshold" is "INB iteration 2
threshold") and a whole matching configuration ("sum:tfidf,phash:0.5,0.25" with its
thresholds is "sum fusion of tfidf + phash (weights 0.5, 0.25) ≥ 0.6 · Min2 ≥ 0.5").
The machine names stay what files and the command line use; these are for labels, axes
and status messages."""

from __future__ import annotations

from explorer.core.config import MatchConfig

__all__ = ["describe_config", "mode_words", "param_label"]

def mode_words(cfg: MatchConfig) -> str:
    """What the threshold of `cfg` cuts: its modality, or its mode's words ("sum fusion",
    "prob fusion", "union": explorer.core.modes)."""
    return cfg.spec.threshold_words(cfg.modalities)


def param_label(param: str, cfg: MatchConfig | None = None) -> str:
    """A sweep parameter (see `explorer.core.sweep.parse_param`) in words:
    "inb2.threshold" -> "INB iteration 2 threshold", "min2" -> "Min2 threshold",
    "threshold:tfidf" -> "tfidf threshold". With `cfg` a plain "threshold" or "min2" names
    what it thresholds ("tfidf threshold", "sum fusion threshold"). A name this does not
    know comes back as it is."""
    head, dot, rest = param.partition(".")
    stage = None
    if dot and head.startswith("inb") and head[3:].isdigit():
        stage, param = int(head[3:]), rest
    name, _, modality = param.partition(":")
    what = {"threshold": "threshold", "min2": "Min2 threshold"}.get(name)
    if what is None or (stage is not None and modality):
        return f"{head}{dot}{param}" if stage is not None else param
    if stage is not None:
        return f"INB iteration {stage} {what}"
    if modality:
        return f"{modality} {what}"
    return what if cfg is None else f"{mode_words(cfg)} {what}"


def _at_least(values: tuple[float, ...], cfg: MatchConfig) -> str:
    if cfg.spec.per_modality:
        return ", ".join(f"{m} ≥ {v:g}" for m, v in zip(cfg.modalities, values, strict=True))
    return f"≥ {values[0]:g}"


def describe_config(cfg: MatchConfig) -> str:
    """`cfg` in words, e.g. "union of tfidf ≥ 0.5, phash ≥ 0.9 · Min2 tfidf ≥ 0.4, phash ≥
    0.8 · unit filter" or "sum fusion of tfidf + phash (weights 0.5, 0.25) ≥ 0.6 · INB 2
    iterations (≥ 0.6, ≥ 0.7)"."""
    if not cfg.spec.fusion:
        head = f"{cfg.modalities[0]} {_at_least(cfg.thresholds, cfg)}"
    elif cfg.spec.per_modality:
        head = f"{mode_words(cfg)} of {_at_least(cfg.thresholds, cfg)}"
    else:
        weights = ("" if cfg.weights is None
                   else f" (weights {', '.join(f'{w:g}' for w in cfg.weights)})")
        head = (f"{mode_words(cfg)} of {' + '.join(cfg.modalities)}{weights} "
                f"{_at_least(cfg.thresholds, cfg)}")
    parts = [head]
    if cfg.min2 is not None:
        parts.append(f"Min2 {_at_least(cfg.min2, cfg)}")
    if cfg.inb:
        n = len(cfg.inb)
        stages = ", ".join(f"≥ {s.threshold:g}" + (f" Min2 ≥ {s.min2:g}" if s.min2 is not None
                                                   else "") for s in cfg.inb)
        exact = ", exact" if cfg.inb_exact else ""
        parts.append(f"INB {n} iteration{'s' if n > 1 else ''} ({stages}{exact})")
    if cfg.units:
        parts.append("unit filter")
    return " · ".join(parts)
