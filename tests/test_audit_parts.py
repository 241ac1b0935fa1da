"""A finding's parts (explorer/core/audit_parts.py) against hand-built label groups, the
scores checked by brute force over every ordered pair."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.audit import audit, split_findings
from explorer.core.audit_parts import finding_parts, group_parts, merge_parts
from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine
from explorer.core.graph import ScopeGraph
from explorer.core.scope_data import ScopeData

# label 1 holds four products: A = {0, 1, 2}, B = {3, 4}, C = {5}, D = {6}; labels 2 and 3
# are one product E = {7, 8, 9, 10}; 11 is alone under label 4
LABELS = np.array([1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 3, 4])
PRODUCT = np.array([0, 0, 0, 1, 1, 2, 3, 4, 4, 4, 4, 5])
N = len(LABELS)
CFG = MatchConfig("single", ("m",), (0.5,))


def _scores() -> np.ndarray:
    s = np.where(PRODUCT[:, None] == PRODUCT[None, :], 0.9, 0.05)
    s[np.ix_([0, 1, 2], [3, 4])] = s[np.ix_([3, 4], [0, 1, 2])] = 0.2
    s[np.ix_([0, 1, 2], [5])] = s[np.ix_([5], [0, 1, 2])] = 0.3
    return s


def _cand() -> np.ndarray:
    cand = np.array([[q, *[c for c in range(N) if c != q]] for q in range(N)])
    cand[0, cand[0] == 6] = -1  # 6 is no candidate of 0: that pair counts 0 (6 -> 0 not)
    return cand


def _engine(derived: bool = False) -> Engine:
    cand = _cand()
    sims = np.take_along_axis(_scores(), np.maximum(cand, 0), axis=1).astype(np.float32)
    sims[cand < 0] = -np.inf
    sims[:, 0] = 1.0
    graph = ScopeGraph("hand", np.arange(N), cand.astype(np.int32),
                       np.ones_like(cand, np.uint8), {"m": sims}, ("m",))
    return Engine.from_data(ScopeData(graph, LABELS, derive=(lambda e, name: sims)
                                      if derived else None))


def _pair(i: int, j: int) -> float:
    """The audit's evidence for the ordered pair: its score, 0 outside the candidates."""
    return float(_scores()[i, j]) if j in _cand()[i] else 0.0


def _mean(a, b) -> float:
    got = [_pair(i, j) for i in a for j in b if i != j]
    return float(np.mean(got)) if got else float("nan")


def test_a_group_falls_into_its_parts_largest_first():
    e = _engine()
    ev = e.evaluate(CFG)
    parts = group_parts(e, ev, 1)
    assert parts.kind == "split" and parts.labels == (1,)
    assert [r.tolist() for r in parts.rows] == [[0, 1, 2], [3, 4], [5], [6]]
    # the audit's finding names the same first two parts and scores 1 - mean between
    found = split_findings(e, ev).iloc[0]
    assert (found["row"], found["other_row"]) == (0, 3)
    assert found["members"] == "3 4"
    assert parts.mean_between == pytest.approx(1 - found["score"])
    assert finding_parts(e, ev, found).sizes == [3, 2, 1, 1]


def test_scores_inside_and_between_parts_by_brute_force():
    e = _engine()
    parts = group_parts(e, e.evaluate(CFG), 1)
    rows = [r.tolist() for r in parts.rows]
    within = [_mean(r, r) for r in rows]
    np.testing.assert_allclose(parts.within(), within)  # NaN for a single posting
    assert np.isnan(parts.within()[2:]).all() and parts.within()[0] == pytest.approx(0.9)
    between = []
    for i, r in enumerate(rows):
        rest = [x for j, o in enumerate(rows) if j != i for x in o]
        between.append(np.mean([_pair(a, b) for a in r for b in rest]
                               + [_pair(b, a) for a in r for b in rest]))
    np.testing.assert_allclose(parts.between(), between)
    everyone = [x for r in rows for x in r]
    cross = [_pair(a, b) for a in everyone for b in everyone
             if a != b and not any(a in r and b in r for r in rows)]
    assert parts.mean_between == pytest.approx(np.mean(cross))
    assert parts.between()[3] < _mean([6], [0, 1, 2])  # 0 -> 6 is no candidate: 0


def test_single_postings_are_gathered_into_one_last_part():
    e = _engine()
    parts = group_parts(e, e.evaluate(CFG), 1).gathered()
    assert parts.alone and [r.tolist() for r in parts.rows] == [[0, 1, 2], [3, 4], [5, 6]]
    assert parts.within()[2] == pytest.approx(_mean([5, 6], [5, 6]))
    assert parts.between()[1] == pytest.approx(np.mean(
        [_pair(a, b) for a in (3, 4) for b in (0, 1, 2, 5, 6)]
        + [_pair(b, a) for a in (3, 4) for b in (0, 1, 2, 5, 6)]))
    assert parts.count.sum() == 7 * 6  # every ordered pair once
    merge = merge_parts(e, e.evaluate(CFG), 4, 1)
    assert merge.gathered() is merge  # a merge's groups stay as they are


def test_a_merge_shows_its_two_groups_in_the_findings_order():
    e = _engine()
    ev = e.evaluate(CFG)
    found = audit(e, ev)
    merge = found[found["kind"] == "merge"].iloc[0]
    parts = finding_parts(e, ev, merge)
    first = int(LABELS[merge["row"]])
    assert parts.kind == "merge" and parts.labels[0] == first
    assert {parts.labels[1], first} == {2, 3}
    want = [[7, 8], [9, 10]] if first == 2 else [[9, 10], [7, 8]]
    assert [r.tolist() for r in parts.rows] == want
    assert parts.mean_between == pytest.approx(0.9)  # one product under two labels
    np.testing.assert_allclose(parts.within(), [0.9, 0.9])
    posting = found[found["kind"] == "posting"]
    if len(posting):
        with pytest.raises(ValueError, match="no parts"):
            finding_parts(e, ev, posting.iloc[0])
    with pytest.raises(ValueError, match="no parts"):
        finding_parts(e, ev, {"kind": "posting", "row": 11, "other_row": 0})


def test_a_group_that_holds_together_is_one_part():
    e = _engine()
    parts = group_parts(e, e.evaluate(CFG.replace(thresholds=(0.04,))), 1)
    assert parts.sizes == [7] and np.isnan(parts.mean_between)
    assert np.isnan(parts.between()[0])
    with pytest.raises(ValueError, match="label code 9"):
        group_parts(e, e.evaluate(CFG), 9)
    with pytest.raises(ValueError, match="two different"):
        merge_parts(e, e.evaluate(CFG), 2, 2)


def test_after_inb_the_parts_are_weighed_by_the_scores_before_it():
    e = _engine(derived=True)
    cfg = MatchConfig("learned", ("learned:m",), (0.5,), inb=(InbStage(0.5),))
    ev = e.evaluate(cfg)
    found = split_findings(e, ev).iloc[0]
    parts = finding_parts(e, ev, found)
    assert parts.sizes[:2] == [3, 2]
    assert parts.mean_between == pytest.approx(1 - found["score"])
    assert parts.within()[0] == pytest.approx(0.9)
