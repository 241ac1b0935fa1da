"""The matching engine against hand-computed cases and a brute-force reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError, InbStage, MatchConfig
from explorer.core.engine import Engine, Stage, blend_weights
from explorer.core.metrics import query_metrics, set_metrics
from explorer.core.scope_data import quantity_table
from explorer.core.spaces import DenseSpace


def test_set_metrics_by_hand():
    p, r, f = set_metrics({1, 2, 3}, {1, 2, 4, 5})
    assert (p, r, f) == (0.5, 2 / 3, 4 / 7)
    p, r, f = query_metrics(np.array([2, 1]), np.array([4, 1]), np.array([3, 2]))
    np.testing.assert_allclose(p, [0.5, 1.0])
    np.testing.assert_allclose(r, [2 / 3, 0.5])
    np.testing.assert_allclose(f, [4 / 7, 2 / 3])


# ---------------------------------------------------------------- brute-force reference


def raw_similarities(bundle: Bundle, scope: str, modality: str) -> np.ndarray:
    """Full (n, n) similarity matrix of a scope from the bundle's raw embeddings, by
    numpy alone: cosines of the TF-IDF rows, 1 - hamming / 64 of the hash bits."""
    mod = bundle.manifest.modality(modality)
    if mod.storage == "sparse":
        x = bundle.sparse(modality, scope).toarray().astype(np.float64)
        return x @ x.T
    rows = bundle.scope_rows(scope)
    if mod.storage == "bits":
        bits = np.unpackbits(np.asarray(bundle.array(mod.files["embeddings"]))[rows], axis=1)
        ham = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
        return 1 - ham / 64
    x = np.asarray(bundle.array(mod.files["embeddings"]))[rows].astype(np.float64)
    return x @ x.T


class Reference:
    """The method note, written out query by query with full similarity matrices."""

    def __init__(self, engine: Engine):
        self.e = engine
        n = engine.n
        self.full = {m: raw_similarities(engine.bundle, engine.scope, m)
                     for m in engine.modalities}
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


def test_min2_adds_nearest_only_to_lonely_queries(fold_engine, reference):
    """A query with no match above the threshold gets its most similar candidate (by the
    raw similarities), any other keeps its set."""
    strict = MatchConfig("single", ("tfidf",), (0.99,))
    base = fold_engine.evaluate(strict)
    ev = fold_engine.evaluate(strict.replace(min2=(0.0,)))
    full = reference.full["tfidf"]
    lonely = 0
    for i in range(fold_engine.n):
        before = set(base.stage.cand[i][base.pred[i]].tolist())
        after = set(ev.stage.cand[i][ev.pred[i]].tolist())
        others = reference.candidates(strict, i) - {i}
        if before != {i} or not others:
            assert after == before, f"query {i}"
            continue
        lonely += 1
        (added,) = after - {i}
        assert full[i, added] == pytest.approx(max(full[i, j] for j in others), abs=1e-6)
    assert lonely > 0
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


# ------------------------------------------------- INB against a brute-force reference
#
# A bundle of two dense modalities written from known embeddings, with a small K, so that
# after blending postings outside a query's original top-K become its neighbours: exact
# re-search and re-scoring of the original candidates then predict different sets, and the
# reference below (full similarity matrices in float64, the method note step by step)
# tells which is which.

INB_K = 4


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def _inb_data(seed: int = 8, n_groups: int = 12, d: int = 6):
    """Groups of 2..5 postings scattered around a centre per modality (seed 8: no
    near-ties at any top-K boundary or threshold below, checked by the tests)."""
    rng = np.random.default_rng(seed)
    labels, img, txt = [], [], []
    for g in range(n_groups):
        size = int(rng.choice([2, 3, 4, 5]))
        ci, ct = rng.normal(size=d), rng.normal(size=d)
        for _ in range(size):
            labels.append(g)
            img.append(ci + rng.normal(scale=0.9, size=d))
            txt.append(ct + rng.normal(scale=0.9, size=d))
    return (np.array(labels), _unit(np.array(img)).astype(np.float32),
            _unit(np.array(txt)).astype(np.float32))


def brute_topk(sims: np.ndarray, k: int) -> list[list[int]]:
    """Each row's k most similar rows by a full sort, the row itself first."""
    n = len(sims)
    return [[i, *sorted((j for j in range(n) if j != i), key=lambda j: (-sims[i, j], j))[:k - 1]]
            for i in range(n)]


