"""Approximate top-K search of a scope's space, and its measured recall against exact search.

`search_topk(space, k, mode)` returns the same (n, min(k, n)) lists as `space.topk(k)`
(query first with similarity 1, then decreasing exact similarity, ties by lower index, -1
padding at the end, no repeats) and a record of how they were found, for the manifest:

- dense rows: faiss IVF (inner product, nlist ~ 4 sqrt(n), nprobe raised until a tuning
  sample reaches RECALL_TARGET), on the GPU when faiss sees one and the space asks for it;
- 64-bit hashes: faiss's binary IVF (hamming), present rows only, nprobe tuned as above;
- TF-IDF: always exact (`SparseSpace.topk`, a C++ sparse top-n product): projections of it
  lost recall (a 512-d TruncatedSVD needed 4,096 re-scored candidates a query for recall@50
  0.99 on the real table, slower than exact search) and pruning frequent terms lost the
  neighbours of titles made of common words (recall@50 0.94 at 1,000,000 rows).

Whatever the candidates, every similarity written is the exact one, so recall is the only
thing an approximate search can lose. Recall@K is measured on a random sample of
min(RECALL_QUERIES, n) queries, other than the tuning sample, with exact search of just
those queries, and counts ties at the K-th similarity as found.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from explorer.core.faiss_search import gpu_count
from explorer.core.spaces import BitSpace, DenseSpace, SparseSpace, select_topk

MODES = ("exact", "approx", "auto")
AUTO_MIN_ROWS = 150_000  # `auto`: exact below this many rows of a scope, approximate above
MIN_ROWS = 1_000  # below this an index is pointless: `approx` falls back to exact, noted
RECALL_TARGET = 0.99
RECALL_QUERIES = 2_000
TUNE_QUERIES = 500
QUERY_BATCH = 2048
SPARSE_NOTE = "TF-IDF is searched exactly at every size (sparse top-n product)"
TOL = 1e-5  # float rounding between two exact computations of the same similarity


def resolve(mode: str, n: int) -> tuple[str, str]:
    """('exact' | 'approx', note) for a scope of n rows under --search `mode`."""
    if mode not in MODES:
        raise ValueError(f"--search {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "exact" or (mode == "auto" and n < AUTO_MIN_ROWS):
        return "exact", ""
    if n < MIN_ROWS:
        return "exact", f"approximate search asked for {n} rows (< {MIN_ROWS}): searched exactly"
    return "approx", ""


def search_topk(space: Any, k: int, mode: str = "auto", *, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(idx, sim, record) of every row's top-k in `space` (local rows, as `space.topk`)."""
    how, note = resolve(mode, space.n)
    if how == "approx" and isinstance(space, SparseSpace):
        how, note = "exact", SPARSE_NOTE
    start = time.perf_counter()
    if how == "exact":
        idx, sim = space.topk(k)
        record: dict[str, Any] = {"method": "exact"}
    else:
        rng = np.random.default_rng(seed)
        sample = rng.permutation(space.n)
        tune = np.sort(sample[:min(TUNE_QUERIES, space.n // 4)])
        if isinstance(space, BitSpace):
            idx, sim, record = _bits(space, k, tune, seed)
        elif isinstance(space, DenseSpace):
            idx, sim, record = _dense(space, k, tune, seed)
        else:
            raise TypeError(f"no approximate search for {type(space).__name__}")
        rest = sample[len(tune):] if space.n - len(tune) >= RECALL_QUERIES else sample
        queries = np.sort(rest[:min(RECALL_QUERIES, space.n)])
        record["recall"] = round(recall_at_k(space, queries, idx[queries], sim[queries], k), 5)
        record["recall_queries"] = len(queries)
    record["seconds"] = round(time.perf_counter() - start, 3)
    if note:
        record["note"] = note
    return idx, sim, record


# ---- exact search of a few rows, and recall ------------------------------------------------

def exact_rows(space: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of the rows `queries` only, with `space.topk`'s conventions."""
    queries = np.asarray(queries, np.int64)
    n = space.n
    present = getattr(space, "present", None)
    rows = max(32, (1 << 22) // max(n, 1))  # at least 32 queries a pass over the rows
    idx = np.full((len(queries), min(k, n)), -1, np.int64)
    sim = np.full(idx.shape, -np.inf, np.float32)
    t = space.mat.T.tocsr() if isinstance(space, SparseSpace) else None
    for s in range(0, len(queries), rows):
        q = queries[s:s + rows]
        if t is not None:
            scores = (space.mat[q] @ t).toarray().astype(np.float32)
        elif isinstance(space, BitSpace):
            w = space.words
            scores = 1 - np.bitwise_count(w[q, None] ^ w[None, :]).astype(np.float32) / 64
        else:
            scores = space._map(space.query[q] @ space.emb.T).astype(np.float32)
        if present is not None:
            scores[:, ~present] = -np.inf
            scores[~present[q]] = -np.inf
        i, v = select_topk(scores, q, k, np.ones(len(q), np.float32), overwrite=True)
        i[np.isneginf(v)] = -1
        idx[s:s + len(q)], sim[s:s + len(q)] = i, v
    return idx, sim


def recall_at_k(space: Any, queries: np.ndarray, idx: np.ndarray, sim: np.ndarray,
                k: int) -> float:
    """Share of the exact top-k neighbours (the query itself aside) that `idx` holds; a
    neighbour tied with the exact k-th similarity counts as found (ties have no order)."""
    ex_idx, ex_sim = exact_rows(space, queries, k)
    want = (ex_idx[:, 1:] >= 0).sum(axis=1)
    if want.sum() == 0:
        return 1.0
    kth = np.where(want > 0, ex_sim[np.arange(len(queries)), np.maximum(want, 1)], np.inf)
    got = ((idx[:, 1:] >= 0) & (sim[:, 1:] >= kth[:, None] - TOL)).sum(axis=1)
    return float(np.minimum(got, want).sum() / want.sum())


# ---- lists with the format's promises --------------------------------------------------------

def finish(queries: np.ndarray, cand: np.ndarray, sims: np.ndarray, k: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k lists from candidates (b, C) (-1 = none; repeats and the query allowed) and
    their exact similarities (-inf = never a neighbour): the query first with similarity 1,
    then decreasing similarity, ties by lower index, no repeats, -1 padding at the end."""
    queries = np.asarray(queries, np.int64)
    cand = np.asarray(cand, np.int64)
    sims = np.asarray(sims, np.float32).copy()
    bad = (cand < 0) | (cand == queries[:, None]) | ~np.isfinite(sims)
    sims[bad] = -np.inf
    key = np.where(bad, np.iinfo(np.int64).max, cand)
    order = np.lexsort((key, -sims), axis=1)
    cand = np.take_along_axis(key, order, 1)
    sims = np.take_along_axis(sims, order, 1)
    valid = np.isfinite(sims)
    valid[:, 1:] &= cand[:, 1:] != cand[:, :-1]  # a repeat sorts right after its first
    order = np.argsort(~valid, axis=1, kind="stable")[:, :k - 1]
    cand = np.take_along_axis(cand, order, 1)
    sims = np.take_along_axis(sims, order, 1)
    valid = np.take_along_axis(valid, order, 1)
    idx = np.full((len(queries), k), -1, np.int64)
    sim = np.full((len(queries), k), -np.inf, np.float32)
    width = cand.shape[1]
    idx[:, 1:1 + width] = np.where(valid, cand, -1)
    sim[:, 1:1 + width] = np.where(valid, sims, -np.inf)
    idx[:, 0], sim[:, 0] = queries, 1.0
    return idx, sim


def _blocks(n: int, k: int, queries: np.ndarray, step: Callable[[np.ndarray], tuple],
            batch: int = QUERY_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Run `step(q) -> (idx, sim)` over blocks of `queries`; other rows get only themselves."""
    idx = np.full((n, k), -1, np.int64)
    sim = np.full((n, k), -np.inf, np.float32)
    idx[:, 0], sim[:, 0] = np.arange(n), 1.0
    for s in range(0, len(queries), batch):
        q = queries[s:s + batch]
        idx[q], sim[q] = step(q)
    return idx, sim


# ---- dense: IVF ------------------------------------------------------------------------------

def ivf_index(vectors: np.ndarray, *, use_gpu: bool, seed: int) -> tuple[Any, dict[str, Any]]:
    """A trained, filled IndexIVFFlat (inner product) over unit rows; on the GPUs when asked
    and present. nlist ~ 4 sqrt(n), but at least 39 training rows per list."""
    import faiss

    n, d = vectors.shape
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
    train = min(n, 40 * nlist)  # k-means cost: faiss asks for at least 39 rows per list
    rng = np.random.default_rng(seed)
    sample = vectors[np.sort(rng.choice(n, train, replace=False))] if train < n else vectors
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.niter = 10
    gpu = use_gpu and gpu_count() > 0
    if gpu:  # the same index, trained and searched on every GPU faiss sees
        index = faiss.index_cpu_to_all_gpus(index)
    index.train(np.ascontiguousarray(sample))
    index.add(vectors)
    return index, {"nlist": nlist, "train_rows": int(train), "device": "gpu" if gpu else "cpu"}


def set_nprobe(index: Any, nprobe: int) -> None:
    import faiss

    if hasattr(index, "nprobe"):  # a CPU IndexIVF
        index.nprobe = nprobe
    else:  # GPU indexes, and their replicas over several GPUs
        faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", nprobe)


def _tune(levels: list[Any], recall_of: Callable[[Any], float]) -> tuple[Any, float]:
    """The first level whose tuning recall reaches RECALL_TARGET (else the last)."""
    got = 0.0
    for level in levels:
        got = recall_of(level)
        if got >= RECALL_TARGET:
            return level, got
    return levels[-1], got


def _dense(space: DenseSpace, k: int, tune: np.ndarray, seed: int
           ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    n, kk = space.n, min(k, space.n)
    rows = np.arange(n) if space.present is None else np.flatnonzero(space.present)
    if len(rows) < MIN_ROWS:  # too few rows with an embedding for an index
        idx, sim = space.topk(k)
        return idx, sim, {"method": "exact", "note": f"{len(rows)} rows with an embedding "
                          f"(< {MIN_ROWS}): searched exactly"}
    index, params = ivf_index(space.emb[rows], use_gpu=space.use_gpu, seed=seed)
    ranks = np.full(n, -1, np.int64)
    ranks[rows] = np.arange(len(rows))

    def step(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, found = index.search(np.ascontiguousarray(space.query[q]), min(kk + 1, len(rows)))
        cand = np.where(found >= 0, rows[np.maximum(found, 0)], -1)
        return finish(q, cand, space.sims(q, cand), kk)

    def recall_of(nprobe: int) -> float:
        set_nprobe(index, nprobe)
        i, s = step(tq)
        return recall_at_k(space, tq, i, s, k)

    tq = tune[ranks[tune] >= 0]
    levels = [p for p in (1 << e for e in range(20)) if p < params["nlist"]] + [params["nlist"]]
    nprobe, tuned = _tune(levels, recall_of) if len(tq) else (params["nlist"], 1.0)
    set_nprobe(index, nprobe)
    idx, sim = _blocks(n, kk, rows, step)
    return idx, sim, {"method": "ivf", "params": {**params, "nprobe": int(nprobe),
                                                  "tune_recall": round(tuned, 5)}}


# ---- 64-bit hashes: binary IVF ------------------------------------------------------------------

def _bits(space: BitSpace, k: int, tune: np.ndarray, seed: int
          ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """faiss's binary IVF (hamming k-means lists), nprobe raised until the tuning sample
    reaches RECALL_TARGET; similarities are 1 - hamming / 64, exact for every pair listed."""
    import faiss

    n, kk = space.n, min(k, space.n)
    rows = np.arange(n) if space.present is None else np.flatnonzero(space.present)
    if len(rows) < MIN_ROWS:
        idx, sim = space.topk(k)
        return idx, sim, {"method": "exact", "note": f"{len(rows)} rows with a hash "
                          f"(< {MIN_ROWS}): searched exactly"}
    codes = np.ascontiguousarray(space.words[rows].astype(">u8").view(np.uint8).reshape(-1, 8))
    nlist = max(1, min(int(4 * math.sqrt(len(rows))), len(rows) // 39))
    train = min(len(rows), 40 * nlist)
    rng = np.random.default_rng(seed)
    sample = codes[np.sort(rng.choice(len(rows), train, replace=False))] if train < len(rows) \
        else codes
    index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(64), 64, nlist)
    index.cp.seed = seed
    index.train(sample)
    index.add(codes)
    local = np.full(n, -1, np.int64)
    local[rows] = np.arange(len(rows))

    def step(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dist, found = index.search(codes[local[q]], min(kk + 1, len(rows)))
        cand = np.where(found >= 0, rows[np.maximum(found, 0)], -1)
        sims = np.where(found >= 0, 1 - dist.astype(np.float32) / 64, -np.inf)
        return finish(q, cand, sims, kk)

    def recall_of(nprobe: int) -> float:
        index.nprobe = nprobe
        i, s = step(tq)
        return recall_at_k(space, tq, i, s, k)

    tq = tune[local[tune] >= 0]
    levels = [p for p in (1 << e for e in range(20)) if p < nlist] + [nlist]
    nprobe, tuned = _tune(levels, recall_of) if len(tq) else (nlist, 1.0)
    index.nprobe = nprobe
    idx, sim = _blocks(n, kk, rows, step)
    return idx, sim, {"method": "binary-ivf", "params": {
        "bits": 64, "nlist": nlist, "train_rows": int(train), "nprobe": int(nprobe),
        "tune_recall": round(tuned, 5)}}
