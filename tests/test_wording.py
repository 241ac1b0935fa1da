"""explorer.core.wording: matching settings in words for status messages (the sweep
parameters' words are tested with the curves, in tests/test_charts.py)."""

from __future__ import annotations

import pytest

from explorer.core.config import InbStage, MatchConfig
from explorer.core.wording import describe_config, mode_words


@pytest.mark.parametrize(("cfg", "words"), [
    (MatchConfig("single", ("tfidf",), (0.537,)), "tfidf ≥ 0.537"),
    (MatchConfig("union", ("tfidf", "phash"), (0.5, 0.9), min2=(0.4, 0.8), units=True),
     "union of tfidf ≥ 0.5, phash ≥ 0.9 · Min2 tfidf ≥ 0.4, phash ≥ 0.8 · unit filter"),
    (MatchConfig("sum", ("tfidf", "phash"), (0.6,), weights=(0.5, 0.25),
                 inb=(InbStage(0.6), InbStage(0.7, 0.5))),
     "sum fusion of tfidf + phash (weights 0.5, 0.25) ≥ 0.6 · INB 2 iterations "
     "(≥ 0.6, ≥ 0.7 Min2 ≥ 0.5)"),
    (MatchConfig("prob", ("tfidf", "phash"), (0.6,), min2=(0.5,)),
     "prob fusion of tfidf + phash ≥ 0.6 · Min2 ≥ 0.5"),
    (MatchConfig("single", ("effnet",), (0.8,), inb=(InbStage(0.6),), inb_exact=True),
     "effnet ≥ 0.8 · INB 1 iteration (≥ 0.6, exact)"),
])
def test_describe_config(cfg, words):
    assert describe_config(cfg) == words
    assert ":" not in describe_config(cfg)  # no settings-string syntax left


def test_mode_words():
    assert mode_words(MatchConfig("single", ("tfidf",), (0.5,))) == "tfidf"
    assert mode_words(MatchConfig("sum", ("a", "b"), (0.5,))) == "sum fusion"
    assert mode_words(MatchConfig("union", ("a", "b"), (0.5, 0.5))) == "union"
