"""Why the learned classifier scores a pair as it does (issue 11): LightGBM's per-feature
contributions (TreeSHAP, in log-odds: with the bias they sum to the pair's raw score,
whose sigmoid is its probability), the strongest few in words an analyst reads ("titles
differ in a number: 250 vs 500", "phash rank 1 both ways"), signed towards or against a
match.

A click must answer at once: only the query's own candidate pairs are featurised
(`pair_features(engine, rows)`), and a model is loaded once per bundle and name and kept
in `bundle.derived` until its files change (`load_model` parses the file in a child
process first, which costs far more than a click may)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from explorer.core.config import ConfigError, MatchConfig
from explorer.core.engine import Engine
from explorer.core.highlight import describe_conflicts
from explorer.core.pair_features import BLENDED, PER_MODALITY, pair_features, with_blended
from explorer.core.pair_model import PairModel, bundle_model, model_inputs
from explorer.core.title_features import (  # _NUMBER: the numbers the feature compares
    _NUMBER,
    TITLE_FEATURES,
)

__all__ = ["MIN_CONTRIBUTION", "TOP", "PairReasons", "Reason", "config_reasons", "model_of",
           "pair_reasons"]

TOP = 5            # reasons the pair view shows; the tile's tooltip shows fewer
# a contribution smaller than this reads "+0.00": it did not move the score, and is no reason
MIN_CONTRIBUTION = 0.005


@dataclass(frozen=True)
class Reason:
    """One feature's part in a pair's score."""

    feature: str
    value: float          # the pair's value of the feature (NaN: missing)
    contribution: float   # log-odds; > 0 pushes towards a match
    words: str            # the value as an analyst reads it

    @property
    def text(self) -> str:
        side = "towards" if self.contribution >= 0 else "against"
        return f"{self.words} ({side} a match {self.contribution:+.2f})"


@dataclass(frozen=True)
class PairReasons:
    """The classifier's view of one pair (query, candidate: scope rows)."""

    query: int
    candidate: int
    model: str            # the model's name ("" when given as a PairModel)
    probability: float
    bias: float           # the model's base log-odds, the same for every pair
    reasons: tuple[Reason, ...]  # every feature, strongest |contribution| first

    def top(self, k: int = TOP) -> tuple[Reason, ...]:
        """The `k` strongest reasons (a feature that did not move the score is none)."""
        return tuple(r for r in self.reasons[:k] if abs(r.contribution) >= MIN_CONTRIBUTION)

    @property
    def headline(self) -> str:
        name = f"learned:{self.model}" if self.model else "the classifier"
        return f"{name}: match probability {self.probability:.3f}"


def config_reasons(engine: Engine, cfg: MatchConfig, query: int,
                   candidates: Iterable[int] | None = None) -> dict[int, PairReasons]:
    """`pair_reasons` of the configuration's model when its mode is learned; {} for any
    other mode (no classifier scored the pairs)."""
    if cfg.mode != "learned":
        return {}
    return pair_reasons(engine, cfg.modalities[0].partition(":")[2], query, candidates)


def pair_reasons(engine: Engine, model: PairModel | str, query: int,
                 candidates: Iterable[int] | None = None) -> dict[int, PairReasons]:
    """Per candidate (scope row) of `query` (scope row), the classifier's probability and
    every feature's contribution to it, by the bundle's model of that name or a PairModel.
    Only the query's candidate pairs are scored: a candidate asked for that is not one of
    them (or the query itself) has no entry. `candidates` None: all of them."""
    f = pair_features(engine, np.array([query], np.int64))
    name = model if isinstance(model, str) else ""
    if isinstance(model, str):
        model = model_of(engine, model, model_inputs(engine.graph.modalities), query)
    f = with_blended(engine, f, model.blend)
    missing = [n for n in model.features if n not in f.names]
    if missing:
        raise ConfigError(f"the model needs feature(s) {', '.join(missing)} that this "
                          "scope does not have")
    other = engine.graph.cand[f.rows, f.cols].astype(np.int64)
    keep = (np.ones(len(other), bool) if candidates is None
            else np.isin(other, np.fromiter(candidates, np.int64)))
    if not keep.any():
        return {}
    values = f.values[keep]
    x = values[:, [f.names.index(n) for n in model.features]]
    # one thread: a few dozen pairs, where a pool's start-up costs more than it saves
    contrib = np.asarray(model.booster.predict(
        x, pred_contrib=True, num_iteration=model.best_iteration, num_threads=1), np.float64)
    titles = engine.data.titles() if engine.data.titles is not None else None
    out = {}
    for row, c, cs in zip(values, other[keep].tolist(), contrib, strict=True):
        pair = dict(zip(f.names, row.tolist(), strict=True))
        texts = None if titles is None else (str(titles[int(engine.rows[query])]),
                                             str(titles[int(engine.rows[c])]))
        reasons = [Reason(n, pair[n], float(v), _words(n, pair, texts))
                   for n, v in zip(model.features, cs[:-1].tolist(), strict=True)]
        reasons.sort(key=lambda r: -abs(r.contribution))  # stable: ties in model order
        bias = float(cs[-1])
        odds = bias + math.fsum(r.contribution for r in reasons)
        out[c] = PairReasons(int(query), c, name, _sigmoid(odds), bias, tuple(reasons))
    return out


