"""The explorer at scale: build time and memory, and the app's responsiveness, per size.

    python bench/scale.py --postings 100000 [300000 1000000] [--json] [--write docs/results.md]
                          [--work DIR] [--search auto] [--no-best] [--reuse] [--threshold T]

For each N: the Shopee-format table (the real table for N = 34,250 when it is there,
else `precompute scale-data`, cached in --work), the bundle (TF-IDF + phash, scope `all`
and the five folds; `precompute build` in a child process, its wall time and peak RSS;
`--reuse` keeps a bundle an earlier run built and reports the build figures that run
recorded next to it, scale-N.bundle.build.json, with its commit), then the app offscreen
on scope `all`, opened as the app opens a bundle (lazily, explorer.gui.app.open_window), at
the operating point an analyst works at: TF-IDF at the threshold tuned on fold 1 (what the
app's start tunes; `--threshold T` fixes another, e.g. 0.5, where the scale data predicts
nearly every candidate: the worst case): a first open (start to the first query shown, the
scope's arrays checked and stamped: explorer/core/bundle/stamps.py), then a later start in
a fresh process (the stamps found: start to the first query, RSS, slider moves around the
threshold, each error-case list refilled, one INB iteration at the same threshold) and
`explorer evaluate --best` (its wall time). Prints one row per N; `--json` prints the
rows as JSON (keys n, threshold, start_f1, build_s, build_peak_rss_mb, app_first_open_s,
app_start_s, app_rss_mb, slider_median_ms, case_list_max_ms, inb_iteration_s, best_s);
`--write` puts the table in the `scale` section of a Markdown file (`scale-fixed-threshold`
with --threshold). Issue 10's targets at 1,000,000 postings on 2 cores: build <= 30 min
and <= 8 GB; app start <= 5 s, RSS <= 6 GB; slider <= 150 ms median; each case list <=
500 ms; one INB iteration <= 20 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import DEFAULT_CSV, REPO, source_state, write_section
from results import cpu_model

REAL_N = 34_250
KEYS = ("n", "build_s", "build_peak_rss_mb", "app_start_s", "app_rss_mb",
        "slider_median_ms", "case_list_max_ms", "inb_iteration_s", "best_s")
TARGETS_1M = {"build_s": 1800, "build_peak_rss_mb": 8192, "app_start_s": 5,
              "app_rss_mb": 6144, "slider_median_ms": 150, "case_list_max_ms": 500,
              "inb_iteration_s": 20}


def _child_peak(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run cmd in a fresh wrapper process: (wall s, the command's peak RSS in MB, stdout).
    The wrapper is new, so RUSAGE_CHILDREN holds this command's peak only."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "w = time.perf_counter() - t; sys.stderr.write(r.stderr[-2000:]); "
               "print(r.stdout); print(r.returncode, w, "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True,
                          text=True, cwd=REPO, env=env)
    *out, last = proc.stdout.rstrip("\n").splitlines() or ["1 0 0"]
    rc, wall, peak = last.split()
    if int(rc) != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"bench: {' '.join(cmd[:3])} failed ({rc}): {tail[0]}")
    return float(wall), float(peak), "\n".join(out)


def table_for(n: int, work: Path, seed: int, real: Path) -> tuple[Path, str]:
    if n == REAL_N and real.is_file():
        return real, "real table"
    csv = work / f"scale-{n}-seed{seed}.csv"
    if not csv.exists():
        subprocess.run([sys.executable, "-m", "precompute", "scale-data", "--out", str(csv),
                        "--postings", str(n), "--seed", str(seed)], check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL)  # stdout is the report (--json)
    return csv, f"scale-data seed {seed}"


def build(csv: Path, out: Path, search: str, reuse: bool) -> dict:
    """{build_s, build_peak_rss_mb, built_at}: of this build, or with `reuse` of the earlier
    build recorded next to `out` (when the bundle and its record are both there)."""
    record = out.with_name(out.name + ".build.json")
    if reuse and record.is_file() and (out / "manifest.json").is_file():
        return json.loads(record.read_text())
    cmd = [sys.executable, "-m", "precompute", "build", "--csv", str(csv), "--out", str(out),
           "--text", "tfidf", "--image", "phash", "--force", "--quiet"]
    if search:
        cmd += ["--search", search]
    wall, peak, _ = _child_peak(cmd)
    got = {"build_s": wall, "build_peak_rss_mb": peak, "built_at": source_state()}
    record.write_text(json.dumps(got))
    return got


def best_s(bundle: Path) -> float:
    wall, _, _ = _child_peak(["explorer", "evaluate", str(bundle), "--best", "--scope", "fold0",
                              "--tune-on", "fold1", "--no-timing", "--json"])
    return wall


# --------------------------------------------------------------------------- the app child

APP = r"""
import json, os, sys, tempfile, time
t0 = time.perf_counter()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, sys.argv[2])
import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from bench_app import drag, drag_with_cases, move, rss_mb, wait
from explorer.core.config import InbStage, MatchConfig
from explorer.core.state import SettingsDoc
from explorer.gui.app import app_context, open_window, wait_for_view
from explorer.gui.settings import AppSettings
from pathlib import Path

