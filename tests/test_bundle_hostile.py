"""Damaged and hostile bundles: `Bundle.open` refuses each in one line (a BundleError),
never hangs, never follows a link out of the bundle and never lets through content that
would give wrong numbers (a posting twice in a candidate list, similarities out of range,
labels missing from a labelled bundle). Every check here is against an independent
expectation: the damage is made by hand on a valid bundle."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_table
from PIL import Image

from explorer.core.bundle import MANIFEST, Bundle, BundleError
from precompute.build import BuildOptions, build

HANG_LIMIT_S = 20


# --------------------------------------------------------------------------- helpers


def read_manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST).read_text(encoding="utf-8"))


def write_manifest(root: Path, data: dict) -> None:
    (root / MANIFEST).write_text(json.dumps(data, indent=2), encoding="utf-8")


def rewrite_array(path: Path, change: Callable[[np.ndarray], np.ndarray | None]) -> None:
    arr = np.load(path, allow_pickle=False).copy()
    out = change(arr)
    np.save(path, arr if out is None else out, allow_pickle=False)


def load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def rewrite_items(root: Path, change: Callable[[pd.DataFrame], pd.DataFrame | None]) -> None:
    items = pd.read_parquet(root / "items.parquet")
    out = change(items)
    (items if out is None else out).to_parquet(root / "items.parquet", index=False)


def refused(root: Path) -> str:
    """The one-line message Bundle.open refuses `root` with."""
    with pytest.raises(BundleError) as info:
        Bundle.open(root)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def open_in_thread(root: Path, fifos: list[Path]) -> BaseException | None:
    """Bundle.open in a thread with a time limit, so a loader that blocks on a FIFO fails
    the test instead of hanging the suite: after the limit each FIFO is opened for writing
    and closed, which releases a reader blocked in open()."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            Bundle.open(root)
            outcome.append(None)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG_LIMIT_S)
    if worker.is_alive():
        for fifo in fifos:
            with contextlib.suppress(OSError):  # no reader left: nothing to release
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
        pytest.fail(f"Bundle.open blocked for {HANG_LIMIT_S} s on a FIFO")
    return outcome[0]


def pick_row(cand: np.ndarray, min_valid: int) -> int:
    """A row with at least `min_valid` candidates after the query and some padding."""
    valid = (cand >= 0).sum(axis=1)
    ok = np.flatnonzero((valid >= min_valid + 1) & (valid < cand.shape[1]))
    assert len(ok), "the fixture bundle has no such row"
    return int(ok[0])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def copy(bundle_copy) -> Path:
    return bundle_copy


