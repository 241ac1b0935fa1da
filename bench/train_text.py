"""Text training on the real table: figures for docs/results.md (its `training` section).

    python bench/train_text.py [--csv PATH] [--run DIR] [--retrain] [--rebuild] [--out FILE]

Fine-tunes the packaged all-MiniLM-L6-v2 with ArcFace on folds 2-4, selected on fold 1
(`precompute train text`; reused when DIR already holds a finished run), builds a bundle
with TF-IDF, the tuned model and phash (`precompute build ... --text
minilm_ft=all-MiniLM-L6-v2:CKPT`), and reports fold-0 F1 (tuned on fold 1) of the tuned
model alone against the untuned one, and of `best` over tfidf + phash with and without it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import CACHE, REPO, file_sha256, require_csv, source_state, write_section
from neural import Study, log, run, table
from results import cpu_model

from explorer.core.bundle import Bundle

DEFAULT_CSV = REPO.parent / "shared" / "data" / "shopee" / "train.csv"
RUN = CACHE / "train-text-minilm"
# the run reported in docs/results.md: a 5-epoch schedule, cut at the 45-minute budget
# (no epoch is started that would end past it; about 10 minutes an epoch on 2 shared cores)
TRAIN_ARGS = ["--model", "all-MiniLM-L6-v2", "--loss", "arcface", "--margin", "0.5",
              "--margin-start", "0.3", "--margin-ramp-epochs", "2", "--epochs", "5",
              "--batch", "64", "--lr", "5e-5", "--head-lr-mult", "50", "--max-length", "128",
              "--max-minutes", "45"]
UNTUNED = CACHE  # the untuned MiniLM bundle of bench/neural.py, when cached


def train(csv: Path, out: Path, retrain: bool) -> tuple[dict, float | None]:
    """The run's history.json, training it first unless it is there (then wall is None)."""
    history = out / "history.json"
    if retrain or not history.exists():
        cmd = [sys.executable, "-m", "precompute", "train", "text", "--csv", str(csv),
               "--out", str(out), *TRAIN_ARGS, "--quiet"]
        if (out / "last.pt").exists() and not retrain:
            cmd.append("--resume")
        log(f"training: {' '.join(cmd[1:])}")
        wall = run(cmd)
    else:
        log(f"reusing the finished run in {out}")
        wall = None
    return json.loads(history.read_text()), wall


def build(csv: Path, ckpt: Path, rebuild: bool) -> tuple[Bundle, float | None, str]:
    sha = file_sha256(csv)
    path = CACHE / f"shopee-{sha[:12]}-minilm-ft.bundle"
    stamp = path.with_suffix(".ckpt-sha256")
    ckpt_sha = file_sha256(ckpt)
    spec = f"minilm_ft=all-MiniLM-L6-v2:{ckpt}"
    cmd = [sys.executable, "-m", "precompute", "build", "--csv", str(csv), "--out", str(path),
           "--text", "tfidf", "--text", spec, "--image", "phash", "--force", "--quiet"]
    build_s = None
    fresh = (path / "manifest.json").exists() and stamp.exists() \
        and stamp.read_text().strip() == ckpt_sha
    if rebuild or not fresh:
        log(f"building {path} ...")
        build_s = run(cmd)
        stamp.write_text(ckpt_sha + "\n")
    b = Bundle.open(path)
    if b.manifest.dataset.get("sha256") != sha:
        raise SystemExit(f"bench: {path} was built from another table; pass --rebuild")
    shown = " ".join(cmd[3:]).replace(str(ckpt), "CKPT").replace(str(REPO) + "/", "")
    return b, build_s, shown


def untuned_row(csv: Path) -> tuple[str, float, float, str] | None:
    """The untuned MiniLM on fold 0 (tuned on fold 1), from bench/neural.py's bundle."""
    path = UNTUNED / f"shopee-{file_sha256(csv)[:12]}-minilm.bundle"
    if not (path / "manifest.json").exists():
        return None
    return Study(Bundle.open(path)).single("minilm")


