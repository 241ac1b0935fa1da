"""The built-in demo dataset: a Shopee-format table of synthetic product postings.

`generate_demo(out)` draws every picture with PIL and writes `out/train.csv`
(posting_id, image, image_phash, title, label_group) and `out/train_images/*.jpg`, offline
and deterministically: the same seed gives byte-identical files on the same Pillow/libjpeg.

The data is built so that no single signal is enough, like the real table:
- (a) pack sizes: one product in 2-3 pack sizes (250ml / 500ml) looks the same in every
  picture (some pictures are near-identical shots); only the titles (and a small label on
  the picture) tell the label groups apart;
- (b) multi-look groups: about 15% of the postings in groups of 3+ are a quite different
  photo of the product (two-pack, flat-lay, close-up, next to its box, a room scene);
- (c) generic titles ("Botol minum murah"): the picture carries the group;
- (d) generic pictures: several products of different brands share one stock look (same
  shape, colour and a generic label); the title carries the group;
- colour variants: one brand and line in several colours or flavours, with titles that
  differ by one word.
On top of that the titles carry seller noise (prefixes, casing, typos, word order, the
quantity written several ways, Indonesian and English words) and the pictures vary in
background, crop, zoom, rotation, lighting, JPEG quality and stickers.

With `metadata=True` the generator also writes `out/demo_meta.json`: per label group the
product's attributes, its family and the hard cases it belongs to.

With `label_errors=s` about a share s of the label groups get a deliberate label error, so
a label audit can be scored against known answers: a product `split` over two
label_groups, two products `merged` under one, or one posting `moved` to another
product's group. Only the label_group column lies (pictures and titles are the true
product's, drawn from the same stream as without errors); `out/label_errors.csv` lists
every posting whose label was changed (demo_meta.json keeps the true groups).
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from precompute.demo_catalogue import LINES, PALETTE, Product, group_sizes, make_products, pick
from precompute.demo_drawing import draw_product
from precompute.demo_photos import LAYOUTS_ALT, Shot, compose, jpeg_bytes, random_shot, with_shadow
from precompute.demo_titles import pack_text, seller_title

__all__ = ["DEFAULT_POSTINGS", "ERROR_KINDS", "HARD_CASES", "LABEL_ERRORS_FILE",
           "MAX_LABEL_ERRORS", "check_label_errors", "generate_demo", "label_error_summary",
           "pack_text", "plan_demo", "plan_label_errors"]

DEFAULT_POSTINGS = 1600
MIN_POSTINGS = 20
HARD_CASES = ("a_pack_size", "b_multi_look", "c_generic_title", "d_generic_image",
              "colour_variant")
ERROR_KINDS = ("split", "merged", "moved")
MAX_LABEL_ERRORS = 0.5  # beyond half the groups the "true" labels would be the minority
LABEL_ERRORS_FILE = "label_errors.csv"
_ERROR_STREAM = 0x1ABE1  # the errors' own generator: the rest of the data does not move

# ------------------------------------------------------------------------------ generator


def _plan(rng: np.random.Generator, n_postings: int
          ) -> tuple[list[int], list[Product], list[int]]:
    """Group sizes, one product per group and the label_group ids (the first draws of
    the seed's generator, so plan_demo and generate_demo agree)."""
    if n_postings < MIN_POSTINGS:
        raise ValueError(f"n_postings must be at least {MIN_POSTINGS}, got {n_postings}")
    sizes = group_sizes(rng, n_postings)
    products = make_products(rng, len(sizes))
    order = rng.permutation(len(products))       # products to groups, independent of size
    products = [products[i] for i in order]
    labels: list[int] = []
    seen: set[int] = set()
    while len(labels) < len(sizes):
        v = int(rng.integers(10**8, 2**32))
        if v not in seen:
            seen.add(v)
            labels.append(v)
    return sizes, products, labels


def _group_record(size: int, p: Product, label: int) -> dict:
    look = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(p.look).items()}
    look["body"] = PALETTE[p.look.body][0]
    look["pattern_colour"] = PALETTE[p.look.pattern_colour][0]
    return {"label_group": label, "size": size, "family": p.family,
            "family_type": p.family_type, "hard_cases": sorted(p.cases), "brand": p.brand,
            "kind": p.kind, "line": LINES[p.line].names[0], "variant": p.variant,
            "colour": PALETTE[p.colour][0], "amount": p.amount, "unit": p.unit,
            "pack_text": pack_text(p.amount, p.unit), "image_text": p.image_text,
            "look": look}