def _picture(seed: int, size: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(blocks, "RGB").resize((size, size), Image.Resampling.BILINEAR)


BROKEN, MISSING = 2, 5  # rows whose picture cannot be read: no phash (absent in present)


@pytest.fixture(scope="module")
def pictures_bundle(tmp_path_factory) -> Path:
    """Built from pictures, two of them unreadable: thumbnails, and a phash modality with
    rows that have no embedding (files.present, -inf similarities)."""
    root = tmp_path_factory.mktemp("pictures")
    df = synthetic_table(n_groups=8).drop(columns="image_phash")
    images = root / "images"
    images.mkdir()
    for i, name in enumerate(df["image"]):
        _picture(i, 32).save(images / name, format="PNG")
    (images / df["image"].iloc[BROKEN]).write_bytes(b"not a picture")
    (images / df["image"].iloc[MISSING]).unlink()
    csv = root / "t.csv"
    df.to_csv(csv, index=False)
    return build(BuildOptions(csv=csv, out=root / "p.bundle", images=images, k=8,
                              progress=False))


@pytest.fixture
def pictures(pictures_bundle, tmp_path) -> Path:
    dst = tmp_path / "pictures.bundle"
    shutil.copytree(pictures_bundle, dst)
    b = Bundle.open(dst)  # the pristine copy is valid and has what the tests need
    assert b.has_thumbnails
    assert np.flatnonzero(~b.present("phash")).tolist() == [BROKEN, MISSING]
    return dst


@pytest.fixture(scope="module")
def unlabelled_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unlabelled")
    csv = root / "u.csv"
    synthetic_table(n_groups=10).drop(columns="label_group").to_csv(csv, index=False)
    return build(BuildOptions(csv=csv, out=root / "u.bundle", k=6, progress=False))


# --------------------------------------------------------------------------- 1. no hang

FIFO_TARGETS = ["manifest.json", "items.parquet", "scopes/fold0/knn.tfidf.idx.npy",
                "scopes/all/graph.sim.phash.npy", "modalities/phash/bits.npy",
                "modalities/phash/present.npy", "modalities/tfidf/fold2.indptr.npy",
                "thumbnails/thumbs.bin", "thumbnails/offsets.npy"]


@pytest.mark.parametrize("target", FIFO_TARGETS)
def test_fifo_is_refused_without_blocking(pictures, target):
    fifo = pictures / target
    fifo.unlink()
    os.mkfifo(fifo)
    exc = open_in_thread(pictures, [fifo])
    assert isinstance(exc, BundleError), repr(exc)
    msg = str(exc)
    assert "\n" not in msg
    assert target in msg and "not a regular file" in msg, msg


def test_folder_in_place_of_a_file_is_refused(copy):
    target = copy / "scopes" / "fold1" / "graph.topk.npy"
    target.unlink()
    target.mkdir()
    msg = refused(copy)
    assert "graph.topk.npy" in msg and "not a regular file" in msg


def test_thumbnail_read_after_opening_does_not_block(pictures):
    b = Bundle.open(pictures)
    assert b.thumbnail(0)
    data = pictures / "thumbnails" / "thumbs.bin"
    data.unlink()
    os.mkfifo(data)  # swapped after the bundle was opened
    got: list[Any] = []
    worker = threading.Thread(target=lambda: got.append(b.thumbnail(0)), daemon=True)
    worker.start()
    worker.join(HANG_LIMIT_S)
    if worker.is_alive():
        os.close(os.open(data, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("Bundle.thumbnail blocked on a FIFO")
    assert got == [None]  # shown as a posting without a picture


# --------------------------------------------------------------------------- 2. links


def _link_out(root: Path, rel: str, outside: Path) -> None:
    """Move the bundle's file `rel` out of the bundle and leave a link to it in its place:
    a valid file, reachable only by following the link."""
    src = root / rel
    dst = outside / rel.replace("/", "_")
    shutil.move(src, dst)
    src.symlink_to(dst)


@pytest.mark.parametrize("rel", ["manifest.json", "items.parquet",
                                 "scopes/fold0/knn.tfidf.sim.npy", "modalities/phash/bits.npy",
                                 "thumbnails/thumbs.bin"])
def test_link_to_a_file_outside_is_refused(pictures, tmp_path, rel):
    outside = tmp_path / "outside"
    outside.mkdir()
    _link_out(pictures, rel, outside)
    msg = refused(pictures)
    assert rel in msg and "outside the bundle" in msg, msg


def test_linked_folder_outside_is_refused(pictures, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.move(pictures / "scopes" / "fold3", outside)
    (pictures / "scopes" / "fold3").symlink_to(outside, target_is_directory=True)
    msg = refused(pictures)
    assert "scopes/fold3/" in msg and "outside the bundle" in msg, msg


def test_link_that_stays_inside_is_allowed(copy):
    rel = "scopes/fold2/knn.phash.idx.npy"
    keep = copy / "store"
    keep.mkdir()
    want = load(copy / rel)
    shutil.move(copy / rel, keep / "idx.npy")
    (copy / rel).symlink_to(Path("..") / ".." / "store" / "idx.npy")
    b = Bundle.open(copy)
    assert np.array_equal(np.asarray(b.knn("fold2", "phash")[0]), want)


def test_dangling_link_is_a_missing_file(copy):
    rel = "scopes/fold2/graph.cand.npy"
    (copy / rel).unlink()
    (copy / rel).symlink_to(copy / "nowhere.npy")
    msg = refused(copy)
    assert rel in msg and "missing" in msg


def test_link_loop_is_refused(copy):
    rel = "scopes/all/graph.topk.npy"
    (copy / rel).unlink()
    (copy / rel).symlink_to(copy / rel)
    msg = refused(copy)
    assert rel in msg


# --------------------------------------------------------------------------- 3. numbers


def test_knn_row_listing_a_posting_twice_is_refused(copy):
    rel = "scopes/fold0/knn.tfidf"

    def twice(a):
        a[4, 2] = a[4, 1]
    rewrite_array(copy / f"{rel}.idx.npy", twice)
    rewrite_array(copy / f"{rel}.sim.npy", twice)  # a tie: still sorted best first
    msg = refused(copy)
    assert "knn.tfidf.idx.npy" in msg and "twice" in msg and "row 4" in msg, msg


def test_knn_row_listing_the_query_again_is_refused(copy):
    rel = "scopes/fold1/knn.phash"

    def again(a):
        a[3, 1] = a[3, 0]
    rewrite_array(copy / f"{rel}.idx.npy", again)
    rewrite_array(copy / f"{rel}.sim.npy", again)
    msg = refused(copy)
    assert "knn.phash.idx.npy" in msg and "row 3" in msg and "again" in msg, msg


def _graph(root: Path, scope: str) -> dict[str, Path]:
    base = root / "scopes" / scope
    return {"cand": base / "graph.cand.npy", "topk": base / "graph.topk.npy",
            "tfidf": base / "graph.sim.tfidf.npy", "phash": base / "graph.sim.phash.npy"}


def _same_change_in_graph(root: Path, scope: str, change: Callable[[np.ndarray], None]) -> None:
    """Apply one column change to cand, topk and every similarity array of a graph, so the
    damaged graph is consistent with itself."""
    for path in _graph(root, scope).values():
        rewrite_array(path, change)


def test_graph_row_listing_a_posting_twice_is_refused(copy):
    cand = load(_graph(copy, "all")["cand"])
    q = pick_row(cand, 3)

    def twice(a):
        a[q, 3] = a[q, 2]
    _same_change_in_graph(copy, "all", twice)
    msg = refused(copy)
    assert "graph.cand.npy" in msg and f"row {q}" in msg and "twice" in msg, msg


def test_graph_candidates_out_of_order_are_refused(copy):
    cand = load(_graph(copy, "fold4")["cand"])
    q = pick_row(cand, 3)

    def swap(a):
        a[q, [2, 3]] = a[q, [3, 2]]
    _same_change_in_graph(copy, "fold4", swap)
    msg = refused(copy)
    assert "graph.cand.npy" in msg and "ascending" in msg, msg


def test_graph_padding_inside_a_row_is_refused(copy):
    cand = load(_graph(copy, "fold0")["cand"])
    q = pick_row(cand, 2)
    last = int((cand[q] >= 0).sum()) - 1  # the last candidate, followed by padding

    def gap(a):
        a[q, [last, last + 1]] = a[q, [last + 1, last]]
    _same_change_in_graph(copy, "fold0", gap)
    msg = refused(copy)
    assert "graph.cand.npy" in msg and "padding" in msg, msg


def test_knn_padding_inside_a_row_is_refused(copy):
    def gap(a):
        a[6, 3] = -1
    rewrite_array(copy / "scopes" / "fold3" / "knn.tfidf.idx.npy", gap)
    msg = refused(copy)
    assert "knn.tfidf.idx.npy" in msg and "padding" in msg, msg


@pytest.mark.parametrize("bit_change", ["cleared", "set"])
def test_topk_bits_that_disagree_with_the_lists_are_refused(copy, bit_change):
    paths = _graph(copy, "fold2")
    cand, topk = load(paths["cand"]), load(paths["topk"])
    # tfidf is modality 0 (bit 1): clear it where both lists hold the pair, or set it
    # where only phash does
    want = 3 if bit_change == "cleared" else 2
    q, c = np.argwhere((topk == want) & (np.arange(cand.shape[1]) > 0))[0]

    def flip(a):
        a[q, c] ^= 1
    rewrite_array(paths["topk"], flip)
    msg = refused(copy)
    assert "graph.topk.npy" in msg and "'tfidf'" in msg and f"row {q}" in msg, msg


def _set(rel: str, row: int, col: int, value: float) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        def put(a):
            a[row, col] = value
        rewrite_array(root / rel, put)
    return damage


RANGE_CASES = {
    # id: (damage, substrings of the message); each keeps the lists sorted best first
    "tfidf-knn-above-one": (_set("scopes/fold0/knn.tfidf.sim.npy", 2, 1, 1.5),
                            ["knn.tfidf.sim.npy", "row 2", "out of range"]),
    "phash-knn-negative": (_set("scopes/all/knn.phash.sim.npy", 7, -1, -0.25),
                           ["knn.phash.sim.npy", "row 7", "out of range"]),
    "knn-query-not-one": (_set("scopes/fold1/knn.phash.sim.npy", 0, 0, 0.5),
                          ["knn.phash.sim.npy", "row 0", "own similarity"]),
    "graph-phash-above-one": (_set("scopes/fold3/graph.sim.phash.npy", 1, 1, 1.25),
                              ["graph.sim.phash.npy", "row 1", "out of range"]),
    "graph-tfidf-below-minus-one": (_set("scopes/all/graph.sim.tfidf.npy", 9, 1, -3.0),
                                    ["graph.sim.tfidf.npy", "row 9", "out of range"]),
    "graph-query-not-one": (_set("scopes/fold2/graph.sim.tfidf.npy", 4, 0, 0.0),
                            ["graph.sim.tfidf.npy", "row 4", "own similarity"]),
    "graph-minus-inf-with-embeddings": (_set("scopes/fold4/graph.sim.tfidf.npy", 3, 1,
                                             -np.inf),
                                        ["graph.sim.tfidf.npy", "row 3", "-inf"]),
}


@pytest.mark.parametrize("case", list(RANGE_CASES))
def test_similarity_out_of_range_is_refused(copy, case):
    damage, expected = RANGE_CASES[case]
    damage(copy)
    msg = refused(copy)
    for part in expected:
        assert part in msg, (part, msg)


def _absent_pair(root: Path, scope: str = "all") -> tuple[int, int]:
    """(row, column) of a graph pair whose candidate has no phash (row BROKEN)."""
    cand = load(_graph(root, scope)["cand"])
    q, c = np.argwhere(cand[:, 1:] == BROKEN)[0]
    return int(q), int(c) + 1


def test_absent_posting_with_a_finite_similarity_is_refused(pictures):
    q, c = _absent_pair(pictures)
    assert np.isneginf(load(_graph(pictures, "all")["phash"])[q, c])  # as built
    _set("scopes/all/graph.sim.phash.npy", q, c, 0.9)(pictures)
    msg = refused(pictures)
    assert "graph.sim.phash.npy" in msg and f"row {q}" in msg and "-inf" in msg, msg


def test_minus_inf_between_present_postings_is_refused(pictures):
    sims = load(_graph(pictures, "all")["phash"])
    cand = load(_graph(pictures, "all")["cand"])
    ok = (cand >= 0) & ~np.isin(cand, [BROKEN, MISSING])
    ok[[BROKEN, MISSING]] = False
    ok[:, 0] = False
    q, c = np.argwhere(ok & np.isfinite(sims))[0]
    _set("scopes/all/graph.sim.phash.npy", int(q), int(c), -np.inf)(pictures)
    msg = refused(pictures)
    assert "graph.sim.phash.npy" in msg and f"row {q}" in msg, msg


def test_absent_posting_as_a_neighbour_is_refused(pictures):
    rel = "scopes/all/knn.phash"
    idx = load(pictures / f"{rel}.idx.npy")
    q = next(r for r in range(len(idx)) if r not in (BROKEN, MISSING) and idx[r, -1] >= 0)

    def put(a):
        a[q, -1] = BROKEN
    rewrite_array(pictures / f"{rel}.idx.npy", put)
    msg = refused(pictures)
    assert "knn.phash.idx.npy" in msg and f"row {q}" in msg, msg


# --------------------------------------------------------------------------- 4. labels


def test_labelled_bundle_with_a_missing_label_is_refused(copy):
    def drop(items):
        items["label_group"] = items["label_group"].astype(object)
        items.loc[7, "label_group"] = None
    rewrite_items(copy, drop)
    pid = pd.read_parquet(copy / "items.parquet")["posting_id"][7]
    msg = refused(copy)
    assert "items.parquet" in msg and "row 7" in msg and pid in msg and "label_group" in msg


def test_labels_of_an_unlabelled_bundle_are_ignored(unlabelled_bundle, tmp_path):
    dst = tmp_path / "u.bundle"
    shutil.copytree(unlabelled_bundle, dst)
    rewrite_items(dst, lambda items: items.assign(label_group=[None, 5] * (len(items) // 2)
                                                  + [None] * (len(items) % 2)))
    assert not Bundle.open(dst).manifest.has_labels


@pytest.mark.parametrize("fold", [7, -1])
def test_fold_outside_the_split_is_refused(copy, fold):
    def put(items):
        items.loc[11, "fold"] = fold
    rewrite_items(copy, put)
    msg = refused(copy)
    assert "items.parquet" in msg and "row 11" in msg and f"fold {fold}" in msg, msg


def test_fold_in_an_unlabelled_bundle_is_refused(unlabelled_bundle, tmp_path):
    dst = tmp_path / "u.bundle"
    shutil.copytree(unlabelled_bundle, dst)

    def put(items):
        items.loc[3, "fold"] = 0
    rewrite_items(dst, put)
    msg = refused(dst)
    assert "items.parquet" in msg and "row 3" in msg and "fold 0" in msg, msg


def test_group_split_over_two_folds_is_refused(copy):
    items = pd.read_parquet(copy / "items.parquet")
    label = items["label_group"][0]
    other = (int(items["fold"][0]) + 1) % 5
    rows = np.flatnonzero(items["label_group"] == label)
    assert len(rows) >= 2

    def put(items):
        items.loc[rows[-1], "fold"] = other
    rewrite_items(copy, put)
    msg = refused(copy)
    assert "items.parquet" in msg and "label_group" in msg and "fold" in msg, msg


def test_float_fold_column_is_refused(copy):
    rewrite_items(copy, lambda items: items.assign(fold=items["fold"].astype(float)))
    msg = refused(copy)
    assert "items.parquet" in msg and "fold" in msg and "float" in msg, msg


@pytest.mark.parametrize("value", [None, ""])
def test_missing_or_empty_posting_id_is_refused(copy, value):
    def put(items):
        items.loc[5, "posting_id"] = value
    rewrite_items(copy, put)
    msg = refused(copy)
    assert "items.parquet" in msg and "row 5" in msg and "posting_id" in msg, msg


def test_integer_posting_ids_are_refused(copy):
    rewrite_items(copy, lambda items: items.assign(posting_id=np.arange(len(items))))
    msg = refused(copy)
    assert "items.parquet" in msg and "row 0" in msg and "posting_id" in msg, msg


# --------------------------------------------------------------------------- 5. one line


def test_empty_modality_list_is_refused(copy):
    data = read_manifest(copy)
    data["modalities"] = []
    for g in data["graphs"].values():
        g["sims"] = {}
    write_manifest(copy, data)
    msg = refused(copy)
    assert "manifest.json" in msg and "manifest lists no modalities" in msg


def test_npz_under_a_npy_name_is_refused(copy):
    target = copy / "scopes" / "fold0" / "graph.cand.npy"
    arr = load(target)
    with open(target, "wb") as fh:
        np.savez(fh, arr)
    msg = refused(copy)
    assert "graph.cand.npy" in msg


def test_column_twice_in_a_tfidf_row_is_refused(copy):
    """scipy sums a repeated column, so the row's vector is not the unit vector the
    stored values square-sum to."""
    base = copy / "modalities" / "tfidf" / "fold1"
    indptr, indices = load(f"{base}.indptr.npy"), load(f"{base}.indices.npy")
    r = int(np.flatnonzero(np.diff(indptr) >= 2)[0])

    def repeat(a):
        a[indptr[r] + 1] = a[indptr[r]]
    rewrite_array(Path(f"{base}.indices.npy"), repeat)
    assert indices[indptr[r]] != indices[indptr[r] + 1]
    msg = refused(copy)
    assert "fold1.indices.npy" in msg and f"row {r}" in msg, msg


def _edit(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        data = read_manifest(root)
        change(data)
        write_manifest(root, data)
    return damage


def _tfidf(data: dict) -> dict:
    return next(m for m in data["modalities"] if m["name"] == "tfidf")


MANIFEST_CASES = {
    # id: (change, substrings of the message); each one opened or crashed before
    "n-items-string": (lambda d: d.update(n_items=str(d["n_items"])), ["n_items", "integer"]),
    "n-items-float": (lambda d: d.update(n_items=float(d["n_items"])), ["n_items", "integer"]),
    "has-labels-string": (lambda d: d["dataset"].update(has_labels="false"),
                          ["dataset.has_labels", "true or false"]),
    "scope-not-a-string": (lambda d: d["scopes"].append(0), ["scopes[6]", "string"]),
    "graph-not-an-object": (lambda d: d["graphs"].update(fold0="x"),
                            ["graphs.fold0", "object"]),
    "knn-file-a-number": (lambda d: _tfidf(d)["files"]["knn"]["fold1"].update(idx=3),
                          ["modalities[0].files.knn.fold1.idx", "file name"]),
    "csr-entry-a-list": (lambda d: _tfidf(d)["files"]["embeddings"].update(fold2=[]),
                         ["modalities[0].files.embeddings.fold2", "object"]),
    "dim-a-string": (lambda d: _tfidf(d).update(dim="64"), ["modalities[0].dim", "integer"]),
    "params-a-list": (lambda d: _tfidf(d).update(params=[1]),
                      ["modalities[0].params", "object"]),
    "name-with-a-newline": (lambda d: _tfidf(d).update(name="tf\nidf"),
                            ["modalities[0].name", "not a modality name"]),
    "thumbnails-null": (lambda d: d.update(thumbnails=None), ["thumbnails", "object"]),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_mistyped_manifest_field_is_refused_naming_it(copy, case):
    change, expected = MANIFEST_CASES[case]
    _edit(change)(copy)
    msg = refused(copy)
    assert "manifest.json" in msg
    for part in expected:
        assert part in msg, (part, msg)


def _paths(node: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every key path of a JSON value (not the root)."""
    if path:
        yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*path, i))


def _get(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


DELETE = object()
WRONG = [None, 3, "x", [], {}, True, DELETE]
# fields whose content the explorer never interprets: any value opens (or is refused)
FREE = (("libraries",), ("created",), ("dataset", "csv"), ("dataset", "sha256"),
        ("dataset", "images"), ("split", "protocol"), ("split", "group"), ("split", "order"),
        ("split", "roles"), ("thumbnails", "size"), ("thumbnails", "format"))


def _free(path: tuple) -> bool:
    if len(path) >= 3 and path[0] == "modalities" and path[2] == "params":
        return True
    return any(path[:len(f)] == f for f in FREE)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return type(value).__name__


def test_manifest_fuzz_every_field_every_wrong_type(pictures):
    """Each field of a valid manifest replaced by each wrong type (and removed): Bundle.open
    raises BundleError in one line, or opens fine, and never raises anything else. A
    required field given a value of another type must be refused."""
    original = read_manifest(pictures)
    problems = []
    cases = 0
    # fold1..fold3 entries repeat fold0's and fold4's structure: left out to save time
    paths = [p for p in _paths(original) if not {"fold1", "fold2", "fold3"} & set(p)]
    for path in paths:
        old = _get(original, path)
        values = WRONG + ([math.nan] if isinstance(old, int | float) else [])
        for value in values:
            data = json.loads(json.dumps(original))
            parent = _get(data, path[:-1])
            if value is DELETE:
                if not isinstance(parent, dict):
                    continue
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            write_manifest(pictures, data)
            cases += 1
            shown = "delete" if value is DELETE else repr(value)
            try:
                Bundle.open(pictures)
            except BundleError as exc:
                if "\n" in str(exc):
                    problems.append(f"{path} = {shown}: message of several lines")
            except Exception as exc:  # what the test looks for
                problems.append(f"{path} = {shown}: {type(exc).__name__}: {exc}")
            else:
                changed_type = value is not DELETE and _kind(value) != _kind(old)
                if changed_type and not _free(path):
                    problems.append(f"{path} = {shown}: opened")
    write_manifest(pictures, original)
    Bundle.open(pictures)
    assert cases > 800
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} in all)"


def _npy_damages(path: Path) -> dict[str, bytes]:
    data = path.read_bytes()
    header_len = 10 + int.from_bytes(data[8:10], "little")  # .npy format version 1
    return {"empty": b"", "magic-only": data[:8], "header-only": data[:header_len],
            "half": data[:max(header_len + 1, len(data) // 2)], "one-byte-short": data[:-1],
            "zeroed": bytes(len(data))}


def test_every_npy_truncated_or_zeroed_is_refused(pictures):
    files = sorted(p.relative_to(pictures).as_posix() for p in pictures.rglob("*.npy"))
    assert len(files) > 50
    problems = []
    for rel in files:
        path = pictures / rel
        original = path.read_bytes()
        for name, damaged in _npy_damages(path).items():
            if damaged == original:
                continue
            path.write_bytes(damaged)
            try:
                Bundle.open(pictures)
                problems.append(f"{rel} {name}: opened")
            except BundleError as exc:
                if rel not in str(exc) or "\n" in str(exc):
                    problems.append(f"{rel} {name}: {exc}")
            except Exception as exc:  # what the test looks for
                problems.append(f"{rel} {name}: {type(exc).__name__}: {exc}")
        path.write_bytes(original)
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} in all)"


@pytest.mark.parametrize("rel", ["items.parquet", "thumbnails/thumbs.bin"])
@pytest.mark.parametrize("damage", ["empty", "half"])
def test_other_files_truncated_are_refused(pictures, rel, damage):
    path = pictures / rel
    data = path.read_bytes()
    path.write_bytes(b"" if damage == "empty" else data[:len(data) // 2])
    msg = refused(pictures)
    assert rel.split("/")[-1] in msg