def topk_gap(sims: np.ndarray, k: int) -> float:
    """Smallest gap between a row's (k-1)-th and k-th other posting: a top-K list is
    unambiguous (float32 or float64 alike) when this is well above rounding."""
    others = np.sort(np.where(np.eye(len(sims), dtype=bool), -np.inf, sims), axis=1)[:, ::-1]
    return float((others[:, k - 2] - others[:, k - 1]).min())


def brute_inb(embs: dict[str, np.ndarray], cfg: MatchConfig, k: int
              ) -> tuple[list[list[set[int]]], float]:
    """Predicted sets of every stage of a non-union `cfg`, from the raw embeddings:
    score every pair from full similarity matrices, threshold the candidates (+ Min2),
    blend new_i = sum_j score(i, j) e_j over i's predicted set (itself with weight 1),
    L2-normalise, and either re-search the top-K of the blended embeddings
    (cfg.inb_exact) or keep each posting's original candidates. Also returns the least
    distance of a candidate's score to a threshold and of a top-K boundary gap, which
    must be far above float32 rounding for the comparison to be exact."""
    mods = cfg.modalities
    E = {m: np.asarray(embs[m], np.float64) for m in embs}
    w = np.asarray(cfg.fusion_weights, np.float64)
    w = w / w.sum()

    def score_of(S: dict[str, np.ndarray]) -> np.ndarray:
        if cfg.mode == "single":
            return S[mods[0]]
        if cfg.mode == "sum":
            return sum(wk * S[m] for wk, m in zip(w, mods, strict=True))
        keep = np.ones_like(S[mods[0]])
        for m in mods:
            keep *= 1 - np.clip(S[m], 0, 1)
        return 1 - keep

    def candidates(S: dict[str, np.ndarray], which) -> list[set[int]]:
        lists = [brute_topk(S[m], k) for m in which]
        return [set().union(*rows) for rows in zip(*lists, strict=True)]

    S = {m: e @ e.T for m, e in E.items()}
    # stage 0: a single modality keeps its own top-K; a fusion the union of every
    # modality of the bundle (the candidate graph)
    cands = candidates(S, mods if cfg.mode == "single" else list(E))
    margin = min(topk_gap(s, k) for s in S.values())
    params = [(cfg.thresholds[0], None if cfg.min2 is None else cfg.min2[0])]
    params += [(st.threshold, st.min2) for st in cfg.inb]
    stages: list[list[set[int]]] = []
    n = len(next(iter(E.values())))
    for s, (t, m2) in enumerate(params):
        score = score_of(S)
        pred = []
        for i in range(n):
            others = sorted(cands[i] - {i})
            p = {j for j in others if score[i, j] >= t}
            for j in others:
                margin = min(margin, *(abs(score[i, j] - x) for x in (t, m2) if x is not None))
            if m2 is not None and not p and others:
                j = max(others, key=lambda c: score[i, c])
                if score[i, j] >= m2:
                    p = {j}
            pred.append(p | {i})
        stages.append(pred)
        if s == len(cfg.inb):
            break
        W = np.zeros((n, n))
        for i in range(n):
            for j in pred[i]:
                W[i, j] = 1.0 if j == i else score[i, j]
        E = {m: _unit(W @ E[m]) for m in mods}
        S = {m: E[m] @ E[m].T for m in mods}
        if cfg.inb_exact:
            cands = candidates(S, mods)
            margin = min(margin, *(topk_gap(S[m], k) for m in mods))
    return stages, margin


def brute_metrics(labels: np.ndarray, pred: list[set[int]]) -> np.ndarray:
    """(n, 3) per-query precision, recall, F1 from the true and predicted sets."""
    out = []
    for i, y in enumerate(pred):
        x = set(np.flatnonzero(labels == labels[i]).tolist())
        both = len(x & y)
        out.append((both / len(y), both / len(x), 2 * both / (len(x) + len(y))))
    return np.array(out)


