"""The engine's stage cache is bounded by bytes as well as by count: at a million
postings one INB stage is over a gigabyte, and eight of them would not fit a laptop."""

from __future__ import annotations

import numpy as np

from explorer.core.bundle import Bundle
from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine

CFG = MatchConfig("sum", ("tfidf", "phash"), (0.5,), inb=(InbStage(0.6), InbStage(0.7)))


def test_a_small_budget_keeps_only_the_newest_stage_and_the_same_numbers(tiny_bundle,
                                                                         monkeypatch):
    roomy = Engine(Bundle.open(tiny_bundle), "fold0")
    want = roomy.evaluate(CFG)
    assert len(roomy._stages) == 3  # stage 0 and two INB stages, all kept
    monkeypatch.setenv("EXPLORER_STAGE_CACHE_MB", "0.000001")
    tight = Engine(Bundle.open(tiny_bundle), "fold0")
    got = tight.evaluate(CFG)
    assert len(tight._stages) == 1 and tight.is_cached(CFG)  # the newest stays
    np.testing.assert_array_equal(got.pred, want.pred)
    np.testing.assert_array_equal(got.f1, want.f1)
    again = tight.evaluate(CFG.replace(inb=(InbStage(0.6), InbStage(0.75))))
    fresh = Engine(Bundle.open(tiny_bundle), "fold0").evaluate(
        CFG.replace(inb=(InbStage(0.6), InbStage(0.75))))
    np.testing.assert_array_equal(again.pred, fresh.pred)


def test_stage_bytes_counts_what_a_stage_owns(tiny_bundle):
    engine = Engine(Bundle.open(tiny_bundle), "fold0")
    single = MatchConfig("single", ("tfidf",), (0.5,))
    s0 = engine.stage(single)
    s1 = engine.stage(single.replace(inb=(InbStage(0.6),)))
    n, c = engine.graph.cand.shape
    # stage 0 of one modality shares the graph's arrays; it owns its score
    assert engine.stage_bytes(s0) >= s0.score.nbytes
    assert engine.stage_bytes(s0) < s0.score.nbytes + 2 * n * c * 4
    # an INB stage owns new similarities, a score and the blended embeddings
    blended = s1.spaces["tfidf"].mat
    assert engine.stage_bytes(s1) >= (s1.sims["tfidf"].nbytes + s1.score.nbytes
                                      + blended.data.nbytes)


def test_a_session_keeps_only_the_recent_scopes_engines(tiny_bundle):
    from explorer.core.session import ENGINES, Session

    session = Session(Bundle.open(tiny_bundle, lazy=True))
    first = session.engine("fold0")
    tuned = session.engine("fold1")
    for scope in ("fold2", "fold3", "fold4", "all"):
        session.engine(scope)
        assert session.engine("fold0") is first  # in use again: kept
        assert len(session._engines) <= ENGINES
    assert "fold1" not in session._engines and session.engine("fold1") is not tuned


def test_stage_bytes_counts_the_sweep_events_a_stage_caches(tiny_bundle):
    """A threshold curve caches its events in the stage (score and three deltas per pair:
    16 bytes each, the largest thing a stage holds at a million postings): counted."""
    from explorer.core.charts import threshold_curve

    engine = Engine(Bundle.open(tiny_bundle), "fold0")
    single = MatchConfig("single", ("tfidf",), (0.5,))
    st = engine.stage(single)
    before = engine.stage_bytes(st)
    threshold_curve(engine, single)
    events = st.cache["events"]
    assert engine.stage_bytes(st) - before >= events.score.nbytes + sum(
        d.nbytes for d in events.delta)