bundle = Path(sys.argv[1])
t = float(sys.argv[4])
app = QApplication([])
settings = AppSettings(QSettings(os.path.join(tempfile.mkdtemp(), "s.ini"),
                                 QSettings.Format.IniFormat))
start_cfg = MatchConfig("single", ("tfidf",), (t,))
settings.save_state(bundle, SettingsDoc(start_cfg, "all"))  # open straight on scope all
w = open_window(bundle, app_context(settings, interactive=False))
w.resize(1600, 1000)
w.show()
err = wait_for_view(w, timeout_s=600)
w.repaint()
out = {"app_start_s": time.perf_counter() - t0, "app_rss_mb": rss_mb(), "error": err,
       "start_f1": w.view.snapshot.metrics.f1 if w.view is not None else None}
if sys.argv[3] == "start-only":
    w.close()
    print(json.dumps(out))
    sys.exit(0)
moves = [drag(w, "threshold0", float(v))
         for v in np.clip(np.round(np.linspace(t - 0.05, t + 0.05, 11), 3), 0, 1)]
out["slider_median_ms"] = float(np.median(moves))
w.tabs.setCurrentWidget(w.cases)
lists = {}
for index, kind in enumerate(w.cases.models):
    w.cases.setCurrentIndex(index)
    wait(w, timeout_s=600, signal=w.caseShown)
    both = np.array([drag_with_cases(w, float(v))
                     for v in np.clip(np.round([t - 0.02, t, t + 0.02], 3), 0, 1)])
    lists[kind] = float(np.median(both[:, 1] - both[:, 0]))
