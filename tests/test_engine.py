"""The matching engine against hand-computed cases and a brute-force reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError, InbStage, MatchConfig
from explorer.core.engine import Engine, Stage, blend_weights, quantity_table
from explorer.core.metrics import query_metrics, set_metrics
from explorer.core.spaces import DenseSpace


def test_set_metrics_by_hand():
    p, r, f = set_metrics({1, 2, 3}, {1, 2, 4, 5})
    assert (p, r, f) == (0.5, 2 / 3, 4 / 7)
    p, r, f = query_metrics(np.array([2, 1]), np.array([4, 1]), np.array([3, 2]))
    np.testing.assert_allclose(p, [0.5, 1.0])
    np.testing.assert_allclose(r, [2 / 3, 0.5])
    np.testing.assert_allclose(f, [4 / 7, 2 / 3])


# ---------------------------------------------------------------- brute-force reference


class Reference:
    """The method note, written out query by query with full similarity matrices."""

    def __init__(self, engine: Engine):
        self.e = engine
        n = engine.n
        self.full = {}
        for m in engine.modalities:
            sp = engine.space(m)
            self.full[m] = sp.sims(np.arange(n), np.tile(np.arange(n), (n, 1)))
        self.topk = {}
        for m in engine.modalities:
            idx, _ = engine.bundle.knn(engine.scope, m)
            g2l = {int(g): i for i, g in enumerate(engine.rows)}
            self.topk[m] = [{g2l[int(g)] for g in row if g >= 0} for row in idx]
        table = quantity_table(engine.bundle)
        r = engine.rows
        self.conflict = table.conflicts(np.repeat(r[:, None], n, 1), np.tile(r, (n, 1)))
        np.fill_diagonal(self.conflict, False)

    def score(self, cfg: MatchConfig, i: int, j: int) -> float:
        s = {m: float(self.full[m][i, j]) for m in cfg.modalities}
        if cfg.mode == "sum":
            w = np.array(cfg.fusion_weights) / sum(cfg.fusion_weights)
            return float(sum(wk * s[m] for wk, m in zip(w, cfg.modalities, strict=True)))
        if cfg.mode == "prob":
            return 1 - float(np.prod([1 - min(max(s[m], 0), 1) for m in cfg.modalities]))
        return s[cfg.modalities[0]]

    def candidates(self, cfg: MatchConfig, i: int) -> set[int]:
        if cfg.mode == "single":
            return set(self.topk[cfg.modalities[0]][i])
        return set().union(*(self.topk[m][i] for m in cfg.modalities))

    def predicted(self, cfg: MatchConfig, i: int) -> set[int]:
        cands = self.candidates(cfg, i) - {i}
        if cfg.units:
            cands = {j for j in cands if not self.conflict[i, j]}
        if cfg.mode == "union":
            out = {j for j in cands for m, t in zip(cfg.modalities, cfg.thresholds, strict=True)
                   if j in self.topk[m][i] and self.full[m][i, j] >= np.float32(t)}
        else:
            out = {j for j in cands if self.score(cfg, i, j) >= np.float32(cfg.thresholds[0])}
        if cfg.min2 is not None and not out and cands:
            if cfg.mode == "union":
                def margin(j):
                    return max(self.full[m][i, j] - np.float32(t) if j in self.topk[m][i]
                               else -np.inf
                               for m, t in zip(cfg.modalities, cfg.min2, strict=True))
                j = max(sorted(cands), key=margin)
                ok = margin(j) >= 0
            else:
                j = max(sorted(cands), key=lambda c: self.score(cfg, i, c))
                ok = self.score(cfg, i, j) >= np.float32(cfg.min2[0])
            if ok:
                out = {j}
        return out | {i}

    def mean_f1(self, cfg: MatchConfig) -> float:
        labels = self.e.labels
        f1s = []
        for i in range(self.e.n):
            true = set(np.flatnonzero(labels == labels[i]).tolist())
            f1s.append(set_metrics(true, self.predicted(cfg, i))[2])
        return float(np.mean(f1s))


@pytest.fixture(scope="module")
def fold_engine(tiny_bundle):
    return Engine(Bundle.open(tiny_bundle), "fold1")


@pytest.fixture(scope="module")
def reference(fold_engine):
    return Reference(fold_engine)


CONFIGS = [
    MatchConfig("single", ("tfidf",), (0.45,)),
    MatchConfig("single", ("tfidf",), (0.7,), min2=(0.3,)),
    MatchConfig("single", ("phash",), (0.9,), min2=(0.8,)),
    MatchConfig("single", ("tfidf",), (0.4,), units=True),
    MatchConfig("union", ("tfidf", "phash"), (0.6, 0.92)),
    MatchConfig("union", ("tfidf", "phash"), (0.8, 0.97), min2=(0.5, 0.9)),
    MatchConfig("sum", ("tfidf", "phash"), (0.7,)),
    MatchConfig("sum", ("tfidf", "phash"), (0.75,), weights=(0.3, 0.7), min2=(0.6,)),
    MatchConfig("prob", ("tfidf", "phash"), (0.97,), units=True),
    MatchConfig("prob", ("tfidf", "phash"), (0.99,), min2=(0.9,)),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.label}-{c.min2}-{c.units}")
def test_engine_matches_reference(fold_engine, reference, cfg):
    ev = fold_engine.evaluate(cfg)
    assert ev.metrics.f1 == pytest.approx(reference.mean_f1(cfg), abs=1e-12)
    for i in range(0, fold_engine.n, 7):
        got = set(ev.stage.cand[i][ev.pred[i]].tolist())
        assert got == reference.predicted(cfg, i), f"query {i}"


def test_min2_adds_nearest_only_to_lonely_queries(fold_engine):
    strict = MatchConfig("single", ("tfidf",), (0.99,))
    base = fold_engine.evaluate(strict)
    ev = fold_engine.evaluate(strict.replace(min2=(0.0,)))
    lonely = base.n_pred == 1
    assert lonely.any()
    assert np.all(ev.n_pred[lonely] == 2)
    assert np.array_equal(ev.n_pred[~lonely], base.n_pred[~lonely])
    col, _ = ev.stage.best_other()
    assert np.array_equal(ev.min2_col[lonely], col[lonely])
    assert ev.metrics.recall > base.metrics.recall


def test_union_is_union_of_single_predictions(fold_engine):
    a = fold_engine.evaluate(MatchConfig("single", ("tfidf",), (0.6,)))
    b = fold_engine.evaluate(MatchConfig("single", ("phash",), (0.9,)))
    u = fold_engine.evaluate(MatchConfig("union", ("tfidf", "phash"), (0.6, 0.9)))
    for i in range(fold_engine.n):
        sa = set(a.stage.cand[i][a.pred[i]])
        sb = set(b.stage.cand[i][b.pred[i]])
        assert set(u.stage.cand[i][u.pred[i]]) == sa | sb


def test_inb_blend_four_node_example():
    """The method note's example: A matched to D (0.94), B (0.93), C (0.53); B, C, D
    each matched only to A. One step gives A' = norm(A + .94 D + .93 B + .53 C), ..."""
    rng = np.random.default_rng(3)
    a = np.array([-0.588, 0.784, 0.196])
    emb = np.vstack([a / np.linalg.norm(a), *rng.normal(size=(3, 3))]).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    A, B, C, D = range(4)
    cand = np.array([[A, D, B, C], [B, A, -1, -1], [C, A, -1, -1], [D, A, -1, -1]])
    score = np.array([[1, .94, .93, .53], [1, .93, -np.inf, -np.inf],
                      [1, .53, -np.inf, -np.inf], [1, .94, -np.inf, -np.inf]], np.float32)
    pred = cand >= 0
    st = Stage(cand, np.zeros_like(pred), {}, score)
    out = DenseSpace(emb).blend(blend_weights(st, pred)).emb

    def norm(v):
        return v / np.linalg.norm(v)

    e = emb.astype(np.float64)
    expect = [norm(e[A] + .94 * e[D] + .93 * e[B] + .53 * e[C]), norm(e[B] + .93 * e[A]),
              norm(e[C] + .53 * e[A]), norm(e[D] + .94 * e[A])]
    np.testing.assert_allclose(out, np.array(expect), atol=1e-6)


