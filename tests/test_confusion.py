"""Confused groups: label-group pairs joined by false positives, checked by brute force."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from explorer.core import confusion, joined_groups
from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.confusion import confused_groups
from explorer.core.engine import Engine


@pytest.fixture(scope="module")
def engine(tiny_bundle) -> Engine:
    return Engine(Bundle.open(tiny_bundle), "all")


def test_counts_and_coverage_by_brute_force(engine):
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (0.4,), min2=(0.2,)))
    table = confused_groups(engine, ev, n=10**6)
    labels = engine.labels
    pairs = Counter()
    for q, c in zip(*np.nonzero(ev.pred & ~ev.stage.true), strict=True):
        a, b = labels[q], labels[ev.stage.cand[q, c]]
        pairs[min(a, b), max(a, b)] += 1
    assert len(table) == len(pairs) > 5
    assert table["fp_pairs"].sum() == sum(pairs.values())
    size = Counter(labels.tolist())
    for _, r in table.iterrows():
        a, b = labels[r["row"]], labels[r["neighbour"]]
        assert r["fp_pairs"] == pairs[min(a, b), max(a, b)]
        assert r["coverage"] == pytest.approx(r["fp_pairs"] / (2 * size[a] * size[b]))
        assert (r["group_size"], r["neighbour_group_size"]) == (size[a], size[b])
        assert ev.pred[r["row"]][list(ev.stage.cand[r["row"]]).index(r["neighbour"])]
    assert list(zip(table["coverage"], table["fp_pairs"], strict=True)) == sorted(
        zip(table["coverage"], table["fp_pairs"], strict=True), reverse=True)
    assert len(confused_groups(engine, ev, n=3)) == 3


@pytest.mark.parametrize("cfg", [MatchConfig("single", ("tfidf",), (0.4,), min2=(0.2,)),
                                 MatchConfig("sum", ("tfidf", "phash"), (0.3,))])
def test_strongest_pair_mean_and_top_n_by_brute_force(engine, cfg):
    """Each group pair's mean score and strongest false positive (the first in (row,
    column) order among equal scores), and a top-n list that is the full list's head."""
    ev = engine.evaluate(cfg)
    st, labels = ev.stage, engine.labels
    pairs: dict[tuple[int, int], list[tuple[float, int, int]]] = {}
    for q, c in zip(*np.nonzero(ev.pred & ~st.true), strict=True):
        a, b = labels[q], labels[st.cand[q, c]]
        pairs.setdefault((min(a, b), max(a, b)), []).append(
            (float(st.score[q, c]), q, st.cand[q, c]))
    table = confused_groups(engine, ev, n=None)
    assert len(table) == len(pairs) > 5
    for _, r in table.iterrows():
        a, b = labels[r["row"]], labels[r["neighbour"]]
        got = pairs[min(a, b), max(a, b)]
        best = max(v for v, _, _ in got)
        assert r["mean_score"] == pytest.approx(np.mean([v for v, _, _ in got]))
        assert r["score"] == pytest.approx(best)
        assert (r["row"], r["neighbour"]) == next((q, nb) for v, q, nb in got if v == best)
    for n in (1, 3, 7):
        head = confused_groups(engine, ev, n=n)
        assert head.reset_index(drop=True).equals(table.head(n).reset_index(drop=True))


def test_pack_sizes_name_their_amounts(engine):
    # the synthetic table has near-duplicate groups that differ only in pack size
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (0.4,)))
    table = confused_groups(engine, ev, n=10**6)
    assert (table["amounts"] != "").any()
    row = table[table["amounts"] != ""].iloc[0]
    assert "ml" in row["amounts"] and row["title"] != row["neighbour_title"]
    # the unit filter removes exactly those joins
    filtered = confused_groups(engine, engine.evaluate(MatchConfig(
        "single", ("tfidf",), (0.4,), units=True)), n=10**6)
    assert (filtered["amounts"] == "").all()


def test_nothing_to_confuse(engine):
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (1.0,)))  # only the query itself
    assert confused_groups(engine, ev).empty


@pytest.mark.parametrize("cfg", [MatchConfig("sum", ("tfidf", "phash"), (0.3,)),
                                 MatchConfig("single", ("tfidf",), (0.3,))])
@pytest.mark.parametrize("block,batch,threads,dense", [
    (1 << 15, 1 << 16, "1", 0.25), (5, 1, "3", 0.0), (7, 40, "2", 1.0)])
