"""`precompute train image|text`: arguments -> split, task, loop; writes history.json."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from precompute.errors import InputError
from precompute.text_encoders import pick_device
from precompute.training.data import TRAIN_FOLDS, VALID_FOLD, load_split
from precompute.training.heads import LOSSES
from precompute.training.loop import BEST, LoopConfig, fit


def _check(args: argparse.Namespace) -> None:
    positive = {"--epochs": args.epochs, "--batch": args.batch, "--fc-dim": args.fc_dim,
                "--scale": args.scale, "--lr": args.lr}
    if args.max_minutes is not None:
        positive["--max-minutes"] = args.max_minutes
    for flag, value in positive.items():
        if not value > 0:
            raise InputError(f"{flag} {value}: must be positive")
    if args.batch < 2:
        raise InputError(f"--batch {args.batch}: BatchNorm needs at least 2 rows per batch")
    if not 0 <= args.margin < 3.14:
        raise InputError(f"--margin {args.margin}: expected an angle in [0, pi) radians")
    if args.loss not in LOSSES:
        raise InputError(f"--loss {args.loss}: expected one of {', '.join(LOSSES)}")


def loop_config(args: argparse.Namespace, device: torch.device, amp: bool) -> LoopConfig:
    return LoopConfig(out=Path(args.out), epochs=args.epochs, batch_size=args.batch,
                      lr=args.lr, head_lr_mult=args.head_lr_mult, warmup=args.warmup,
                      loss=args.loss, margin=args.margin, margin_start=args.margin_start,
                      margin_ramp_epochs=args.margin_ramp_epochs, seed=args.seed,
                      device=device, amp=amp, progress=not args.quiet, resume=args.resume,
                      max_minutes=args.max_minutes)


def train_from_args(args: argparse.Namespace) -> Path:
    """Run the training the CLI describes; returns the best checkpoint's path."""
    logging.basicConfig(format="%(asctime)s %(message)s")  # root stays at WARNING: only
    logging.getLogger("precompute.training").setLevel(logging.INFO)  # our lines are INFO
    _check(args)
    device, amp = pick_device(args.device, False if args.no_amp else None)
    torch.manual_seed(args.seed)  # the head's initial weights
    split = load_split(args.csv)
    if args.modality == "text":
        from precompute.training.text import text_task

        task = text_task(split, args.model, loss=args.loss, margin=args.margin,
                         scale=args.scale, fc_dim=args.fc_dim, max_length=args.max_length,
                         device=device, amp=amp, progress=not args.quiet)
    else:
        from precompute.training.image import image_task

        task = image_task(split, args.images, args.model, pretrained=args.pretrained,
                          loss=args.loss, margin=args.margin, scale=args.scale,
                          fc_dim=args.fc_dim, size=args.size, device=device, amp=amp,
                          workers=args.workers, progress=not args.quiet)
    summary = fit(task, loop_config(args, device, amp))
    summary["skipped_unreadable"] = getattr(task, "skipped_total", 0)
    summary["left_out_alone_in_group"] = split.left_out
    # whose labels the weights learned from: a bundle of this very table records them
    summary.update(csv_sha256=split.data.sha256, train_folds=list(TRAIN_FOLDS),
                   valid_fold=VALID_FOLD)
    out = Path(args.out)
    (out / "history.json").write_text(json.dumps(summary, indent=1) + "\n")
    best = summary["best"]
    print(f"best epoch {best['epoch']}: fold-1 F1 {best['valid_f1']:.4f} "
          f"(threshold {best['threshold']:.3f})")
    untrained = next((h for h in summary["history"] if h["epoch"] == 0), None)
    if untrained is not None and untrained["valid_f1"] >= best["valid_f1"]:
        print(f"warning: no epoch beat the untrained model (fold-1 F1 "
              f"{untrained['valid_f1']:.4f}); train longer, or lower --lr or --margin")
    return out / BEST
