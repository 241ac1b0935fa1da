"""`best` with the cross-modal modality available vs without it, on the demo (issue 12).

    python bench/crossmodal_best.py --run RUN/best.pt --csv DEMO/train.csv \
        --images DEMO/train_images [--work DIR] [--write docs/results.md]

Builds one bundle with TF-IDF, MiniLM, phash, EfficientNet-Lite0 and the cross-modal
modality `cx` of RUN (a `precompute train crossmodal` run on the same CSV: bench/
crossmodal.py makes one), then runs `explorer evaluate --scope fold0 --tune-on fold1
--best` twice: over the four single-modality signals, and over the four plus `cx`. The
search (modes, weights, Min2, INB, post-processing) is tuned on fold 1 only; fold 0 is
the test fold."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import CACHE, source_state, write_section
from results import cpu_model

BASE = ("tfidf", "minilm", "phash", "effnet")


def build(csv: Path, images: Path, run: Path, out: Path) -> float:
    if (out / "manifest.json").exists():
        return float("nan")
    cmd = [sys.executable, "-m", "precompute", "build", "--csv", str(csv), "--images",
           str(images), "--text", "tfidf", "--text", "minilm=all-MiniLM-L6-v2", "--image",
           "phash", "--image", "effnet=tf_efficientnet_lite0", "--crossmodal", f"cx:{run}",
           "--k", "50", "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def best(bundle: Path, modalities: tuple[str, ...], search: bool = True) -> tuple[dict, float]:
    """fold-0 report of the best configuration over `modalities` (one modality without
    `search`: its threshold alone), everything tuned on fold 1."""
    mode = "sum:" + ",".join(modalities) if len(modalities) > 1 else modalities[0]
    cmd = [sys.executable, "-m", "explorer", "evaluate", str(bundle), "--scope", "fold0",
           "--tune-on", "fold1", *(["--best"] if search else []), "--mode", mode, "--json"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a cross-modal run's best.pt")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--work", type=Path, default=CACHE / "crossmodal-best")
    p.add_argument("--write", type=Path, metavar="MD")
    args = p.parse_args(argv)
    bundle = args.work / "demo-cx.bundle"
    args.work.mkdir(parents=True, exist_ok=True)
    build_s = build(args.csv, args.images, args.run, bundle)
    rows = []
    runs = [("without cx", BASE, True), ("with cx", (*BASE, "cx"), True),
            *((f"{m} alone, threshold only", (m,), False) for m in ("cx", "effnet", "minilm"))]
    for label, mods, search in runs:
        report, seconds = best(bundle, mods, search)
        cfg = report.get("config", {})
        f1 = report["metrics"]["f1"]
        rows.append(f"| {label} | {f1:.4f} | `{json.dumps(cfg, sort_keys=True)}` | "
                    f"{seconds:.0f} s |")
        print(rows[-1], flush=True)
    note = (f"bundle built in {build_s:.0f} s" if build_s == build_s else "bundle reused")
    if args.write:
        write_section(args.write, "crossmodal-best", "\n".join([
            "## `best` with and without the cross-modal modality (issue 12)", "",
            f"`python bench/crossmodal_best.py` on {cpu_model()}, source {source_state()}: "
            f"the demo of `bench/crossmodal.py` ({args.csv}), the cross-modal run {args.run}; "
            f"{note}. `explorer evaluate --scope fold0 --tune-on fold1 --best` over the "
            "modalities named (modes, weights, Min2, INB and post-processing searched on "
            "fold 1); fold-0 F1.", "",
            "| signals | fold-0 F1 | configuration tuned on fold 1 | seconds |",
            "|---|---|---|---|", *rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
