"""CPU approximate dense search as `precompute build --search approx` runs it (faiss IVF,
explorer.core.ann.ivf_index): seconds per 100,000 queries and recall@K at each nprobe.

    python bench/ann.py [--n 1000000] [--dim 384] [--queries 100000] [--k 50] [--json]

The base is --n clustered unit vectors (random centres, Gaussian spread: "random-ish"
embeddings with neighbourhoods, as real ones have); the queries are base rows, as in a
build. Recall@K is measured against exact faiss flat search of 1,000 of the queries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core import ann
from explorer.core.faiss_search import search_ip


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 50), dim), dtype=np.float32)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):  # bounded temporaries
        m = min(100_000, n - s)
        x = centres[rng.integers(0, len(centres), m)]
        x += 0.7 * rng.standard_normal((m, dim), dtype=np.float32)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=100_000)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--gpu", action="store_true", help="IVF on the GPUs faiss sees")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    import faiss

    t0 = time.perf_counter()
    base = clustered(args.n, args.dim)
    rng = np.random.default_rng(1)
    queries = np.sort(rng.choice(args.n, min(args.queries, args.n), replace=False))
    check = np.sort(rng.choice(queries, min(1000, len(queries)), replace=False))
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, truth = search_ip(base[check], base, args.k, use_gpu=args.gpu)
    exact_s = (time.perf_counter() - t0) * 100_000 / len(check)
    t0 = time.perf_counter()
    index, params = ann.ivf_index(base, use_gpu=args.gpu, seed=0)
    build_s = time.perf_counter() - t0
    print(f"# generated in {gen_s:.1f} s, exact {exact_s:.1f} s per 100k, index {params} "
          f"in {build_s:.1f} s", file=sys.stderr, flush=True)
    rows = []
    for nprobe in (8, 16, 32, 64):
        if nprobe > params["nlist"]:
            break
        ann.set_nprobe(index, nprobe)
        t0 = time.perf_counter()
        found = np.empty((len(queries), args.k), np.int64)
        for s in range(0, len(queries), ann.QUERY_BATCH):
            _, found[s:s + ann.QUERY_BATCH] = index.search(base[queries[s:s + ann.QUERY_BATCH]],
                                                            args.k)
        per_100k = (time.perf_counter() - t0) * 100_000 / len(queries)
        at = np.searchsorted(queries, check)
        hits = sum(len(np.intersect1d(found[a], truth[i])) for i, a in enumerate(at))
        rows.append({"nprobe": nprobe, "s_per_100k_queries": round(per_100k, 2),
                     "recall": round(hits / truth.size, 4)})
        print(f"# nprobe {nprobe}: {rows[-1]}", file=sys.stderr, flush=True)
    out = {"n": args.n, "dim": args.dim, "k": args.k, "queries": len(queries),
           "threads": faiss.omp_get_max_threads(), "cpus": os.cpu_count(),
           "generate_s": round(gen_s, 1), "index": params, "index_build_s": round(build_s, 1),
           "exact_flat_s_per_100k_queries": round(exact_s, 1), "ivf": rows}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"n={args.n:,} d={args.dim} k={args.k} on {out['threads']} threads: "
              f"IVF nlist={params['nlist']} ({params['device']}) trained on "
              f"{params['train_rows']:,} rows, built in {build_s:.1f} s; exact flat "
              f"{exact_s:.1f} s per 100,000 queries")
        for r in rows:
            print(f"  nprobe {r['nprobe']:3d}: {r['s_per_100k_queries']:8.2f} s per 100,000 "
                  f"queries, recall@{args.k} {r['recall']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