def plan_demo(n_postings: int = DEFAULT_POSTINGS, seed: int = 0) -> list[dict]:
    """The label groups `generate_demo` would write, without drawing anything: per group
    its size, label_group, product attributes, family and hard cases (all but
    "b_multi_look", which is decided photo by photo)."""
    sizes, products, labels = _plan(np.random.default_rng(seed), n_postings)
    return [_group_record(*args) for args in zip(sizes, products, labels, strict=True)]


def generate_demo(out: str | Path, *, n_postings: int = DEFAULT_POSTINGS, seed: int = 0,
                  progress: bool = True, metadata: bool = False,
                  label_errors: float = 0.0) -> Path:
    """Write the demo dataset into `out` and return the path of its `train.csv`.

    `out/train.csv` has the Shopee columns (posting_id, image, image_phash, title,
    label_group; the phash is imagehash's of the written JPEG), `out/train_images/` one
    JPEG per posting, and with `metadata` `out/demo_meta.json` describes every group (see
    `plan_demo`, plus its posting ids and which of them are different-looking photos).
    With `label_errors` (a share of the label groups, 0 to MAX_LABEL_ERRORS) some labels
    lie and `out/label_errors.csv` says which (see `plan_label_errors`); without, a
    label_errors.csv an earlier run left there is removed. A label_errors.csv this
    generator did not write is never replaced or removed: it is refused, before anything
    is written.
    The same seed, n_postings and label_errors give byte-identical files (with the same
    Pillow, libjpeg and FreeType). Files of the same names are overwritten, nothing else
    in `out` is touched; the CSV is written last, so an interrupted run leaves no CSV
    behind.
    """
    import imagehash

    label_errors = check_label_errors(label_errors)
    out = Path(out)
    truth = out / LABEL_ERRORS_FILE
    if truth.exists() and not _ours(truth):  # before anything is written
        raise ValueError(f"{truth}: not a label-error list this generator wrote; it is never "
                         "replaced or removed: move it, or choose another folder")
    rng = np.random.default_rng(seed)
    sizes, products, labels = _plan(rng, n_postings)
    images = out / "train_images"
    images.mkdir(parents=True, exist_ok=True)

    # Shared shots: pack-size siblings and stock clusters reuse one photo set-up.
    family_shot: dict[int, Shot] = {}
    layers: dict[tuple[int, str], Image.Image] = {}

    def layer_of(gi: int, kind: str = "") -> Image.Image:
        key = (gi, kind)
        if key not in layers:
            p = products[gi]
            look = p.look if not kind else replace(p.look, kind=kind, width=0.5, label="band")
            sub = "" if "d_generic_image" in p.cases else p.variant
            pack = pack_text(p.amount, p.unit) if p.show_pack else ""
            layers[key] = with_shadow(draw_product(look, p.image_text, sub, pack))
        return layers[key]

    postings: list[dict] = []
    for gi, (size, p) in enumerate(zip(sizes, products, strict=True)):
        shots: list[Shot] = []
        for j in range(size):
            if size >= 3 and j > 0 and rng.random() < 0.17:   # hard case (b)
                shot = random_shot(rng, pick(rng, LAYOUTS_ALT))
            elif shots and rng.random() < 0.18:                # the seller reused a photo
                base = shots[int(rng.integers(len(shots)))]
                shot = replace(base, quality=int(rng.integers(40, 96)),
                               size=(int(rng.integers(256, 401)),) * 2)
            elif p.family_type in ("pack", "stock") and rng.random() < 0.35:
                if p.family not in family_shot:                # one photo set-up, 2+ groups
                    family_shot[p.family] = random_shot(rng)
                shot = replace(family_shot[p.family], quality=int(rng.integers(40, 96)))
            else:
                shot = random_shot(rng)
            shots.append(shot)
            postings.append({"group": gi, "shot": shot, "title": seller_title(rng, p),
                             "deco_seed": int(rng.integers(2**31))})
    for gi in sorted({q["group"] for q in postings if q["shot"].layout != "normal"}):
        products[gi].cases.append("b_multi_look")

    row_order = rng.permutation(len(postings))
    names: set[str] = set()
    rows = []
    for n, idx in enumerate(tqdm(row_order, desc="demo images", unit="img",
                                 disable=not progress)):
        q = postings[int(idx)]
        gi, shot = q["group"], q["shot"]
        name = rng.bytes(16).hex()
        while name in names:
            name = rng.bytes(16).hex()
        names.add(name)
        extra = layer_of(gi, "box") if shot.layout == "withbox" else None
        img = compose(shot, layer_of(gi), extra, products[gi].kind,
                      np.random.default_rng(q["deco_seed"]))
        data = jpeg_bytes(img, shot.quality)
        (images / f"{name}.jpg").write_bytes(data)
        with Image.open(io.BytesIO(data)) as im:
            phash = str(imagehash.phash(im))
        q["posting_id"] = f"demo_{n}"
        q["row"] = n
        rows.append({"posting_id": f"demo_{n}", "image": f"{name}.jpg", "image_phash": phash,
                     "title": q["title"], "label_group": labels[gi]})

    if metadata:
        _write_meta(out / "demo_meta.json", seed, sizes, products, labels, postings)
    _apply_label_errors(out / LABEL_ERRORS_FILE, rows, postings, labels, label_errors, seed)
    csv = out / "train.csv"
    table = pd.DataFrame(rows, columns=["posting_id", "image", "image_phash", "title",
                                        "label_group"])
    _write_csv(csv, table)
    return csv


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    path.write_bytes(table.to_csv(index=False, lineterminator="\n").encode("utf-8"))


