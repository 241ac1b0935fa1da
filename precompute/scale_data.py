"""`precompute scale-data`: a Shopee-format CSV of N postings without images, for benches
and tests at any size (up to millions of rows in about a minute per million).

Titles come from the demo's catalogue grown procedurally (scale_catalogue.py) with the
demo's seller noise (scale_titles.py); group sizes follow the real table's distribution;
phashes agree within groups the way the real ones do (scale_phash.py); `image` names a
file that is never written. Deterministic: the same N and seed give the same bytes.

The CSV is written to a temporary file beside the target and renamed; a sidecar
`<out>.json` stamp (the generator, N, seed and the file's sha256) marks it as ours, and
`--force` replaces only a file whose header and stamp say this command wrote it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.core.atomic_write import UnsafeTarget, write_atomic
from precompute.errors import InputError
from precompute.scale_catalogue import ScaleProduct, make_scale_products
from precompute.scale_phash import group_hashes
from precompute.scale_titles import FastRandom, group_titles

MIN_POSTINGS, MAX_POSTINGS = 2, 5_000_000
COLUMNS = ("posting_id", "image", "image_phash", "title", "label_group")
HEADER = ",".join(COLUMNS)
GENERATOR = "precompute scale-data"

# Group sizes of the real train.csv (measured once: size -> number of groups; 11,014
# groups, 34,250 rows, 63.4% of the groups are pairs, the largest hold 51 postings).
REAL_GROUP_SIZES = {
    2: 6979, 3: 1779, 4: 862, 5: 468, 6: 282, 7: 154, 8: 118, 9: 91, 10: 48, 11: 38, 12: 39,
    13: 28, 14: 19, 15: 19, 16: 13, 17: 9, 18: 5, 19: 5, 20: 6, 21: 6, 22: 6, 23: 4, 24: 2,
    25: 2, 26: 1, 27: 1, 30: 1, 31: 2, 32: 3, 33: 3, 34: 3, 35: 4, 36: 1, 37: 1, 41: 1,
    45: 1, 46: 2, 49: 1, 51: 7}
MAX_GROUP = max(REAL_GROUP_SIZES)


def parse_count(text: str, option: str = "--postings") -> int:
    """The number of postings asked for, or a one-line InputError naming the option."""
    try:
        n = int(str(text).strip().replace("_", ""))
    except ValueError:
        raise InputError(f"{option}: {text!r} is not a whole number") from None
    if n < MIN_POSTINGS:
        raise InputError(f"{option}: {n} is too small (at least {MIN_POSTINGS})")
    if n > MAX_POSTINGS:
        raise InputError(f"{option}: {n} is too large (at most {MAX_POSTINGS:,})")
    return n


def parse_seed(text: str) -> int:
    try:
        seed = int(str(text).strip())
    except ValueError:
        raise InputError(f"--seed: {text!r} is not a whole number") from None
    if not 0 <= seed < 2**63:
        raise InputError(f"--seed: {seed} is out of range (0 to 2**63 - 1)")
    return seed


def group_sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Group sizes summing to `n`, drawn from the real table's distribution (2..51)."""
    values = np.array(list(REAL_GROUP_SIZES), dtype=np.int64)
    probs = np.array(list(REAL_GROUP_SIZES.values()), dtype=float)
    probs /= probs.sum()
    draws = rng.choice(values, size=int(n / (values @ probs) * 1.05) + 16, p=probs)
    while draws.sum() < n:
        draws = np.concatenate([draws, rng.choice(values, size=len(draws), p=probs)])
    sizes = draws[:int(np.searchsorted(np.cumsum(draws), n)) + 1].copy()
    excess = int(sizes.sum()) - n
    if excess and sizes[-1] - excess >= 2:
        sizes[-1] -= excess
    elif excess:   # the last group would be a single posting: give it to another group
        sizes = sizes[:-1]
        room = np.flatnonzero(sizes < MAX_GROUP)
        sizes[room[int(rng.integers(len(room)))]] += n - int(sizes.sum())
    return sizes


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` distinct label_group ids shaped like the real ones (9-10 digits)."""
    labels = np.unique(rng.integers(10**8, 2**32, size=n + 16))
    while len(labels) < n:
        labels = np.unique(np.concatenate([labels, rng.integers(10**8, 2**32, size=n)]))
    return rng.permutation(labels)[:n]


def scale_table(n: int, seed: int = 0) -> pd.DataFrame:
    """The scale data: `n` postings (rows shuffled) in the Shopee columns."""
    rng = np.random.default_rng([seed, 1])
    sizes = group_sizes(rng, n)
    fast = FastRandom(seed)
    products = make_scale_products(fast, len(sizes))
    products = [products[i] for i in rng.permutation(len(products))]
    family = np.array([p.family for p in products], dtype=np.int64)
    shares = np.array([p.family_type in ("pack", "stock") for p in products])
    hashes = group_hashes(rng, sizes, family, shares)
    titles = [t for p, s in zip(products, sizes.tolist(), strict=True)
              for t in group_titles(fast, p, s)]
    labels = np.repeat(_labels(rng, len(sizes)), sizes)
    order = rng.permutation(n)
    names = rng.bytes(16 * n).hex()
    return pd.DataFrame({
        "posting_id": [f"scale_{i}" for i in range(n)],
        "image": [f"{names[32 * i:32 * i + 32]}.jpg" for i in range(n)],
        "image_phash": [f"{h:016x}" for h in hashes[order].tolist()],
        "title": [titles[i] for i in order.tolist()],
        "label_group": labels[order]}, columns=list(COLUMNS))


def stamp_path(out: Path) -> Path:
    return out.with_name(out.name + ".json")


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read_stamp(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) and record.get("generator") == GENERATOR \
        else None


def _is_ours(out: Path) -> bool:
    """Whether `out` is a plain file this command wrote and nobody changed since."""
    record = _read_stamp(stamp_path(out))
    if record is None or out.is_symlink() or not out.is_file():
        return False
    with open(out, "rb") as f:
        if f.readline().rstrip(b"\r\n") != HEADER.encode():
            return False
    return record.get("sha256") == _sha256(out)


def check_target(out: Path, force: bool) -> None:
    """Refuse (one line) a target we must not write: a missing or non-folder parent, a
    folder, a link, or an existing file that is not ours (or ours without --force)."""
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{out}: the folder {parent} does not exist")
    stamp = stamp_path(out)
    if out.is_symlink() or stamp.is_symlink():
        raise InputError(f"{out}: is a symbolic link (or its stamp {stamp.name} is); "
                         "choose another --out")
    if out.exists():
        if out.is_dir():
            raise InputError(f"{out}: is a folder; --out names the CSV file to write")
        if not force:
            raise InputError(f"{out}: exists; --force replaces a file precompute "
                             "scale-data wrote")
        if not _is_ours(out):
            raise InputError(f"{out}: exists and was not written by precompute scale-data "
                             f"(no matching {stamp.name}); not replaced")
    elif stamp.exists() and _read_stamp(stamp) is None:
        raise InputError(f"{stamp}: exists and is not a precompute scale-data stamp; "
                         "choose another --out")


def _write_atomic(path: Path, write) -> None:
    """explorer.core.atomic_write: a new temporary file (never an existing path), then a
    rename over `path`, which must be a regular file or absent."""
    try:
        write_atomic(path, write)
    except UnsafeTarget as exc:
        raise InputError(str(exc)) from None


def write_scale_data(out: str | Path, n: int, *, seed: int = 0, force: bool = False) -> Path:
    """Write the scale data of `n` postings to `out` (and its stamp); return `out`."""
    out = Path(out)
    if not MIN_POSTINGS <= n <= MAX_POSTINGS:
        raise InputError(f"--postings: {n} is out of range ({MIN_POSTINGS} to {MAX_POSTINGS:,})")
    check_target(out, force)
    table = scale_table(n, seed)
    check_target(out, force)   # again: something may have appeared while generating
    _write_atomic(out, lambda fh: table.to_csv(fh, index=False, lineterminator="\n",
                                                encoding="utf-8"))
    record = {"generator": GENERATOR, "postings": n, "seed": seed, "sha256": _sha256(out)}
    _write_atomic(stamp_path(out), lambda fh: fh.write((json.dumps(record) + "\n").encode()))
    return out


__all__ = ["REAL_GROUP_SIZES", "ScaleProduct", "group_sizes", "parse_count", "parse_seed",
           "scale_table", "write_scale_data"]
