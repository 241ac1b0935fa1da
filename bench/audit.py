"""The label audit on a bundle (issue 12): how many findings each list flags at a cut, and
a seeded sample of each for checking by hand.

    python bench/audit.py BUNDLE [--scope fold0] [--settings JSON] [--cut 0.5] [--sample 30]

The configuration is a settings file (the app's or `explorer evaluate --json`'s), else
`best` is searched on fold 1. Each sampled finding is printed with the titles of both
sides (for a split: one posting of each of its two largest parts), to judge whether the
label is wrong."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from explorer.core.audit import audit
from explorer.core.bundle import Bundle
from explorer.core.engine import Engine
from explorer.core.pair_model import learned_modalities
from explorer.core.state import read_settings
from explorer.core.titles import decoded_titles
from explorer.core.tune import best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--scope", default="fold0")
    p.add_argument("--settings", type=Path)
    p.add_argument("--cut", type=float, default=0.5)
    p.add_argument("--sample", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    bundle = Bundle.open(args.bundle, lazy=True)
    engine = Engine(bundle, args.scope)
    if args.settings:
        cfg = read_settings(args.settings).config
    else:
        mods = [m.name for m in bundle.manifest.modalities]
        cfg = best(Engine(bundle, "fold1"), mods, derived=learned_modalities(bundle))[0].config
    ev = engine.evaluate(cfg)
    print(f"config {cfg.to_json()}\nF1 {ev.metrics.f1:.4f} on {args.scope}", flush=True)
    t0 = time.perf_counter()
    audit(engine, ev, 200)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = audit(engine, ev)
    print(f"audit: the first 200 findings (the app's tab) {first:.2f} s, all {len(found)} "
          f"{time.perf_counter() - t0:.2f} s", flush=True)
    titles = decoded_titles(bundle)[engine.rows]
    rng = np.random.default_rng(args.seed)
    for kind in ("split", "merge", "posting"):
        rows = found[(found["kind"] == kind) & (found["score"] >= args.cut)]
        groups = len(set(rows["label_group"]) | set(rows["other_label_group"]))
        postings = sum(len(m.split()) for m in rows["members"])
        print(f"\n{kind}: {len(rows)} findings at score >= {args.cut} ({groups} label "
              f"groups, {postings} postings a fix would relabel; "
              f"{int((found['kind'] == kind).sum())} at any score)")
        pick = rows.iloc[np.sort(rng.choice(len(rows), min(args.sample, len(rows)),
                                            replace=False))] if len(rows) else rows
        for i, r in enumerate(pick.itertuples(index=False)):
            print(f"  {i + 1:2d}. {r.score:.2f} {r.label_group}/{r.other_label_group} "
                  f"({r.group_size}/{r.other_group_size})\n      A: {titles[r.row][:90]}\n"
                  f"      B: {titles[r.other_row][:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