def test_inb_rescoring_matches_reference(fold_engine, reference):
    cfg = MatchConfig("single", ("tfidf",), (0.6,), inb=(InbStage(0.8),))
    ev = fold_engine.evaluate(cfg)
    n = fold_engine.n
    X = fold_engine.space("tfidf").mat.toarray().astype(np.float64)
    stage0 = cfg.replace(inb=())
    W = np.zeros((n, n))
    for i in range(n):
        for j in reference.predicted(stage0, i):
            W[i, j] = 1.0 if i == j else reference.full["tfidf"][i, j]
    B = W @ X
    B /= np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-12)
    S = B @ B.T
    for i in range(n):
        cands = reference.candidates(cfg, i) - {i}
        expect = {j for j in cands if S[i, j] >= np.float32(0.8)} | {i}
        assert set(ev.stage.cand[i][ev.pred[i]].tolist()) == expect, f"query {i}"


def test_inb_exact_research_runs_and_differs_only_in_candidates(fold_engine):
    cfg = MatchConfig("sum", ("tfidf", "phash"), (0.7,), inb=(InbStage(0.8),))
    approx = fold_engine.evaluate(cfg).metrics.f1
    exact = fold_engine.evaluate(cfg.replace(inb_exact=True)).metrics.f1
    assert abs(approx - exact) < 0.05