# ----------------------------------------------------------------------- label errors


TRUTH_HEADER = "posting_id,kind,true_label,given_label"
_DEMO_ID = re.compile(r"demo_\d+")


def _ours(path: Path) -> bool:
    """True when `path` is a label_errors.csv as `_apply_label_errors` writes it (its
    header, demo posting ids, the error kinds): only such a file is replaced or removed."""
    if not path.is_file() or path.is_symlink():
        return False
    try:
        if path.read_bytes()[:len(TRUTH_HEADER) + 1] != (TRUTH_HEADER + "\n").encode():
            return False
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError):
        return False
    return (list(table.columns) == TRUTH_HEADER.split(",")
            and table["posting_id"].map(lambda x: bool(_DEMO_ID.fullmatch(x))).all()
            and table["kind"].isin(ERROR_KINDS).all())


def check_label_errors(share: object) -> float:
    """The share of label groups to mislabel as a float, or a one-line ValueError."""
    ok = isinstance(share, (int, float, np.integer, np.floating)) and not isinstance(share, bool)
    if not ok or not (math.isfinite(share) and 0 <= share <= MAX_LABEL_ERRORS):
        raise ValueError(f"label_errors must be a number from 0 to {MAX_LABEL_ERRORS}, "
                         f"got {share!r}")
    return float(share)


def _error_counts(n_groups: int, share: float) -> dict[str, int]:
    """Groups to mislabel per kind: round(share * groups) split evenly over the kinds, and
    at least one of each whenever any error is asked for (a test needs every kind)."""
    n = max(round(share * n_groups), len(ERROR_KINDS)) if share > 0 else 0
    return {kind: n // len(ERROR_KINDS) + (i < n % len(ERROR_KINDS))
            for i, kind in enumerate(ERROR_KINDS)}


def _take(free: list[int], ok) -> int | None:
    """Remove and return the first group of `free` that passes `ok`, None if none does."""
    for i, g in enumerate(free):
        if ok(g):
            return free.pop(i)
    return None


def _choose_groups(rng: np.random.Generator, sizes: Sequence[int], share: float
                   ) -> list[tuple[str, int, int | None]]:
    """(kind, source group, partner group) per error. Sources and partners are all
    different groups, so every lie is one clean error; kinds take turns, so when groups
    run out every kind still has its share (split and moved need 2+ postings)."""
    counts = _error_counts(len(sizes), share)
    free = [int(g) for g in rng.permutation(len(sizes))]
    chosen: list[tuple[str, int, int | None]] = []
    for turn in range(max(counts.values(), default=0)):
        for kind in ERROR_KINDS:
            if turn >= counts[kind] or (kind != "split" and len(free) < 2):
                continue
            source = _take(free, lambda g, k=kind: k == "merged" or sizes[g] >= 2)
            if source is None:
                continue
            partner = None if kind == "split" else free.pop(0)
            chosen.append((kind, source, partner))
    return chosen