@pytest.fixture(scope="module")
def inb_bundle(tmp_path_factory):
    """A bundle written from `_inb_data`: dense modalities img and txt, scope all, K=4.
    Its top-K lists and candidate graph are this file's brute force, not the engine's."""
    import pandas as pd

    from explorer.core.bundle import SCHEMA_VERSION, Manifest, Modality
    from explorer.core.bundle.writer import BundleWriter, graph_paths, knn_paths

    labels, img, txt = _inb_data()
    n = len(labels)
    embs = {"img": img, "txt": txt}
    out = tmp_path_factory.mktemp("inb") / "inb.bundle"
    knn = {m: np.array(brute_topk(e.astype(np.float64) @ e.T.astype(np.float64), INB_K))
           for m, e in embs.items()}
    # candidate graph: every posting's union of the two lists, itself first
    cand = np.full((n, 2 * INB_K), -1, np.int32)
    member = np.zeros((n, 2 * INB_K), np.uint8)
    for i in range(n):
        cols = [i, *sorted((set(knn["img"][i]) | set(knn["txt"][i])) - {i})]
        cand[i, :len(cols)] = cols
        for b, m in enumerate(embs):
            member[i, :len(cols)] = member[i, :len(cols)] | np.array(
                [(c in knn[m][i]) << b for c in cols], np.uint8)
    with BundleWriter(out) as w:
        w.save_items(pd.DataFrame({
            "posting_id": [f"p{i}" for i in range(n)], "image": [f"{i}.jpg" for i in range(n)],
            "title": [f"item {i}" for i in range(n)], "label_group": labels + 100,
            "image_phash": ["0" * 16] * n, "fold": np.zeros(n, np.int8)}))
        mods = []
        for m, e in embs.items():
            rel = w.save_array(f"modalities/{m}/embeddings.npy", e)
            paths = knn_paths("all", m)
            w.save_array(paths["idx"], knn[m].astype(np.int32))
            sims = np.take_along_axis(e @ e.T, knn[m], axis=1).astype(np.float32)
            sims[:, 0] = 1.0
            w.save_array(paths["sim"], sims)
            mods.append(Modality(m, "image" if m == "img" else "text", "timm", "synthetic",
                                 e.shape[1], "dense", {"embeddings": rel,
                                                       "knn": {"all": paths}}))
        gp = graph_paths("all", list(embs))
        w.save_array(gp["cand"], cand)
        w.save_array(gp["topk"], member)
        for m, e in embs.items():
            full = e @ e.T
            sims = np.where(cand >= 0, full[np.arange(n)[:, None], np.maximum(cand, 0)],
                            -np.inf).astype(np.float32)
            sims[:, 0] = 1.0
            w.save_array(gp["sims"][m], sims)
        w.commit(Manifest(
            schema_version=SCHEMA_VERSION, n_items=n, k=INB_K, scopes=("all",),
            modalities=tuple(mods), dataset={"csv": "synthetic", "has_labels": True},
            split={"protocol": "GroupKFold", "n_splits": 1, "group": "label_group"},
            created="2024-01-01T00:00:00+00:00", libraries={},
            graphs={"all": gp}))
    return out


@pytest.fixture(scope="module")
def inb_engine(inb_bundle):
    return Engine(Bundle.open(inb_bundle), "all")


INB_CONFIGS = [
    MatchConfig("single", ("img",), (0.6,), inb=(InbStage(0.7, 0.5), InbStage(0.75))),
    MatchConfig("sum", ("img", "txt"), (0.5,), weights=(0.6, 0.4), min2=(0.3,),
                inb=(InbStage(0.6),)),
    MatchConfig("prob", ("img", "txt"), (0.9,), inb=(InbStage(0.92, 0.8),)),
]