w.tabs.setCurrentIndex(0)
out["case_list_ms"] = lists
out["case_list_max_ms"] = max(lists.values())
out["inb_iteration_s"] = move(w, start_cfg.replace(inb=(InbStage(t),))) / 1e3
out["app_rss_end_mb"] = rss_mb()
w.close()
print(json.dumps(out))
"""


def _app_child(bundle: Path, what: str, stamps: str, threshold: float) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "EXPLORER_CHECK_STAMPS": stamps}
    proc = subprocess.run([sys.executable, "-c", APP, str(bundle), str(Path(__file__).parent),
                           what, str(threshold)], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=3600)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"bench: the app child failed: {tail[0]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if got.get("error"):
        raise SystemExit(f"bench: the app showed no view: {got['error']}")
    return got


TUNE = r"""
import sys
from pathlib import Path
from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.engine import Engine
from explorer.core.tune import tune
engine = Engine(Bundle.open(Path(sys.argv[1]), lazy=True), "fold1")
print(tune(engine, MatchConfig("single", ("tfidf",), (0.5,))).thresholds[0])
"""


def operating_threshold(bundle: Path, fixed: str) -> float:
    """The TF-IDF threshold the app is measured at: `fixed`, or tuned on fold 1 (in a
    child process, so the tuning's memory is not the parent's)."""
    if fixed != "tuned":
        return float(fixed)
    proc = subprocess.run([sys.executable, "-c", TUNE, str(bundle)], capture_output=True,
                          text=True, cwd=REPO, timeout=3600)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"bench: tuning the threshold on fold1 failed: {tail[0]}")
    return round(float(proc.stdout.split()[-1]), 3)


def measure_app(bundle: Path, threshold: float) -> dict:
    """The app's first open of the bundle (its scope checked, stamps written to a new
    folder), then a later start (the stamps found) with every other figure."""
    with tempfile.TemporaryDirectory(prefix="scale-stamps-") as stamps:
        first = _app_child(bundle, "start-only", stamps, threshold)
        got = _app_child(bundle, "all", stamps, threshold)
    got["app_first_open_s"] = first["app_start_s"]
    return got


# --------------------------------------------------------------------------- report


def row_text(r: dict) -> str:
    best = "-" if r["best_s"] is None else f"{r['best_s']:.0f}"
    return (f"| {r['n']:,} | {r['source']} | {r['threshold']:.3f} ({r['start_f1']:.3f}) | "
            f"{r['build_s']:.0f} | "
            f"{r['build_peak_rss_mb']:.0f} | {r['app_first_open_s']:.2f} | "
            f"{r['app_start_s']:.2f} | {r['app_rss_mb']:.0f} | "
            f"{r['slider_median_ms']:.0f} | {r['case_list_max_ms']:.0f} | "
            f"{r['inb_iteration_s']:.1f} | {best} |")


HEADER = ("| postings | table | threshold (F1 on all) | build s | build peak MB | "
          "first open s | app start s | app RSS MB | slider ms (median) | "
          "slowest case list ms | INB iteration s | --best s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--postings", type=int, nargs="+", required=True, metavar="N")
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="the real table (N = 34,250)")
    p.add_argument("--work", type=Path, default=Path("/tmp/explorer-scale"),
                   help="where the tables and bundles go (never the repository)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--search", default="", help="passed to precompute build --search")
    p.add_argument("--no-best", action="store_true", help="skip explorer evaluate --best")
    p.add_argument("--reuse", action="store_true",
                   help="keep a bundle built by an earlier run and report its build figures")
    p.add_argument("--threshold", default="tuned",
                   help="TF-IDF threshold of the app figures: a number, or tuned (on fold1)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--write", type=Path, metavar="MD")
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.postings:
        csv, source = table_for(n, args.work, args.seed, args.csv)
        bundle = args.work / f"scale-{n}.bundle"
        built = build(csv, bundle, args.search, args.reuse)
        threshold = operating_threshold(bundle, args.threshold)
        app = measure_app(bundle, threshold)
        row = {"n": n, "source": source, "threshold": threshold,
               "start_f1": app["start_f1"], **built,
               **{k: app[k] for k in ("app_start_s", "app_rss_mb", "slider_median_ms",
                                      "case_list_max_ms", "inb_iteration_s")},
               "case_list_ms": app["case_list_ms"], "app_rss_end_mb": app["app_rss_end_mb"],
               "app_first_open_s": app["app_first_open_s"],
               "best_s": None if args.no_best else best_s(bundle)}
        rows.append(row)
        if not args.json:
            if len(rows) == 1:
                print(HEADER)
            print(row_text(row), flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    if args.write:
        write_rows(args.write, rows, args)
    return 0


def write_rows(path: Path, rows: list[dict], args: argparse.Namespace) -> None:
    """Put the rows in the `scale` section's table, replacing the rows of the same N that
    an earlier run wrote (each row names its run below the table) and keeping the others."""
    # a run at a fixed threshold (the worst case) keeps its own table
    name = "scale" if args.threshold == "tuned" else "scale-fixed-threshold"
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    old = text[text.find(start):text.find(end)] if start in text and end in text else ""
    kept = {}  # N -> (table line, provenance line) of earlier runs
    for line in old.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].replace(",", "").isdigit():
            kept[int(cells[0].replace(",", ""))] = [line, ""]
        elif line.startswith("- N = ") and line[6:].split(":")[0].replace(",", "").isdigit():
            kept.setdefault(int(line[6:].split(":")[0].replace(",", "")), ["", ""])[1] = line
    fixed = "" if args.threshold == "tuned" else f" --threshold {args.threshold}"
    run = (f"`python bench/scale.py --postings {' '.join(map(str, args.postings))}"
           f"{' --reuse' if args.reuse else ''}{' --no-best' if args.no_best else ''}"
           f"{fixed}` on "
           f"{cpu_model()}, source {source_state()}")
    for r in rows:
        cases = ", ".join(f"{k} {v:.0f} ms" for k, v in r["case_list_ms"].items())
        built = f"; build from {r['built_at']}" if r.get("built_at") else ""
        kept[r["n"]] = [row_text(r), f"- N = {r['n']:,}: {run}{built}; case lists: {cases}; "
                                     f"RSS after the INB iteration {r['app_rss_end_mb']:.0f} MB"]
    order = sorted(n for n in kept if kept[n][0])
    title = ("Scale (issue 10)" if name == "scale" else
             f"Scale at a fixed threshold ({args.threshold}, issue 10)")
    body = (f"## {title}\n\nRows from `python bench/scale.py` (one run may write "
            "some sizes only: each row's run is named below the table). Targets at "
            "1,000,000: " + ", ".join(f"{k} <= {v:g}" for k, v in TARGETS_1M.items())
            + ".\n\n" + HEADER + "\n" + "\n".join(kept[n][0] for n in order) + "\n\n"
            + "\n".join(kept[n][1] for n in order if kept[n][1]))
    write_section(path, name, body)


if __name__ == "__main__":
    sys.exit(main())
