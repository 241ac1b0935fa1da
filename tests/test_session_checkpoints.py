"""A long computation yields inside each INB stage: the cancel check runs between the
per-modality steps (so the app's worker answers a query click there, and a superseded
request stops mid-stage), and nothing half-computed is ever cached."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.bundle import Bundle
from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine
from explorer.core.session import Cancelled, Session

CFG = MatchConfig("sum", ("tfidf", "phash"), (0.5,), inb=(InbStage(0.6), InbStage(0.7)))


def test_the_cancel_check_runs_inside_each_inb_stage(tiny_bundle):
    session = Session(Bundle.open(tiny_bundle))
    calls = []
    session.compute("fold0", CFG, cancelled=lambda: calls.append(1) or False)
    stages = len(CFG.inb) + 1
    # before each stage, and before each modality's blend and re-scoring in each INB stage
    assert len(calls) == stages + len(CFG.inb) * 2 * len(CFG.modalities)


@pytest.mark.parametrize("stop_at", [4, 5, 7])
def test_a_request_cancelled_mid_stage_caches_nothing_half_done(tiny_bundle, stop_at):
    bundle = Bundle.open(tiny_bundle)
    session = Session(bundle)
    calls = []
    with pytest.raises(Cancelled):
        session.compute("fold0", CFG, cancelled=lambda: calls.append(1) or len(calls) >= stop_at)
    engine = session.engine("fold0")
    assert engine.checkpoint is None  # the hook does not outlive the request
    got = session.compute("fold0", CFG).evaluation
    want = Engine(Bundle.open(tiny_bundle), "fold0").evaluate(CFG)  # a fresh engine
    np.testing.assert_array_equal(got.pred, want.pred)
    np.testing.assert_array_equal(got.f1, want.f1)


@pytest.mark.parametrize("at", [2, 3])  # before a stage; inside one
def test_engine_work_inside_the_checkpoint_is_not_checked_again(tiny_bundle, at):
    """The worker explains a query inside the hook, on the same engine: that work must not
    re-enter the hook (it would run the view's cancel check inside the query job)."""
    session = Session(Bundle.open(tiny_bundle))
    engine = session.engine("fold0")
    other = CFG.replace(inb=(InbStage(0.65),))
    depth, seen = [0], []

    def hook():
        seen.append(depth[0])
        depth[0] += 1
        try:
            if len(seen) == at:
                engine.evaluate(other)  # an INB stage computed inside the checkpoint
        finally:
            depth[0] -= 1
        return False

    session.compute("fold0", CFG, cancelled=hook)
    assert seen and set(seen) == {0}
