"""Cross-modal heads on the demo (issue 12): text-to-picture recall@1 / @10 on fold 0
before and after `precompute train crossmodal` (trained on folds 2-4, selected on fold 1;
fold 0 is read here only, after training).

    python bench/crossmodal.py [--work DIR] [--postings 1600] [--epochs 20] [--batch 128]
        [--lr 0.003] [--dim 128] [--write docs/results.md]

"Before" is the untrained heads training starts from (same seed): random projections
of the frozen encoders' features, so about chance."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import CACHE, source_state, write_section
from results import cpu_model

from precompute.demo_data import generate_demo
from precompute.training.crossmodal import (
    BEST,
    SUMMARY,
    embed_postings,
    load_heads,
    recall_at_k,
    split_rows,
    untrained_heads,
)

IMAGE, TEXT = "tf_efficientnet_lite0", "all-MiniLM-L6-v2"


def recalls(heads, image: np.ndarray, text: np.ndarray) -> dict[str, float]:
    with torch.no_grad():
        img, txt = heads(torch.as_tensor(image), torch.as_tensor(text))
    return {f"recall@{k}": recall_at_k(txt, img, k) for k in (1, 10)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=CACHE / "crossmodal")
    p.add_argument("--postings", type=int, default=1600)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", type=Path, metavar="MD", help="the `crossmodal` section of MD")
    args = p.parse_args(argv)
    data_dir, run = args.work / "data", args.work / "run"
    csv = generate_demo(data_dir, n_postings=args.postings, seed=0, progress=False)
    images = data_dir / "train_images"
    cmd = [sys.executable, "-m", "precompute", "train", "crossmodal", "--csv", str(csv),
           "--images", str(images), "--image", IMAGE, "--text", TEXT, "--out", str(run),
           "--epochs", str(args.epochs), "--batch", str(args.batch), "--lr", str(args.lr),
           "--dim", str(args.dim), "--seed", str(args.seed), "--force", "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    train_s = time.perf_counter() - t0
    summary = json.loads((run / SUMMARY).read_text())
    data, folds, _, _ = split_rows(csv)
    test = np.flatnonzero(folds == 0)
    image, text, present, _ = embed_postings(data, images, test, IMAGE, TEXT, device="cpu",
                                             progress=False)
    image, text = image[present], text[present]
    after = load_heads(run / BEST)
    before = untrained_heads(**after.dims, seed=args.seed)
    got = {"before": recalls(before, image, text), "after": recalls(after, image, text)}
    lines = [f"| {when} | {r['recall@1']:.3f} | {r['recall@10']:.3f} |"
             for when, r in got.items()]
    note = (f"{args.postings} demo postings; fold 0: {len(image)} titles against their "
            f"{len(image)} pictures; trained {summary['train_pairs']} pairs of folds 2-4, "
            f"best epoch {summary['best_epoch']} of {args.epochs} on fold-1 recall@10 "
            f"({summary['before']['recall@10']:.3f} -> {summary['after']['recall@10']:.3f}); "
            f"`precompute train crossmodal` {train_s:.0f} s (most of it embedding)")
    print(note)
    print("\n".join(lines))
    if args.write:
        write_section(args.write, "crossmodal", "\n".join([
            "## Cross-modal heads on the demo (issue 12, first measurement)", "",
            f"`python bench/crossmodal.py` on {cpu_model()}, source {source_state()}: "
            f"CLIP-style projection heads (dim {args.dim}) over the frozen {IMAGE} and "
            f"{TEXT}, {args.epochs} epochs, batch {args.batch}, lr {args.lr}. {note}.",
            "", "| heads | fold-0 text-to-picture recall@1 | recall@10 |", "|---|---|---|",
            *lines]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
