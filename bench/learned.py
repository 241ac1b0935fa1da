"""The learned mode on a bundle (issue 11): what each addition gains, fold-0 F1 with
everything tuned on fold 1, as `explorer evaluate --tune-on fold1` computes it.

    python bench/learned.py BUNDLE [--model pairs] [--retrain] [--write docs/results.md]

Trains `explorer learn BUNDLE --name MODEL` first when the bundle has no such model (or
with --retrain; its wall time is reported). Rows: the best rules (`best` without the
classifier or post-processing), the classifier alone, + Min2, + INB 1..3 (INB blends over
the classifier's predicted neighbours), then each graph post-processing stage added alone
to the best of those on fold 1, the stages added greedily (what `best` does), and `best`
with the learned mode and post-processing in its search."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import results
from common import source_state, write_section
from results import cpu_model

from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig, Post
from explorer.core.engine import Engine
from explorer.core.pair_model import bundle_models, learned_modalities
from explorer.core.post_tuning import STAGES, add_post, tune_stage
from explorer.core.tune import best, tune_chain


def describe(cfg: MatchConfig) -> str:
    """A configuration in one table cell: what it is, then its tuned values."""
    name = f"{cfg.mode}:{','.join(cfg.modalities)}" if cfg.spec.fusion else cfg.modalities[0]
    return "; ".join([name, results.describe(cfg)] + (["units"] if cfg.units else []))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--model", default="pairs")
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--blend", action="store_true",
                   help="train with `explorer learn --blend` (the INB-blended feature)")
    p.add_argument("--write", type=Path, metavar="MD", help="a section of MD")
    p.add_argument("--section", default="learned", help="its name (default learned)")
    args = p.parse_args(argv)
    notes = []
    bundle = Bundle.open(args.bundle)
    if args.retrain or args.model not in bundle_models(bundle):
        t0 = time.perf_counter()
        extra = ["--blend"] if args.blend else []
        subprocess.run([sys.executable, "-m", "explorer", "learn", str(args.bundle), "--name",
                        args.model, "--force", *extra], check=True)
        notes.append(f"`explorer learn BUNDLE --name {args.model}{' --blend' * args.blend}`: "
                     f"{time.perf_counter() - t0:.0f} s")
        bundle = Bundle.open(args.bundle)
    meta = json.loads((args.bundle / "models" / args.model / "model.json").read_text())
    notes.append(f"the model: {len(meta['features'])} features, {meta['best_iteration']} "
                 "trees" + (", blended-similarity thresholds " + ", ".join(
                     f"{m} {t:.3f}" for m, t in meta["blend"].items())
                     if meta.get("blend") else ", no blended-similarity feature"))
    valid, test = Engine(bundle, "fold1"), Engine(bundle, "fold0")
    mods = [m.name for m in bundle.manifest.modalities]
    rows: list[tuple[str, MatchConfig, float]] = []

    def add(what: str, cfg: MatchConfig, f1_valid: float) -> None:
        rows.append((what, cfg, f1_valid))
        print(f"{what}: fold-1 {f1_valid:.4f} fold-0 {test.evaluate(cfg).metrics.f1:.4f} "
              f"({describe(cfg)})", flush=True)

    t0 = time.perf_counter()
    rules = best(valid, mods, post=False)[0]
    add("best rules (no classifier, no post-processing)", rules.config, rules.f1)
    name = f"learned:{args.model}"
    chain = tune_chain(valid, MatchConfig("learned", (name,), (0.5,)), 0)
    add("classifier alone", chain[0].config, chain[0].f1)
    chain = tune_chain(valid, MatchConfig("learned", (name,), (0.5,), min2=(0.4,)), 3)
    for depth, t in enumerate(chain):
        add("+ Min2" if depth == 0 else f"+ Min2 + INB {depth}", t.config, t.f1)
    top = max(chain, key=lambda t: t.f1)
    for stage in STAGES:
        cfg, f1 = tune_stage(valid, top.config.replace(post=Post()), stage)
        add(f"best chain above + {stage} alone", cfg, f1)
    greedy = max(add_post(valid, top.config, top.f1), key=lambda t: t[1])
    if greedy[1] > top.f1:
        add("best chain + post-processing kept greedily (as best does)", *greedy)
    else:
        notes.append("no post-processing stage raised the fold-1 F1 of the best chain, so "
                     "`best` keeps none")
    picked = best(valid, mods, derived=learned_modalities(bundle))[0]
    add("`best` with the learned mode and post-processing in its search", picked.config,
        picked.f1)
    notes.append(f"all rows {time.perf_counter() - t0:.0f} s")
    print("; ".join(notes))
    if args.write:
        table = [f"| {what} | {f1v:.4f} | {test.evaluate(cfg).metrics.f1:.4f} | "
                 f"{describe(cfg)} |" for what, cfg, f1v in rows]
        write_section(args.write, args.section, "\n".join([
            "## Learned matching (issue 11): what each addition gains", "",
            f"`python bench/learned.py {args.bundle.name} --model {args.model}"
            f"{' --blend' * args.blend}` on {cpu_model()}, source "
            f"{source_state()}. Modalities {', '.join(mods)}; the classifier `{name}` "
            "(LightGBM over the pair features, trained on folds 2-4, early-stopped on fold 1 "
            "by `explorer learn`). Every row is tuned on fold 1 (thresholds, Min2, INB, "
            "post-processing) and reported on fold 0. " + "; ".join(notes) + ".", "",
            "| configuration | fold-1 F1 (tuned) | fold-0 F1 | settings |", "|---|---|---|---|",
            *table]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