def test_complete_pairs_shortcut_gives_the_full_lists_head(engine, monkeypatch, cfg, block,
                                                          batch, threads, dense):
    """The shortcut (completely joined pairs, groups scanned largest first in blocks on
    threads) lists what summing every pair lists, frame for frame; when fewer than n
    pairs are complete it defers to the sums."""
    ev = engine.evaluate(cfg)
    full = confused_groups(engine, ev, n=None)
    complete = int((full["coverage"] == 1.0).sum())
    assert complete > 10
    monkeypatch.setattr(confusion, "SCAN_FROM", 0)
    monkeypatch.setattr(confusion, "BLOCK_ROWS", block)
    monkeypatch.setattr(joined_groups, "BLOCK_ROWS", block)
    monkeypatch.setattr(joined_groups, "BATCH_ROWS", batch)
    monkeypatch.setattr(joined_groups, "DENSE_FROM", dense)
    monkeypatch.setenv("EXPLORER_THREADS", threads)
    joined_groups._layouts.clear()  # the layout's blocks follow BLOCK_ROWS
    for n in (1, 3, complete, complete + 1):
        shortcut = joined_groups.fully_joined(engine, ev, n)
        assert (shortcut is not None) == (n <= complete)
        got = confused_groups(engine, ev, n=n)
        pd.testing.assert_frame_equal(got, full.head(n), check_exact=True)
    joined_groups._layouts.clear()


def test_sums_by_conversion_and_by_product_agree(engine, monkeypatch):
    ev = engine.evaluate(MatchConfig("sum", ("tfidf", "phash"), (0.3,), min2=(0.2,)))
    by_conversion = confused_groups(engine, ev, n=None)
    monkeypatch.setattr(confusion, "PRODUCT_FROM", 0)
    pd.testing.assert_frame_equal(confused_groups(engine, ev, n=None), by_conversion,
                                  check_exact=True)


class _Scope:
    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels


def _random_scope(seed: int, width: int = 24):
    """Labels (groups of 1..8 rows, rows shuffled), candidate lists holding partner
    groups' postings (pairs that get completely joined) and random others, and a pred
    mask that predicts most partner cells."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, 40)
    labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    members = [np.flatnonzero(labels == g) for g in range(len(sizes))]
    partners: dict[int, set[int]] = {g: set() for g in range(len(sizes))}
    for g, h in rng.integers(0, len(sizes), (50, 2)):
        if g != h:
            partners[g].add(h)
            partners[h].add(g)
    n = len(labels)
    cand = np.full((n, width), -1, np.int32)
    for q in range(n):
        near = [members[h] for h in sorted(partners[labels[q]])]
        rows = np.concatenate([[q], members[labels[q]], *near, rng.integers(0, n, 4)])
        rows = list(dict.fromkeys(rows.tolist()))[:width]  # each posting once
        cand[q, :len(rows)] = rows
    near = np.array([[labels[c] in partners[labels[q]] if c >= 0 else False for c in row]
                     for q, row in enumerate(cand)])
    pred = (cand >= 0) & (rng.random(cand.shape) < np.where(near, 0.97, 0.3))
    pred[:, 0] = True
    true = (labels[cand] == labels[:, None]) & (cand >= 0)
    score = np.where(cand >= 0, rng.random(cand.shape), -np.inf).astype(np.float32)
    return _Scope(labels), SimpleNamespace(pred=pred, stage=SimpleNamespace(
        cand=cand, true=true, score=score))


def _brute_head(scope: _Scope, ev, n: int) -> list[tuple[int, int, int]] | None:
    labels, cand = scope.labels, ev.stage.cand
    pairs = Counter()
    for q, c in zip(*np.nonzero(ev.pred & ~ev.stage.true), strict=True):
        a, b = labels[q], labels[cand[q, c]]
        pairs[min(a, b), max(a, b)] += 1
    size = Counter(labels.tolist())
    complete = sorted((-k, a, b) for (a, b), k in pairs.items() if k == 2 * size[a] * size[b])
    return [(a, b, -k) for k, a, b in complete[:n]] if len(complete) >= n else None


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("block,batch", [(1 << 15, 1 << 16), (3, 1), (16, 20)])
@pytest.mark.parametrize("dense", [0.0, 1.0])  # every cell read / the predicted ones
def test_complete_pairs_by_brute_force(monkeypatch, seed, block, batch, dense):
    monkeypatch.setattr(joined_groups, "BLOCK_ROWS", block)
    monkeypatch.setattr(joined_groups, "BATCH_ROWS", batch)
    monkeypatch.setattr(joined_groups, "DENSE_FROM", dense)
    monkeypatch.setenv("EXPLORER_THREADS", "3")
    scope, ev = _random_scope(seed)
    for n in (1, 2, 5, 10, 40):
        got = joined_groups.fully_joined(scope, ev, n)
        want = _brute_head(scope, ev, n)
        assert (got is None) == (want is None)
        if got is not None:
            assert list(zip(*(x.tolist() for x in got), strict=True)) == want


def test_a_duplicate_candidate_defers_to_the_sums():
    """A posting listed twice in a row (never from graph.union_candidates) can push a
    group's count into another past size x size: then the shortcut does not answer."""
    scope, ev = _random_scope(0)
    labels, cand = scope.labels, ev.stage.cand
    size = np.bincount(labels)
    a = int(np.argmax(size))  # the largest group: scanned first
    b = next(g for g in range(len(size)) if g != a)
    for q in np.flatnonzero(labels == a):  # more false positives into b than it has rows
        cand[q, -size[b] - 1:] = np.flatnonzero(labels == b)[0]
        ev.pred[q, -size[b] - 1:], ev.stage.true[q, -size[b] - 1:] = True, False
    assert joined_groups.fully_joined(scope, ev, 1) is None
