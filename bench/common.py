"""Shared helpers of the benchmark scripts: where the real Shopee table is, a cached
TF-IDF + phash bundle of it, timers and peak memory.

The real table is read from ../shared/data/shopee/train.csv (relative to the repository
root) or from --csv; it is never copied into the repository. When it is absent the
scripts print one line starting with "skipped:" and exit 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO.parent / "shared" / "data" / "shopee" / "train.csv"
CACHE = REPO / "bench" / ".cache"
SCOPES = ("all", "fold0", "fold1", "fold2", "fold3", "fold4")
MODALITIES = ("tfidf", "phash")
K = 50  # neighbours per posting, `precompute build`'s default

if str(REPO) not in sys.path:  # run as `python bench/x.py` without installing the repo
    sys.path.insert(0, str(REPO))


# --------------------------------------------------------------------------- arguments


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV,
                   help=f"the real Shopee train.csv (default {DEFAULT_CSV})")
    p.add_argument("--bundle", type=Path, default=None,
                   help="TF-IDF + phash bundle of that table to reuse (built there when "
                        "missing); default a cached one under bench/.cache/")
    p.add_argument("--rebuild", action="store_true",
                   help="build the bundle afresh even when a matching one exists")


def require_csv(csv: Path) -> Path:
    """The CSV path, or exit 0 with a one-line 'skipped:' message when it is absent."""
    csv = Path(csv)
    if not csv.is_file():
        print(f"skipped: real Shopee table not found at {csv} (pass --csv)")
        sys.exit(0)
    return csv


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- the bundle


@dataclass
class BundleInfo:
    path: Path
    built: bool                  # True: built by this call
    build_s: float | None        # wall time of `precompute build` when built
    build_peak_rss_mb: float | None


def _matches(bundle: Path, sha: str) -> str | None:
    """None when `bundle` is a complete TF-IDF + phash, six-scope bundle of the table with
    this sha256; else why not."""
    try:
        man = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no readable manifest"
    if man.get("dataset", {}).get("sha256") != sha:
        return "built from another table"
    if tuple(man.get("scopes", ())) != SCOPES:
        return f"scopes {man.get('scopes')} instead of {list(SCOPES)}"
    mods = {m.get("name"): m for m in man.get("modalities", ())}
    if sorted(mods) != sorted(MODALITIES):
        return f"modalities {list(mods)} instead of {list(MODALITIES)}"
    from explorer.core.bundle import SCHEMA_VERSION
    from precompute.tfidf import PARAMS

    if man.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version {man.get('schema_version')}, this code writes {SCHEMA_VERSION}"
    if man.get("k") != K:
        return f"k = {man.get('k')} instead of {K}"
    stored = mods["tfidf"].get("params") or {}
    # the build also records how each scope was searched ("search"): not a TF-IDF setting
    if json.loads(json.dumps(PARAMS)) != {k: stored.get(k) for k in PARAMS}:
        return "built with other TF-IDF parameters than precompute.tfidf.PARAMS"
    return None


def build_bundle(csv: Path, out: Path) -> tuple[float, float]:
    """Run `precompute build` (TF-IDF + phash, all scopes) in a child process; returns
    (wall seconds, the child's peak RSS in MB)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "precompute", "build", "--csv", str(csv), "--out", str(out),
           "--text", "tfidf", "--image", "phash", "--k", str(K), "--force", "--quiet"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"bench: precompute build failed ({proc.returncode}): {tail[0]}")
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, child_rss


def get_bundle(csv: Path, bundle: Path | None = None, rebuild: bool = False,
               log: Callable[[str], None] = print) -> BundleInfo:
    """Reuse a matching bundle (the given folder, else the cache's) or build one."""
    sha = file_sha256(csv)
    path = Path(bundle) if bundle is not None else CACHE / f"shopee-{sha[:12]}.bundle"
    if not rebuild and path.exists():
        why = _matches(path, sha)
        if why is None:
            return BundleInfo(path, False, None, None)
        if bundle is not None:
            raise SystemExit(f"bench: --bundle {path}: {why}; pass --rebuild to replace it")
        log(f"cached bundle {path} is stale ({why}); rebuilding")
    log(f"building bundle {path} from {csv} ...")
    wall, rss = build_bundle(csv, path)
    return BundleInfo(path, True, wall, rss)


# --------------------------------------------------------------------------- timing


class Timer:
    s: float = float("nan")

    @property
    def ms(self) -> float:
        return self.s * 1e3


@contextmanager
def timer() -> Iterator[Timer]:
    """`with timer() as t: ...` then t.s / t.ms."""
    t = Timer()
    start = time.perf_counter()
    try:
        yield t
    finally:
        t.s = time.perf_counter() - start


def time_calls(fn: Callable[[], object], repeat: int, warmup: int = 0) -> np.ndarray:
    """Wall seconds of `repeat` calls of fn (after `warmup` untimed calls)."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeat)
    for i in range(repeat):
        start = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - start
    return out


# --------------------------------------------------------------------------- memory


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> float | None:
    """Reset the kernel's peak-RSS mark of this process (Linux: clear_refs 5) and return
    the current mark in MB, or None where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _vm_hwm_mb()


def peak_rss_since_reset_mb() -> float | None:
    return _vm_hwm_mb()


# --------------------------------------------------------------------------- provenance


def source_state() -> str:
    """'commit abc1234' plus the engine files changed in the working tree (read-only git)."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO,
                              capture_output=True, text=True, check=False)
        return proc.stdout.rstrip("\n") if proc.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = [line[3:] for line in git("status", "--porcelain", "--", "explorer",
                                        "precompute").splitlines() if line]
    text = f"commit {head}"
    if changed:
        text += f", uncommitted changes in {', '.join(changed)}"
    return text


# --------------------------------------------------------------------------- output


def figure(name: str, value: float, unit: str, target: float | None = None,
           fmt: str = "{:.1f}", note: str = "") -> bool:
    """Print `name: value unit (target <= T unit, OK|OVER)`; returns True when within."""
    text = f"{name}: {fmt.format(value)} {unit}"
    ok = True
    if target is None:
        text += " (no target)"
    else:
        ok = bool(value <= target)
        text += f" (target <= {target:g} {unit}, {'OK' if ok else 'OVER'})"
    if note:
        text += f" [{note}]"
    print(text, flush=True)
    return ok


# --------------------------------------------------------------------------- documents


def write_section(path: Path, name: str, body: str) -> None:
    """Replace the block `<!-- section:NAME -->...<!-- /section:NAME -->` of a generated
    Markdown file (or append it), leaving the sections other scripts wrote untouched."""
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    a, b = text.find(start), text.find(end)
    if a >= 0 and b > a:
        text = text[:a] + block + text[b + len(end):]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
