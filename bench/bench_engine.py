"""Engine benchmarks on the real Shopee table (34,250 postings): bundle build and open,
threshold recomputes, mode changes, sweeps, the error-pairs export, one INB iteration on
512-d embeddings, and the study's full-matrix approach against the engine at N = 10,000.

    python bench/bench_engine.py [--csv PATH] [--bundle DIR] [--rebuild] [--quick]

Each figure is one line `name: value unit (target ..., OK|OVER)`. Nothing is asserted:
the targets are printed for reading, and the exit status is 0 either way.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import tracemalloc

import numpy as np
from common import (
    add_data_args,
    figure,
    get_bundle,
    peak_rss_mb,
    peak_rss_since_reset_mb,
    require_csv,
    reset_peak_rss,
    source_state,
    time_calls,
    timer,
)
from scipy import sparse

from explorer.core.bundle import Bundle
from explorer.core.config import InbStage, MatchConfig, Post
from explorer.core.engine import Engine
from explorer.core.error_pairs import error_pairs
from explorer.core.metrics import query_metrics
from explorer.core.pair_model import learned_modalities
from explorer.core.spaces import DenseSpace
from explorer.core.sweep import sweep

DIM = 512
K = 50
STUDY_N = 10_000
SEED = 0

# (label, config, parameter moved) for the recompute and sweep figures
TFIDF = MatchConfig("single", ("tfidf",), (0.5,))
UNION = MatchConfig("union", ("tfidf", "phash"), (0.5, 0.85))
SUM = MatchConfig("sum", ("tfidf", "phash"), (0.5,))
PROB = MatchConfig("prob", ("tfidf", "phash"), (0.7,))
PHASH = MatchConfig("single", ("phash",), (0.85,))
POST = (Post(mutual=0.0), Post(merge=(4.0, 51)), Post(chisel=(10, 0.9)))


def with_min2(cfg: MatchConfig) -> MatchConfig:
    return cfg.replace(min2=tuple(round(t - 0.1, 4) for t in cfg.thresholds))


def moved(cfg: MatchConfig, value: float) -> MatchConfig:
    """cfg with its first threshold (tfidf's, for the union) set to `value`."""
    return cfg.replace(thresholds=(value, *cfg.thresholds[1:]))


# --------------------------------------------------------------------------- sections


def bench_bundle(args: argparse.Namespace) -> Bundle:
    info = get_bundle(args.csv, args.bundle, args.rebuild)
    if info.built:
        figure("bundle build (tfidf + phash, 6 scopes, `precompute build` child process)",
               info.build_s, "s", 180)
        figure("bundle build peak RSS (child)", info.build_peak_rss_mb, "MB")
    else:
        print(f"bundle build: reused {info.path} (pass --rebuild to time a fresh build)")
    print(f"bundle: {info.path}", flush=True)
    Bundle.open(info.path)  # warm the page cache: the figure is the app's re-open
    times = time_calls(lambda: Bundle.open(info.path), repeat=5)
    figure("Bundle.open (validated, median of 5)", float(np.median(times)), "s", 1,
           fmt="{:.3f}")
    return Bundle.open(info.path)


def bench_recompute(bundle: Bundle, repeats: int) -> Engine:
    with timer() as t:
        engine = Engine(bundle, "all")
    figure(f"Engine(bundle, 'all') construction ({engine.n} queries, "
           f"{engine.graph.cand.shape[1]} candidate columns)", t.ms, "ms")
    # and the bundle's learned classifiers (`explorer learn BUNDLE` adds one)
    learned = [MatchConfig("learned", (m,), (0.5,)) for m in learned_modalities(bundle)]
    for base in (TFIDF, UNION, SUM, *learned):
        for cfg in (base, with_min2(base)):
            threshold_moves(engine, cfg, repeats)
    # graph post-processing re-runs on every move (it reads the whole selection)
    for base in (SUM, *learned[:1]):
        for post in POST:
            threshold_moves(engine, with_min2(base).replace(post=post), repeats)
    return engine


def threshold_moves(engine: Engine, cfg: MatchConfig, repeats: int) -> None:
    """Median time of evaluate after the threshold moves by up to 0.05 either way (the
    stage cached, as after the first move)."""
    engine.evaluate(cfg)
    t0 = cfg.thresholds[0]
    values = np.round(np.linspace(t0 - 0.05, t0 + 0.05, 21), 4)
    times = []
    for _ in range(repeats):
        for v in values:
            c = moved(cfg, float(v))
            with timer() as t:
                _ = engine.evaluate(c).metrics
            times.append(t.s)
    label = cfg.label + (" + Min2" if cfg.min2 else "")
    label += "".join(f" + {k}" for k in cfg.post.to_dict())
    figure(f"recompute after a threshold change, {label} on all (median of "
           f"{len(times)})", float(np.median(times)) * 1e3, "ms", 30)


def bench_mode_change(bundle: Bundle, repeats: int) -> None:
    """First evaluate of a mode on an engine that has no stage cached."""
    cfgs = [("tfidf", TFIDF), ("phash", PHASH), ("union:tfidf,phash", UNION),
            ("sum:tfidf,phash", SUM), ("prob:tfidf,phash", PROB),
            ("tfidf INB 1 (one sparse INB iteration included)",
             TFIDF.replace(thresholds=(0.41,), inb=(InbStage(0.7),)))]
    for label, cfg in cfgs:
        times = []
        for _ in range(repeats):
            engine = Engine(bundle, "all")
            with timer() as t:
                _ = engine.evaluate(cfg).metrics
            times.append(t.s)
            del engine
            gc.collect()
        figure(f"mode change (first evaluate, stage not cached), {label} on all "
               f"(median of {repeats})", float(np.median(times)) * 1e3, "ms")
    # the unit filter: its first use ever parses every title of the table
    fresh = Bundle.open(bundle.root)
    engine = Engine(fresh, "all")
    cfg = TFIDF.replace(units=True)
    with timer() as t:
        engine.evaluate(cfg)
    figure("units filter, first use (parses 34,250 titles + conflicts), tfidf on all",
           t.ms, "ms")
    engine.evaluate(SUM)
    with timer() as t:
        engine.evaluate(SUM.replace(units=True))
    figure("units filter, mode change after first use, sum:tfidf,phash on all", t.ms, "ms")


def bench_error_pairs(engine: Engine, repeats: int) -> None:
    """Every FP / missed pair of the scope as a table (what the export writes, CSV aside)."""
    for cfg in (with_min2(TFIDF), with_min2(SUM).replace(units=True)):
        ev = engine.evaluate(cfg)
        rows = len(error_pairs(engine, ev))
        times = time_calls(lambda e=ev: error_pairs(engine, e), repeats, 1)
        label = cfg.label + " + Min2" + (" + units" if cfg.units else "")
        figure(f"error pairs table, {label} on all ({rows:,} pairs, median of {repeats})",
               float(np.median(times)) * 1e3, "ms")


def bench_sweep(bundle: Bundle, engine: Engine, repeats: int) -> None:
    """A 100-point sweep of the last threshold. `cold`: the first sweep after the stage was
    computed (a fresh engine each time, so nothing the sweep derives from the stage is
    cached yet); `warm`: the same sweep again on the same stage."""
    values = np.linspace(0.0, 1.0, 100)
    for cfg, param in ((TFIDF, "threshold"), (with_min2(TFIDF), "threshold"),
                       (UNION, "threshold:tfidf"), (with_min2(UNION), "threshold:tfidf"),
                       (SUM, "threshold"), (with_min2(SUM), "threshold")):
        label = cfg.label + (" + Min2" if cfg.min2 else "")
        cold = []
        for _ in range(repeats):
            fresh = Engine(bundle, "all")
            fresh.evaluate(cfg)
            with timer() as t:
                sweep(fresh, cfg, param, values)
            cold.append(t.s)
            del fresh
        figure(f"100-point sweep of {param}, {label} on all, cold (median of {repeats})",
               float(np.median(cold)) * 1e3, "ms", 150)
        engine.evaluate(cfg)
        warm = time_calls(lambda c=cfg, p=param: sweep(engine, c, p, values), repeats, 1)
        figure(f"100-point sweep of {param}, {label} on all, warm (median of {repeats})",
               float(np.median(warm)) * 1e3, "ms", 150)


def random_unit(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def inb_weights(cand: np.ndarray, sims: np.ndarray, per_row: int = 3) -> sparse.csr_matrix:
    """What INB blends with: each query itself (weight 1) and its next `per_row - 1`
    candidates weighted by their similarity (a predicted set of about three)."""
    n = len(cand)
    cols = cand[:, :per_row]
    w = np.where(np.arange(per_row)[None, :] == 0, 1.0, sims[:, :per_row]).astype(np.float32)
    w = np.maximum(w, np.float32(0.01))
    rows = np.repeat(np.arange(n), per_row)
    keep = cols.ravel() >= 0  # a short top-K list is padded with -1 (empty titles)
    return sparse.csr_matrix((w.ravel()[keep], (rows[keep], cols.ravel()[keep])),
                             shape=(n, n))


def bench_inb(bundle: Bundle, quick: bool, repeats: int) -> None:
    n = bundle.n_items
    rng = np.random.default_rng(SEED)
    space = DenseSpace(random_unit(n, DIM, rng))
    if quick:
        idx, _ = bundle.knn("all", "tfidf")  # scope `all`: local rows are global rows
        cand = np.asarray(idx, np.int64)
        source = "the tfidf top-50 of the bundle"
    else:
        with timer() as t:
            cand, _ = space.topk(K)
        figure(f"DenseSpace.topk({K}) on {n} x {DIM} (exact, faiss; what INB exact "
               "re-search pays per modality)", t.s, "s")
        source = "their exact top-50"
    sims = space.sims(np.arange(n), cand)
    weights = inb_weights(cand, sims)
    print(f"INB set-up: {n} x {DIM} random unit vectors, candidates = {source} "
          f"({cand.shape[0]} x {cand.shape[1]}), weights {weights.nnz / n:.1f} per row",
          flush=True)
    queries = np.arange(n)

    def step() -> np.ndarray:
        return space.blend(weights).sims(queries, cand)

    times = time_calls(step, repeats, warmup=1)
    figure(f"one INB iteration, blend + sims on {n} x {DIM} dense (median of {repeats})",
           float(np.median(times)), "s", 1.5, fmt="{:.3f}")

    gc.collect()
    before = reset_peak_rss()
    tracemalloc.start()
    out = step()
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = peak_rss_since_reset_mb()
    del out
    figure("one INB iteration, extra memory (tracemalloc peak of numpy/scipy buffers)",
           traced / 2**20, "MB", 500,
           note=f"an N x K x d float32 temporary would be {n * K * DIM * 4 / 2**20:,.0f} MB")
    if before is not None and after is not None:
        figure("one INB iteration, extra memory (peak RSS rise, incl. faiss)",
               after - before, "MB", 500)

    # the same on real TF-IDF (sparse) through the engine, the app's actual INB step
    engine = Engine(bundle, "all")
    cfg = TFIDF.replace(thresholds=(0.41,), inb=(InbStage(0.7),))
    engine.stage(cfg, 0)
    engine.space("tfidf")
    with timer() as t:
        engine.stage(cfg)
    figure("one INB iteration through the engine, tfidf (sparse) on all", t.s, "s", 1.5,
           fmt="{:.3f}")


def clustered_unit(n: int, d: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random unit vectors in groups of 2..6 (Shopee-like sizes), within-group cosine
    about 0.2..0.5 against about 0 +- 0.04 between groups, so that thresholding does
    something; returns (vectors, labels)."""
    sizes = rng.choice([2, 2, 2, 3, 3, 4, 5, 6], size=n)
    labels = np.repeat(np.arange(n), sizes)[:n]
    centres = random_unit(labels.max() + 1, d, rng)
    noise = random_unit(n, d, rng) * rng.uniform(1.0, 2.2, (n, 1)).astype(np.float32)
    x = centres[labels] + noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


def threshold_pass(cand: np.ndarray, sim: np.ndarray, labels: np.ndarray,
                   gs: np.ndarray, t: float) -> float:
    """The engine's per-threshold work: pred = score >= t (query always), counts, mean F1."""
    pred = sim >= np.float32(t)
    pred[:, 0] = True
    true = labels[cand] == labels[:, None]
    tp = np.count_nonzero(pred & true, axis=1)
    _, _, f = query_metrics(tp, np.count_nonzero(pred, axis=1), gs)
    return float(f.mean())


def bench_study(n: int) -> None:
    rng = np.random.default_rng(SEED + 1)
    x, labels = clustered_unit(n, DIM, rng)
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    gs = counts[inv]
    t_match = 0.2
    print(f"study comparison: N = {n}, {DIM}-d clustered random unit vectors, "
          f"{labels.max() + 1} groups, threshold {t_match}", flush=True)

    # the study: the whole N x N similarity matrix, a full argsort of every row, top-K
    with timer() as t_study:
        full = x @ x.T
        order = np.argsort(-full, axis=1)
        s_cand = order[:, :K]
        s_sim = np.take_along_axis(full, s_cand, axis=1)
        del full, order
        # the query first, as the study's neighbour lists
        f_study = threshold_pass(s_cand, s_sim, labels, gs, t_match)
    # the engine: exact top-K with faiss, then the vectorised threshold pass
    space = DenseSpace(x)
    with timer() as t_engine:
        e_cand, e_sim = space.topk(K)
        f_engine = threshold_pass(e_cand, e_sim, labels, gs, t_match)
    thr = time_calls(lambda: threshold_pass(e_cand, e_sim, labels, gs, t_match), 5)
    figure(f"study approach at N={n} (N x N matmul + argsort per row + threshold)",
           t_study.s, "s", note=f"mean F1 {f_study:.4f}")
    figure(f"engine at N={n} (DenseSpace.topk({K}) + threshold/metric pass)",
           t_engine.s, "s", note=f"mean F1 {f_engine:.4f}")
    figure(f"engine threshold/metric pass alone at N={n} (median of 5)",
           float(np.median(thr)) * 1e3, "ms")
    figure(f"study / engine time ratio at N={n}", t_study.s / t_engine.s, "x", fmt="{:.1f}")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(p)
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats; INB candidates from the bundle instead of an exact "
                        "top-50 of the random vectors; no N = 10,000 comparison")
    args = p.parse_args(argv)
    args.csv = require_csv(args.csv)
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, numpy {np.__version__}", flush=True)
    print(f"source: {source_state()}", flush=True)
    with timer() as total:
        bundle = bench_bundle(args)
        engine = bench_recompute(bundle, repeats=1 if args.quick else 3)
        bench_sweep(bundle, engine, repeats=5)
        bench_error_pairs(engine, repeats=1 if args.quick else 3)
        del engine
        bench_mode_change(bundle, repeats=1 if args.quick else 3)
        gc.collect()
        bench_inb(bundle, args.quick, repeats=3)
        gc.collect()
        figure("peak RSS of this process before the N=10,000 comparison (engine work)",
               peak_rss_mb(), "MB")
        if not args.quick:
            bench_study(STUDY_N)
    figure("peak RSS of this process", peak_rss_mb(), "MB")
    figure("total bench time", total.s, "s", 300)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