def epochs_table(history: dict) -> list[str]:
    out = ["| epoch | margin | train loss | samples/s | train s | fold-1 F1 | threshold |",
           "|---|---|---|---|---|---|---|"]
    for h in history["history"]:
        if h["epoch"] == 0:
            out.append(f"| 0 (untuned) | | | | | {h['valid_f1']:.4f} | {h['threshold']:.3f} |")
            continue
        out.append(f"| {h['epoch']} | {h['margin']:.2f} | {h['loss']:.3f} | "
                   f"{h['samples_per_s']:.1f} | {h['train_s']:.0f} | {h['valid_f1']:.4f} | "
                   f"{h['threshold']:.3f} |")
    return out


def section(csv: Path, run_dir: Path, retrain: bool, rebuild: bool) -> str:
    history, wall = train(csv, run_dir, retrain)
    ckpt = run_dir / "best.pt"
    b, build_s, build_cmd = build(csv, ckpt, rebuild)
    s = Study(b)
    tuned = s.single("minilm_ft")
    untuned = untuned_row(csv)
    t0 = time.perf_counter()
    without, n1 = s.best(("tfidf", "phash"))
    with_ft, n2 = s.best(("tfidf", "minilm_ft", "phash"))
    best_s = time.perf_counter() - t0
    epochs = [h for h in history["history"] if h["epoch"] > 0]
    loop_s = sum(h.get("train_s", 0.0) + h.get("valid_s", 0.0) for h in history["history"])
    seen = sum(h["samples"] for h in epochs)
    rate = seen / sum(h["train_s"] for h in epochs)
    wall_text = (f"{loop_s / 60:.1f} min of training and fold-1 selection (summed over "
                 "epochs" + (f"; {wall / 60:.1f} min for this invocation" if wall else "")
                 + ")")
    if history.get("stopped"):
        wall_text += f"; stopped at the time limit ({history['stopped']})"
    base = untuned[1] if untuned else 0.7200
    rows = [r for r in (untuned,) if r]
    rows += [("minilm_ft (ArcFace, this run)", *tuned[1:]),
             (f"best without the tuned model: {without[0]}", *without[1:]),
             (f"best with the tuned model: {with_ft[0]}", *with_ft[1:])]
    best = history["best"]
    lines = [
        "## Training: MiniLM fine-tuned with ArcFace (real table, CPU)",
        "",
        f"Generated by `python bench/train_text.py` on {cpu_model()} (2 cores, shared); source "
        f"{source_state()}.",
        "",
        "Training command: `precompute train text --csv train.csv --out "
        f"{run_dir.relative_to(REPO) if run_dir.is_relative_to(REPO) else run_dir} "
        f"{' '.join(TRAIN_ARGS)}`. Folds 2-4 ({epochs[0]['samples'] if epochs else 0:,} titles "
        "per epoch) train; after every epoch fold 1 is embedded with mean pooling (what "
        "`precompute build` computes from the checkpoint), its cosine threshold tuned for "
        "mean F1, and the best epoch kept; fold 0 is not read. Batches group titles of "
        f"similar length. {len(epochs)} epochs: {wall_text}; {rate:.1f} training "
        f"samples/s on average. Selected epoch {best['epoch']} (fold-1 F1 "
        f"{best['valid_f1']:.4f}).",
        "",
        *epochs_table(history),
        "",
        f"Bundle: `precompute {build_cmd}`"
        + (f" ({build_s:.0f} s)" if build_s else " (reused from bench/.cache)") + ", with "
        "CKPT the selected `best.pt`. Every row is tuned on fold 1 and reported on fold 0; "
        f"`best` searched {n1} configurations over tfidf + phash and {n2} over tfidf + "
        f"minilm_ft + phash ({best_s:.0f} s for both).",
        "",
        *table(rows),
        "",
        f"Tuned model alone: fold-0 F1 {tuned[1]:.4f} vs {base:.4f} untuned "
        f"({tuned[1] - base:+.4f}; target >= +0.02). `best` with it: {with_ft[1]:.4f} vs "
        f"{without[1]:.4f} without ({with_ft[1] - without[1]:+.4f}; the best offline figure "
        "without it is 0.8499).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    p.add_argument("--run", type=Path, default=RUN, help="training run folder")
    p.add_argument("--retrain", action="store_true", help="train again even if finished")
    p.add_argument("--rebuild", action="store_true", help="rebuild the bundle")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    args = p.parse_args(argv)
    text = section(require_csv(args.csv), args.run.resolve(), args.retrain, args.rebuild)
    write_section(args.out, "training", text)
    log(f"wrote the training section of {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
