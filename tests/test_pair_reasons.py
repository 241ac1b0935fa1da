"""Why the learned classifier scores a pair as it does: per-feature contributions that sum
with the bias to the pair's log-odds (the probability the learned mode thresholds), the
strongest first, in words that name the titles' own numbers; no reasons outside the
learned mode; the model loaded once per bundle and name."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError, MatchConfig
from explorer.core.engine import Engine
from explorer.core.pair_features import pair_features
from explorer.core.pair_reasons import (
    MIN_CONTRIBUTION,
    config_reasons,
    model_of,
    pair_reasons,
)
from explorer.core.scope_data import ScopeData
from explorer.core.titles import decoded_titles
from explorer.core.units import QuantityTable

LEARNED = MatchConfig("learned", ("learned:pairs",), (0.5,))


def learned_bundle(tiny_bundle: Path, root: Path) -> Path:
    """A copy of the tiny bundle with a model `pairs` trained by `explorer learn` (a few
    seconds: 40 rounds)."""
    from explorer.cli import main

    copy = root / "learned.bundle"
    shutil.copytree(tiny_bundle, copy)
    assert main(["learn", str(copy), "--rounds", "40"]) == 0
    return copy


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory) -> Bundle:
    return Bundle.open(learned_bundle(tiny_bundle, tmp_path_factory.mktemp("reasons")))


@pytest.fixture(scope="module")
def engine(bundle) -> Engine:
    return Engine(bundle, "fold0")


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_contributions_and_bias_sum_to_the_pairs_probability(bundle, engine):
    ev = engine.evaluate(LEARNED)
    f = pair_features(engine)
    model = model_of(engine, "pairs", f.names)
    prob = model.probabilities(f)
    checked = 0
    for q in (0, 7, engine.n - 1):
        got = config_reasons(engine, LEARNED, q)
        cols = np.flatnonzero(engine.graph.cand[q] >= 0)[1:]
        assert sorted(got) == sorted(engine.graph.cand[q, cols].tolist())  # every pair
        for col in cols:
            why = got[int(engine.graph.cand[q, col])]
            assert why.query == q and why.model == "pairs"
            assert {r.feature for r in why.reasons} == set(model.features)
            want = float(prob[(f.rows == q) & (f.cols == col)][0])
            assert _sigmoid(why.bias + sum(r.contribution for r in why.reasons)) == \
                pytest.approx(want, abs=1e-5)
            assert why.probability == pytest.approx(want, abs=1e-5)
            assert why.probability == pytest.approx(float(ev.stage.score[q, col]), abs=1e-5)
            checked += 1
    assert checked > 10
    assert len({round(r.contribution, 6) for w in got.values() for r in w.reasons}) > 1


def test_reasons_are_the_strongest_first_and_top_leaves_out_what_did_not_count(engine):
    got = config_reasons(engine, LEARNED, 3)
    assert got
    for why in got.values():
        size = [abs(r.contribution) for r in why.reasons]
        assert size == sorted(size, reverse=True)
        top = why.top(4)
        assert top == tuple(r for r in why.reasons[:4] if abs(r.contribution)
                            >= MIN_CONTRIBUTION)
        for r in top:
            side = "towards" if r.contribution > 0 else "against"
            assert r.text.startswith(r.words) and f"({side} a match " in r.text
            assert f"{r.contribution:+.2f})" in r.text
    assert any(why.top() for why in got.values())


def test_some_candidates_equal_their_reasons_among_all(engine):
    every = config_reasons(engine, LEARNED, 5)
    pick = sorted(every)[:2]
    stranger = next(r for r in range(engine.n) if r != 5 and r not in every)
    some = config_reasons(engine, LEARNED, 5, [*pick, 5, stranger])
    assert sorted(some) == pick  # the query itself and a non-candidate have no entry
    for c in pick:
        assert some[c] == every[c]


def test_a_mode_other_than_learned_gives_no_reasons(engine):
    for cfg in (MatchConfig("single", ("tfidf",), (0.5,)),
                MatchConfig("union", ("tfidf", "phash"), (0.5, 0.9))):
        assert config_reasons(engine, cfg, 0) == {}


def test_a_hand_built_number_difference_names_both_numbers(bundle, engine):
    """The scope's titles with a query and its best candidate retitled: the words of the
    number feature name the two numbers as written, and the amounts the unit filter reads."""
    model = model_of(engine, "pairs", pair_features(engine, np.array([0])).names)
    titles = decoded_titles(bundle)
    mine = np.array([str(titles[i]) for i in range(len(bundle.items))], dtype=object)
    q = 0
    c = int(engine.graph.cand[q, 1])
    mine[engine.rows[q]] = "Madu Hutan Asli 250 ml"
    mine[engine.rows[c]] = "Madu Hutan Asli 500 ml"
    amounts = QuantityTable.from_titles(mine.tolist())  # the unit filter of these titles
    other = Engine.from_data(ScopeData(engine.graph, engine.labels, amounts.conflicts,
                                       titles=lambda: mine))
    why = pair_reasons(other, model, q, [c])[c]
    words = {r.feature: r.words for r in why.reasons}
    assert words["title.numbers_differ"] == "titles differ in a number: 250 vs 500"
    assert words["units.conflict"] == "titles name different amounts: volume: 250 ml vs 500 ml"
    assert "token-set" in words["title.token_set"]
    mine[engine.rows[c]] = "Madu Hutan Asli 250 ml isi 2,5"
    words = {r.feature: r.words for r in pair_reasons(other, model, q, [c])[c].reasons}
    assert words["title.numbers_differ"] == "only the candidate's title names 2,5"


def test_the_model_is_loaded_once_until_its_files_change(bundle, engine, monkeypatch):
    from explorer.core import pair_model as module

    names = pair_features(engine, np.array([0])).names
    first = model_of(engine, "pairs", names)
    loads = []
    real = module.load_model
    monkeypatch.setattr(module, "load_model", lambda *a: loads.append(a) or real(*a))
    assert model_of(engine, "pairs", names) is first
    config_reasons(engine, LEARNED, 1)
    engine.evaluate(LEARNED)  # the learned mode's scores share the loaded model
    assert loads == []
    meta = bundle.root / "models" / "pairs" / "model.json"
    stat = meta.stat()
    os.utime(meta, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: reloaded
    again = model_of(engine, "pairs", names)
    assert len(loads) == 1 and again is not first
    assert model_of(engine, "pairs", names) is again


def test_no_model_of_that_name_is_one_line(engine):
    with pytest.raises(ConfigError, match="no model 'nope' in this bundle"):
        config_reasons(engine, MatchConfig("learned", ("learned:nope",), (0.5,)), 0)
