"""Graph post-processing (explorer/core/post.py): each stage against a hand-worked example,
its provenance, and the configuration's checks."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core import post
from explorer.core.config import ConfigError, MatchConfig, Post
from explorer.core.engine import Engine
from explorer.core.explain import miss_reasons
from explorer.core.graph import ScopeGraph
from explorer.core.scope_data import ScopeData
from explorer.core.sweep import sweep

NEG = -np.inf


def _engine() -> Engine:
    """Postings 0, 1, 2 are product A, 3 and 4 product B. 1's list holds 4 at 0.6, but 4's
    list does not hold 1 (no reverse score)."""
    cand = np.array([[0, 1, 2, 3], [1, 0, 2, 4], [2, 0, 1, -1], [3, 0, 4, -1],
                     [4, 3, -1, -1]], np.int32)
    sim = np.array([[1, .9, .7, .2], [1, .9, .5, .6], [1, .7, .5, NEG], [1, .2, .8, NEG],
                    [1, .8, NEG, NEG]], np.float32)
    graph = ScopeGraph("hand", np.arange(5), cand, np.ones_like(cand, np.uint8),
                       {"tfidf": sim}, ("tfidf",))
    return Engine.from_data(ScopeData(graph, np.array([0, 0, 0, 1, 1])))


BASE = MatchConfig("single", ("tfidf",), (0.55,))
# at 0.55: 0 {0,1,2}, 1 {1,0,4}, 2 {2,0}, 3 {3,4}, 4 {4,3}
BASE_F1 = [1, 2 * 2 / 6, 2 * 2 / 5, 1, 1]


def _members(ev, q: int) -> set[int]:
    return set(ev.stage.cand[q][ev.pred[q]].tolist())


def test_the_hand_example_before_post_processing():
    ev = _engine().evaluate(BASE)
    assert ev.post is None
    np.testing.assert_allclose(ev.f1, BASE_F1)


def test_reverse_scores_read_the_other_postings_list():
    e = _engine()
    rev = post.reverse_scores(e.graph.cand, e.graph.sims["tfidf"])
    assert rev[1, 3] == NEG  # 4's list does not hold 1
    assert rev[0, 1] == np.float32(.9) and rev[3, 1] == np.float32(.2)
    assert rev[0, 0] == 1 and rev[2, 3] == NEG  # itself; padding


def test_the_mutual_filter_drops_a_pair_not_scored_back():
    ev = _engine().evaluate(BASE.replace(post=Post(mutual=0.0)))
    assert _members(ev, 1) == {0, 1}
    np.testing.assert_allclose(ev.f1, [1, 2 * 2 / 5, 2 * 2 / 5, 1, 1])
    assert ev.post[1, 3] == post.MUTUAL_REMOVED and np.count_nonzero(ev.post) == 1
    reason, gap = miss_reasons(ev, np.array([1]), np.array([3]))
    assert reason[0] == "removed by the mutual filter" and np.isnan(gap[0])
    # needing 0.75 back, 0 -> 2 and 2 -> 0 (0.7 both ways) go too; Min2 gives the then
    # lonely 2 its best other, 0, back
    ev = _engine().evaluate(BASE.replace(post=Post(mutual=0.75), min2=(0.5,)))
    assert _members(ev, 0) == {0, 1} and _members(ev, 2) == {0, 2}
    assert ev.min2_col[2] == 1 and ev.post[2, 1] == post.KEPT


def test_merging_joins_groups_best_pair_first_up_to_the_largest_group():
    ev = _engine().evaluate(BASE.replace(post=Post(merge=(100.0, 3))))
    # 0-1 (0.9), 3-4 (0.8), 0-2 (0.7) join; 1-4 (0.6) would make a group of 5 > 3
    assert _members(ev, 1) == {0, 1, 2} and _members(ev, 2) == {0, 1, 2}
    np.testing.assert_allclose(ev.f1, 1.0)
    assert ev.post[1, 2] == post.MERGE_ADDED and ev.post[2, 2] == post.MERGE_ADDED
    assert ev.post[1, 3] == post.MERGE_REMOVED
    assert np.count_nonzero(ev.post) == 3


def test_merging_stops_at_the_target_mean_group_size():
    # sum of squared group sizes over n: 1.0, then 7/5 after 0-1 and 9/5 after 3-4
    ev = _engine().evaluate(BASE.replace(post=Post(merge=(1.8, 51))))
    assert _members(ev, 0) == {0, 1} and _members(ev, 2) == {2}
    assert ev.post[0, 2] == post.MERGE_REMOVED and ev.post[2, 1] == post.MERGE_REMOVED
    assert ev.post[1, 3] == post.MERGE_REMOVED  # 1-4 never joined either


def test_chisel_trims_large_sets_to_the_stricter_threshold():
    ev = _engine().evaluate(BASE.replace(post=Post(chisel=(2, 0.8))))
    assert _members(ev, 0) == {0, 1} and _members(ev, 1) == {0, 1}
    assert _members(ev, 3) == {3, 4}  # 2 postings: not more than the size
    assert ev.post[0, 2] == post.CHISEL_REMOVED and ev.post[1, 3] == post.CHISEL_REMOVED
    np.testing.assert_allclose(ev.f1, [0.8, 0.8, 0.8, 1, 1])


def test_stages_apply_in_order_mutual_merge_chisel():
    ev = _engine().evaluate(BASE.replace(post=Post(mutual=0.0, merge=(100.0, 51),
                                                   chisel=(2, 0.95))))
    # mutual drops 1-4; the merge then joins {0,1,2} and {3,4}; chisel trims 0, 1 and 2's
    # sets of 3 to themselves (nothing scores 0.95), the merge's additions included
    assert _members(ev, 3) == {3, 4}
    assert _members(ev, 0) == {0} and _members(ev, 2) == {2}
    assert ev.post[1, 3] == post.MUTUAL_REMOVED
    assert ev.post[1, 2] == post.CHISEL_REMOVED  # added by merging, then chiselled


def test_a_sweep_with_post_processing_equals_evaluation():
    e = _engine()
    cfg = BASE.replace(post=Post(mutual=0.0, chisel=(2, 0.8)))
    values = np.array([0.3, 0.55, 0.75])
    got = sweep(e, cfg, "threshold", values)
    want = [e.evaluate(cfg.replace(thresholds=(float(v),))).metrics.f1 for v in values]
    np.testing.assert_allclose(got.f1, want)


def test_post_settings_round_trip_and_are_checked():
    cfg = BASE.replace(post=Post(mutual=0.2, merge=(3.5, 20), chisel=(10, 0.9)))
    back = MatchConfig.from_dict(cfg.to_dict())
    assert back == cfg and back.post.merge == (3.5, 20)
    assert "post" not in BASE.to_dict()  # the document of a configuration without it
    for bad, match in [(Post(mutual=float("nan")), "mutual"),
                       (Post(merge=(3.0, 1)), "merge largest group"),
                       (Post(merge=(3.0, 2.5)), "merge largest group"),
                       (Post(chisel=(0, 0.5)), "chisel size"),
                       (Post(chisel=(3, 2.0)), "chisel threshold"),
                       (Post(chisel=(3,)), "chisel")]:
        with pytest.raises(ConfigError, match=match):
            BASE.replace(post=bad)
    with pytest.raises(ConfigError, match="unknown stage"):
        MatchConfig.from_dict({**BASE.to_dict(), "post": {"pagerank": 1}})
    with pytest.raises(ConfigError, match=r"post\.merge"):
        MatchConfig.from_dict({**BASE.to_dict(), "post": {"merge": [3, 4]}})


def test_best_adds_a_stage_only_when_it_raises_f1():
    from explorer.core.post_tuning import add_post

    e = _engine()
    base_f1 = e.evaluate(BASE).metrics.f1
    tried = add_post(e, BASE, base_f1)
    first = tried[0][0].post
    assert first.mutual is not None and first == Post(mutual=first.mutual)
    f1s = [f for _, f in tried]
    assert f1s[1] == pytest.approx(1.0)  # merging, tuned, makes the two products whole
    merged = tried[1][0]
    assert merged.post.merge is not None and e.evaluate(merged).metrics.f1 == f1s[1]
    # chisel is tried on top of the kept merge (it cannot beat F1 1, so it is not kept)
    assert tried[2][0].post.merge == merged.post.merge


def _reference_merge(pred, cand, score, target, max_size):
    """The plain algorithm: every predicted (query, candidate) pair best first."""
    n = len(cand)
    group = {i: {i} for i in range(n)}
    pairs = sorted(((float(score[q, c]), q, int(cand[q, c])) for q, c in zip(
        *np.nonzero(pred), strict=True) if c > 0), key=lambda t: -t[0])
    for _, a, b in pairs:
        if sum(len(g) ** 2 for g in {id(g): g for g in group.values()}.values()) >= target * n:
            break
        ga, gb = group[a], group[b]
        if ga is gb or len(ga) + len(gb) > max_size:
            continue
        ga |= gb
        for x in gb:
            group[x] = ga
    return group


@pytest.mark.parametrize("seed", range(6))
def test_merging_equals_the_plain_algorithm_on_random_graphs(seed):
    rng = np.random.default_rng(seed)
    n, width = 60, 8
    cand = np.stack([np.concatenate([[q], rng.choice(np.delete(np.arange(n), q), width - 1,
                                                     replace=False)]) for q in range(n)])
    score = rng.random(cand.shape).astype(np.float32)  # no ties
    pred = score > 0.6
    pred[:, 0] = True
    target, max_size = float(rng.choice([1.5, 3.0, 6.0, 100.0])), int(rng.choice([3, 6, 60]))
    root = post.merge_groups(pred, cand, score, target, max_size)
    want = _reference_merge(pred, cand, score, target, max_size)
    for a in range(n):
        assert set(np.flatnonzero(root == root[a]).tolist()) == want[a]


def test_a_sweep_with_post_processing_yields_between_its_evaluations():
    e = _engine()
    calls = []
    e.checkpoint = lambda: calls.append(1)
    sweep(e, BASE.replace(post=Post(merge=(3.0, 51))), "threshold", np.array([0.3, 0.5, 0.7]))
    assert len(calls) >= 3  # a superseded threshold curve can stop between values
