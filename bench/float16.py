"""Would float16 similarities move the metrics? (issue 10, part 4: half the graph's memory)

    python bench/float16.py [--bundle DIR] [--scope fold0] [--tune-on fold1]

Tunes a few configurations on --tune-on with the similarities as stored (float32), then
evaluates each on --scope twice: as stored, and with the candidate graph's similarities
rounded to float16 (what a float16 graph would hold); prints both mean F1s, their
difference and how many queries' predicted sets change. The tuned thresholds are kept,
as an analyst's saved settings would be.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import add_data_args, get_bundle, require_csv

from explorer.core.bundle import Bundle
from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine
from explorer.core.tune import tune

CONFIGS = (
    MatchConfig("single", ("tfidf",), (0.5,), min2=(0.4,)),
    MatchConfig("single", ("phash",), (0.8,)),
    MatchConfig("sum", ("tfidf", "phash"), (0.5,), min2=(0.4,)),
    MatchConfig("sum", ("tfidf", "phash"), (0.5,), inb=(InbStage(0.6), InbStage(0.7))),
    MatchConfig("union", ("tfidf", "phash"), (0.5, 0.8)),
)


def half(engine: Engine) -> Engine:
    """The same engine with the graph's similarities rounded through float16."""
    for m, s in engine.graph.sims.items():
        engine.graph.sims[m] = np.asarray(s).astype(np.float16).astype(np.float32)
    return engine


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(p)
    p.add_argument("--scope", default="fold0")
    p.add_argument("--tune-on", default="fold1")
    args = p.parse_args(argv)
    path = args.bundle if args.bundle is not None and Path(args.bundle).exists() else \
        get_bundle(require_csv(args.csv), args.bundle, args.rebuild).path
    tuner = Engine(Bundle.open(path), args.tune_on)
    full = Engine(Bundle.open(path), args.scope)
    halved = half(Engine(Bundle.open(path), args.scope))
    print(f"{path}: scope {args.scope}, thresholds tuned on {args.tune_on}")
    print("| configuration | F1 float32 | F1 float16 | difference | queries whose set changed |")
    print("|---|---|---|---|---|")
    for cfg in CONFIGS:
        cfg = tune(tuner, cfg)
        a, b = full.evaluate(cfg), halved.evaluate(cfg)
        changed = int(np.count_nonzero(np.any(a.pred != b.pred, axis=1)))
        print(f"| {cfg.label} {cfg.thresholds} | {a.metrics.f1:.5f} | {b.metrics.f1:.5f} | "
              f"{b.metrics.f1 - a.metrics.f1:+.5f} | {changed} of {full.n} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
