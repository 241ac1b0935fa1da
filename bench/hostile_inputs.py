"""Bad input through the real commands, as a new user meets it (issue 9's sweep).

Builds a small bundle from the first rows of the real table (or a generated table when
it is absent), then runs `explorer evaluate`, `explorer --screenshot` and `precompute
build` as child processes on: damaged copies of every bundle file (emptied, a FIFO, a
link out of the folder, random bytes), malformed settings files, out-of-range options and
bad build targets. Prints how many inputs ended with anything but one line and exit 2
within the time limit (a traceback, a hang, a multi-line error); the goal is 0.

    python bench/hostile_inputs.py [--csv CSV] [--rows 400] [--timeout 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from common import DEFAULT_CSV

SETTINGS = {
    "list.json": b"[1]", "string.json": b'"tfidf"', "latin1.json": b'{"mode": "tfidf\xe9"}',
    "nan.json": b'{"mode": "tfidf", "thresholds": [NaN]}',
    "huge.json": b'{"mode": "tfidf", "thresholds": [1e309]}',
    "absurd.json": b'{"mode": "tfidf", "thresholds": [1e9]}',
    "bool.json": b'{"mode": "tfidf", "thresholds": [true]}',
    "nested.json": b'{"config": {"mode": ["tfidf"], "thresholds": [0.5]}}',
    "inb.json": b'{"mode": "tfidf", "thresholds": [0.5], "inb": [1, 2]}',
    "weights.json": b'{"mode": "sum:tfidf,phash:1,x", "thresholds": [0.5]}',
    "empty.json": b"", "deep.json": b"[" * 100_000,
}
OPTIONS = (
    ["--mode", "sum:tfidf", "--threshold", "0.5"], ["--mode", ":", "--threshold", "0.5"],
    ["--mode", "tfidf", "--threshold", "nan"], ["--mode", "tfidf", "--threshold", "1e9"],
    ["--mode", "tfidf", "--threshold", "0.5", "--inb", "-1"],
    ["--mode", "sum:tfidf,phash:nan,1", "--threshold", "0.5"],
    ["--mode", "union:tfidf,phash", "--threshold", "0.5", "0.5", "--inb", "1"],
    ["--mode", "tfidf", "--threshold", "0.5", "--scope", "fold01"],
    ["--mode", "tfidf", "--threshold", "0.5", "--export-csv", "FIFO"],
    ["--mode", "tfidf", "--threshold", "0.5", "--export-csv", "/"],
    ["--mode", "tfidf", "--threshold", "0.5", "--export-csv", "CSV/x.csv"],
)


def _table(csv: Path, rows: int) -> pd.DataFrame:
    if csv.is_file():
        return pd.read_csv(csv, nrows=rows)
    rng = np.random.default_rng(0)  # no real table: groups of 2-4 with shared words
    groups = np.repeat(np.arange(rows // 3), 3)[:rows]
    words = np.array(["sabun", "botol", "lemon", "500ml", "1l", "pedas", "asli", "kopi"])
    return pd.DataFrame({
        "posting_id": [f"p{i}" for i in range(rows)], "image": [f"{i}.jpg" for i in range(rows)],
        "image_phash": [f"{int(rng.integers(0, 2**63)):016x}" for _ in range(rows)],
        "title": [" ".join(rng.choice(words, 3)) + f" g{g}" for g in groups],
        "label_group": groups})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    p.add_argument("--rows", type=int, default=400)
    p.add_argument("--timeout", type=float, default=60)
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(root / "cfg"),
           "XDG_CACHE_HOME": str(root / "cache")}
    bin_dir = Path(sys.executable).parent
    failures: list[str] = []
    count = 0

    def run(*cmd: str) -> None:
        nonlocal count
        count += 1
        exe = str(bin_dir / cmd[0]) if (bin_dir / cmd[0]).exists() else cmd[0]
        try:
            done = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, cwd=root,
                                  env=env, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            failures.append(f"hang: {' '.join(cmd)}")
            return
        lines = [ln for ln in done.stderr.splitlines()
                 if ln.strip() and "propagateSizeHints" not in ln
                 and not ln.startswith("explorer: warning")]
        if done.returncode != 2 or len(lines) != 1 or "Traceback" in done.stderr:
            failures.append(f"rc {done.returncode}, {len(lines)} lines: {' '.join(cmd)}: "
                            f"{(lines or [''])[-1][:160]}")

    csv = root / "train.csv"
    _table(args.csv, args.rows).to_csv(csv, index=False)
    ok = root / "ok.bundle"
    subprocess.run([str(bin_dir / "precompute"), "build", "--csv", str(csv), "--out", str(ok),
                    "--k", "10", "--quiet"], check=True, env=env)
    os.mkfifo(root / "FIFO")
    for name, data in SETTINGS.items():
        (root / name).write_bytes(data)
        run("explorer", "evaluate", str(ok), "--settings", name)
        run("explorer", str(ok), "--settings", name, "--screenshot", "x.png")
    for opts in OPTIONS:
        run("explorer", "evaluate", str(ok), *[o.replace("CSV", str(csv)) for o in opts])
    damaged = root / "damaged.bundle"
    for f in sorted(q for q in ok.rglob("*") if q.is_file()):
        for how in ("empty", "fifo", "link", "garbage"):
            shutil.rmtree(damaged, ignore_errors=True)
            shutil.copytree(ok, damaged)
            g = damaged / f.relative_to(ok)
            g.unlink()
            if how == "empty":
                g.write_bytes(b"")
            elif how == "fifo":
                os.mkfifo(g)
            elif how == "link":
                g.symlink_to(csv)
            else:
                g.write_bytes(np.random.default_rng(len(str(g))).bytes(200))
            run("explorer", "evaluate", str(damaged), "--mode", "tfidf", "--threshold", "0.5")
        if f.name == "manifest.json":
            run("explorer", str(damaged), "--screenshot", "y.png")
    build = ("precompute", "build", "--quiet", "--k", "5", "--csv")
    run(*build, "FIFO", "--out", "a.bundle")
    run(*build, str(csv), "--out", f"{csv}/b.bundle")
    run(*build, str(csv), "--out", str(root), "--force")
    run(*build, str(csv), "--out", str(ok))
    run(*build, str(csv), "--out", "c.bundle", "--k", "0")
    run(*build, str(csv), "--out", "d.bundle", "--fuse", "a,b:nan,1")
    for line in failures:
        print(line)
    print(f"{count} bad inputs, {len(failures)} not answered with one line and exit 2 "
          f"within {args.timeout:.0f} s")
    shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