def model_of(engine: Engine, name: str, available: tuple[str, ...],
             query: int | None = None) -> PairModel:
    """The bundle's model models/NAME as the learned mode loads it (pair_model.bundle_model:
    checked, cached per bundle, loaded again when its files change); for a cross-fitted
    model, the one that scored `query`'s (scope row) pairs: its fold's."""
    if engine.bundle is None:
        raise ConfigError(f"scope {engine.scope}: no bundle to read model {name!r} from")
    row = None if query is None else int(engine.rows[query])
    return bundle_model(engine.bundle, name, available, row=row)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


# -- words ------------------------------------------------------------------------------
def _words(name: str, pair: dict[str, float], titles: tuple[str, str] | None) -> str:
    """The feature `name` of a pair (all its features in `pair`) in words; numbers and
    amounts read from the two titles (query's, candidate's) where the feature is theirs."""
    modality, _, what = name.rpartition(".")
    if name == "units.conflict":
        return _conflict_words(pair[name], titles)
    if name in TITLE_FEATURES:
        return _title_words(what, pair[name], titles)
    if what in (*PER_MODALITY, BLENDED):
        return _modality_words(modality, what, pair)
    return f"{name} {_num(pair[name])}"


def _num(v: float) -> str:
    return "missing" if math.isnan(v) else f"{v:.2f}"


def _rank(v: float) -> str:
    return str(int(v))


def _modality_words(m: str, what: str, pair: dict[str, float]) -> str:
    v = pair[f"{m}.{what}"]
    nan = math.isnan(v)
    if what == "sim":
        return f"no {m} similarity (a posting has no {m} embedding)" if nan else \
            f"{m} similarity {v:.2f}"
    if what in ("rank", "rank_back"):
        mine = "the query" if what == "rank" else "the candidate"
        if nan:
            return (f"not in the query's {m} top-K" if what == "rank"
                    else f"the query is not in the candidate's {m} top-K")
        there = pair[f"{m}.rank_back" if what == "rank" else f"{m}.rank"]
        if there == v:
            return f"{m} rank {_rank(v)} both ways"
        return f"{m} rank {_rank(v)} from {mine}"
    if what in ("first_q", "fifth_q", "first_c", "fifth_c"):
        whose = "the query's" if what.endswith("_q") else "the candidate's"
        nth = "best" if what.startswith("first") else "5th"
        if nan:
            return (f"{whose[:-2]} has no other {m} neighbour" if nth == "best"
                    else f"{whose[:-2]} has fewer than 5 {m} neighbours")
        return f"{whose} {nth} {m} neighbour at {v:.2f}"
    if what == "gap":
        if nan:
            return f"no {m} similarity to set against the query's best"
        if v < 5e-4:
            return f"as close in {m} as the query's best neighbour"
        return f"{m} similarity {v:.2f} below the query's best"
    if what == BLENDED:
        return (f"no {m} similarity after blending" if nan else
                f"{m} similarity {v:.2f} after one INB blend of both neighbourhoods")
    if what == "shared10":
        return (f"no {m} neighbour in common among their 10 best" if v == 0 else
                f"share {_rank(v)} of their 10 best {m} neighbours")
    return f"{m}.{what} {_num(v)}"


def _conflict_words(v: float, titles: tuple[str, str] | None) -> str:
    if math.isnan(v):
        return "no titles to read amounts from"
    if v == 0:
        return "no conflicting amounts in the titles"
    found = describe_conflicts(*titles) if titles is not None else []
    return "titles name different amounts" + (f": {'; '.join(found)}" if found else "")


def _numbers(title: str) -> dict[str, str]:
    """The numbers a title names, as the feature reads them (a decimal comma is a point)
    -> as written, in order of appearance."""
    out: dict[str, str] = {}
    for x in _NUMBER.findall(title):
        out.setdefault(x.replace(",", "."), x)
    return out


def _title_words(what: str, v: float, titles: tuple[str, str] | None) -> str:
    if what == "numbers_differ":
        if titles is None:
            return "no titles to read numbers from"
        a, b = _numbers(titles[0]), _numbers(titles[1])
        if math.isnan(v):
            who = ("neither title" if not a and not b else
                   "the query's title" if not a else "the candidate's title")
            return f"{who} names no number"
        if v == 0:
            return f"titles name the same numbers: {', '.join(a.values())}"
        only_a = [w for k, w in a.items() if k not in b]
        only_b = [w for k, w in b.items() if k not in a]
        if only_a and only_b:
            return f"titles differ in a number: {', '.join(only_a)} vs {', '.join(only_b)}"
        if only_b:
            return f"only the candidate's title names {', '.join(only_b)}"
        return f"only the query's title names {', '.join(only_a)}"
    if math.isnan(v):
        return "no titles to compare" if titles is None else "both titles are empty"
    if what == "token_set":
        share = "few" if v < 0.5 else "some" if v < 0.8 else "most"
        return f"titles share {share} words: token-set {v:.2f}"
    if what == "ratio":
        return f"titles alike by edit distance: {v:.2f}"
    if what == "length_ratio":
        lengths = f" ({len(titles[0])} vs {len(titles[1])} characters)" if titles else ""
        return f"title lengths ratio {v:.2f}{lengths}"
    return f"title.{what} {_num(v)}"