def test_inb_on_union_is_refused():
    with pytest.raises(ConfigError, match="union"):
        MatchConfig("union", ("a", "b"), (0.5, 0.5), inb=(InbStage(0.5),))


def test_unknown_modality_is_refused(fold_engine):
    with pytest.raises(ConfigError, match="not in this bundle"):
        fold_engine.evaluate(MatchConfig("single", ("clip",), (0.5,)))


def test_stage_cache_reuses_scores(fold_engine):
    cfg = MatchConfig("sum", ("tfidf", "phash"), (0.7,))
    st1 = fold_engine.stage(cfg)
    st2 = fold_engine.stage(cfg.replace(thresholds=(0.8,), min2=(0.5,)))
    assert st1 is st2
    assert fold_engine.stage(cfg.replace(weights=(0.2, 0.8))) is not st1


@pytest.mark.parametrize("units,min2", list(itertools.product([False, True], [None, (0.3,)])))
def test_scope_metrics_average_queries(fold_engine, units, min2):
    ev = fold_engine.evaluate(MatchConfig("single", ("tfidf",), (0.5,), min2=min2, units=units))
    p, r, f = query_metrics(ev.tp, ev.n_pred, ev.group_size)
    assert ev.metrics.f1 == pytest.approx(f.mean())
    assert ev.metrics.precision == pytest.approx(p.mean())
    assert ev.metrics.recall == pytest.approx(r.mean())
    assert ev.metrics.n_queries == fold_engine.n
    assert np.all(ev.pred[:, 0])


def test_min2_threshold_is_inclusive_and_sharp(fold_engine):
    cfg = MatchConfig("single", ("tfidf",), (0.99,))
    base = fold_engine.evaluate(cfg)
    col, val = base.stage.best_other()
    lonely = np.flatnonzero((base.n_pred == 1) & np.isfinite(val))
    q = lonely[np.argmax(val[lonely])]
    v = float(val[q])
    at = fold_engine.evaluate(cfg.replace(min2=(v,)))
    above = fold_engine.evaluate(cfg.replace(min2=(float(np.nextafter(np.float32(v),
                                                                       np.float32(2))),)))
    assert at.min2_col[q] == col[q] and at.n_pred[q] == 2
    assert above.min2_col[q] == -1 and above.n_pred[q] == 1