@pytest.mark.parametrize("exact", [False, True], ids=["rescore", "exact"])
@pytest.mark.parametrize("cfg", INB_CONFIGS, ids=lambda c: c.label)
def test_inb_matches_brute_force(inb_engine, cfg, exact):
    """Every stage's predicted sets and per-query P / R / F1, re-scored and re-searched,
    equal the brute force's; the two brute forces differ, so a run that ignored
    inb_exact (or re-searched always) fails one of the two cases."""
    cfg = cfg.replace(inb_exact=exact)
    embs = {m: np.load(inb_engine.bundle.path(f"modalities/{m}/embeddings.npy"))
            for m in ("img", "txt")}
    labels = inb_engine.bundle.items["label_group"].to_numpy()
    want, margin = brute_inb(embs, cfg, INB_K)
    other, _ = brute_inb(embs, cfg.replace(inb_exact=not exact), INB_K)
    assert margin > 1e-4  # no tie or threshold within float32 rounding of a score
    differ = sum(a != b for a, b in zip(want[-1], other[-1], strict=True))
    assert differ >= 5, "the fixture must tell exact re-search from re-scoring"
    for s in range(len(cfg.inb) + 1):
        ev = inb_engine.evaluate(cfg.replace(inb=cfg.inb[:s]))
        got = [set(ev.stage.cand[i][ev.pred[i]].tolist()) for i in range(inb_engine.n)]
        assert got == want[s], f"stage {s}"
    expect = brute_metrics(labels, want[-1])
    np.testing.assert_allclose(np.c_[ev.precision, ev.recall, ev.f1], expect, atol=1e-12)
    m = ev.metrics
    np.testing.assert_allclose([m.precision, m.recall, m.f1], expect.mean(axis=0), atol=1e-12)


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
def test_scope_metrics_average_queries(fold_engine, reference, units, min2):
    """Per-query P / R / F1 and their means against the label sets of the bundle's
    label_group column and the reference's predicted sets (not the engine's counts)."""
    cfg = MatchConfig("single", ("tfidf",), (0.5,), min2=min2, units=units)
    ev = fold_engine.evaluate(cfg)
    labels = fold_engine.bundle.items["label_group"].to_numpy()[fold_engine.rows]
    expect = brute_metrics(labels, [reference.predicted(cfg, i)
                                    for i in range(fold_engine.n)])
    np.testing.assert_allclose(np.c_[ev.precision, ev.recall, ev.f1], expect, atol=1e-12)
    m = ev.metrics
    np.testing.assert_allclose([m.precision, m.recall, m.f1], expect.mean(axis=0), atol=1e-12)
    assert m.n_queries == fold_engine.n
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


def test_row_counts_in_blocks_on_threads(monkeypatch):
    """Per-row counts of predicted and predicted-true cells, whatever the block size."""
    from explorer.core import engine as engine_module

    rng = np.random.default_rng(5)
    pred, true = rng.random((1001, 37)) < 0.3, rng.random((1001, 37)) < 0.5
    monkeypatch.setattr(engine_module, "BLOCK_ROWS", 64)
    monkeypatch.setenv("EXPLORER_THREADS", "2")
    n_pred, tp = engine_module.row_counts(pred, true)
    np.testing.assert_array_equal(n_pred, np.count_nonzero(pred, axis=1))
    np.testing.assert_array_equal(tp, np.count_nonzero(pred & true, axis=1))
    assert n_pred.dtype == tp.dtype == np.int64


@pytest.mark.parametrize("cfg", [MatchConfig("single", ("tfidf",), (0.5,), min2=(0.3,)),
                                 MatchConfig("sum", ("tfidf", "phash"), (0.7,), units=True),
                                 MatchConfig("union", ("tfidf", "phash"), (0.6, 0.9))],
                         ids=lambda c: c.label)
def test_blocks_on_threads_change_no_evaluation(tiny_bundle, monkeypatch, cfg):
    """The true-pair mask, a single modality's own columns and the row counts, computed in
    blocks of 7 rows on two threads, give the evaluation of whole arrays."""
    from explorer.core import engine as engine_module

    whole = Engine(Bundle.open(tiny_bundle), "fold2").evaluate(cfg)
    monkeypatch.setattr(engine_module, "BLOCK_ROWS", 7)
    monkeypatch.setenv("EXPLORER_THREADS", "2")
    blocked = Engine(Bundle.open(tiny_bundle), "fold2").evaluate(cfg)
    for name in ("pred", "n_pred", "tp", "f1"):
        np.testing.assert_array_equal(getattr(blocked, name), getattr(whole, name))
    np.testing.assert_array_equal(blocked.stage.true, whole.stage.true)
    np.testing.assert_array_equal(blocked.stage.score, whole.stage.score)