def _fresh_label(rng: np.random.Generator, used: set[int]) -> int:
    """A label_group value no group has (drawn like _plan's)."""
    while True:
        v = int(rng.integers(10**8, 2**32))
        if v not in used:
            used.add(v)
            return v


def plan_label_errors(members: Sequence[Sequence[int]], labels: Sequence[int],
                      share: float, seed: int) -> list[tuple[int, str, int, int]]:
    """The deliberate label errors: (posting, kind, true label, given label) per posting
    whose label is changed, postings being the indices in `members` (per label group).

    About `share` of the groups are sources (at least one per kind when share > 0):
    `split` gives 1 to size-1 of its postings a new label; `merged` gives all its postings
    the label of a partner group (another product); `moved` gives one of its postings the
    label of a partner group. Deterministic for the seed, independent of the rest of the
    demo's random draws."""
    share = check_label_errors(share)
    rng = np.random.default_rng([seed, _ERROR_STREAM])
    used = set(labels)
    out: list[tuple[int, str, int, int]] = []
    for kind, source, partner in _choose_groups(rng, [len(m) for m in members], share):
        posts = list(members[source])
        if kind == "split":
            k = int(rng.integers(1, len(posts)))
            picked = [posts[int(i)] for i in rng.permutation(len(posts))[:k]]
            given = _fresh_label(rng, used)
        else:
            picked = posts if kind == "merged" else [posts[int(rng.integers(len(posts)))]]
            given = labels[partner]
        out += [(p, kind, labels[source], given) for p in sorted(picked)]
    return out


def _apply_label_errors(path: Path, rows: list[dict], postings: list[dict],
                        labels: list[int], share: float, seed: int) -> None:
    """Change the rows' label_group as planned and write the ground truth to `path`
    (removed when there are no errors, so a stale file never lies about this data)."""
    if share == 0:
        path.unlink(missing_ok=True)
        return
    members: list[list[int]] = [[] for _ in labels]
    for i, q in enumerate(postings):
        members[q["group"]].append(i)
    truth = []
    for i, kind, true, given in plan_label_errors(members, labels, share, seed):
        row = rows[postings[i]["row"]]
        row["label_group"] = given
        truth.append({"posting_id": row["posting_id"], "kind": kind, "true_label": true,
                      "given_label": given, "_row": postings[i]["row"]})
    table = pd.DataFrame(sorted(truth, key=lambda t: t["_row"]),
                         columns=["posting_id", "kind", "true_label", "given_label"])
    _write_csv(path, table)


def label_error_summary(folder: str | Path) -> dict[str, dict[str, int]]:
    """Per kind, how many label groups and postings got a deliberate error in the demo
    data in `folder` (from its label_errors.csv; all zero without one)."""
    path = Path(folder) / LABEL_ERRORS_FILE
    table = (pd.read_csv(path) if path.exists()
             else pd.DataFrame(columns=["kind", "true_label"]))
    by_kind = table.groupby("kind")["true_label"]
    groups, postings = by_kind.nunique().to_dict(), by_kind.size().to_dict()
    return {"label_error_groups": {k: int(groups.get(k, 0)) for k in ERROR_KINDS},
            "label_error_postings": {k: int(postings.get(k, 0)) for k in ERROR_KINDS}}


def _write_meta(path: Path, seed: int, sizes: list[int], products: list[Product],
                labels: list[int], postings: list[dict]) -> None:
    by_group: dict[int, list[dict]] = {}
    for q in sorted(postings, key=lambda q: int(q["posting_id"].split("_")[1])):
        by_group.setdefault(q["group"], []).append(q)
    groups = []
    for gi, args in enumerate(zip(sizes, products, labels, strict=True)):
        record = _group_record(*args)
        record["postings"] = [q["posting_id"] for q in by_group[gi]]
        record["alt_photos"] = {q["posting_id"]: q["shot"].layout for q in by_group[gi]
                                if q["shot"].layout != "normal"}
        groups.append(record)
    meta = {"seed": seed, "n_postings": sum(sizes), "n_groups": len(groups),
            "hard_cases": list(HARD_CASES), "groups": groups}
    path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
