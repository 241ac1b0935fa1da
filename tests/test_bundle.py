"""Bundle format v1: a build round trip checked against independent recomputation, the
validation of every kind of damage `Bundle.open` must refuse, and `BundleWriter`'s
all-or-nothing writing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_table
from sklearn.feature_extraction.text import TfidfVectorizer

from explorer.core.bundle import (
    ITEM_COLUMNS,
    MANIFEST,
    SCHEMA_VERSION,
    Bundle,
    BundleError,
    Manifest,
)
from explorer.core.bundle.writer import BundleWriter
from precompute.build import BuildOptions, build
from precompute.errors import InputError

K = 10
FOLD_SCOPES = tuple(f"fold{k}" for k in range(5))


# --------------------------------------------------------------------------- helpers


def hand_phash_sim(a: str, b: str) -> float:
    """1 - hamming / 64 of two 16-hex-digit hashes, from the strings alone."""
    return 1.0 - (int(a, 16) ^ int(b, 16)).bit_count() / 64


def sklearn_cosines(titles: list[str]) -> np.ndarray:
    """Cosine matrix of the study's TF-IDF fitted on exactly these titles (float64)."""
    vec = TfidfVectorizer(binary=True, stop_words="english", max_features=15000)
    x = vec.fit_transform(titles)
    return (x @ x.T).toarray()


def read_manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST).read_text(encoding="utf-8"))


def write_manifest(root: Path, data: dict) -> None:
    (root / MANIFEST).write_text(json.dumps(data, indent=2), encoding="utf-8")


def modality_entry(data: dict, name: str) -> dict:
    return next(m for m in data["modalities"] if m["name"] == name)


def rewrite_array(path: Path, change: Callable[[np.ndarray], np.ndarray | None]) -> None:
    arr = np.load(path, allow_pickle=False).copy()
    out = change(arr)
    np.save(path, arr if out is None else out, allow_pickle=False)


def fold_rows(root: Path, fold: int) -> np.ndarray:
    folds = pd.read_parquet(root / "items.parquet")["fold"].to_numpy()
    return np.flatnonzero(folds == fold)


# --------------------------------------------------------------------------- round trip


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, pd.DataFrame]:
    """(csv, bundle, source table) of a fresh build with k = 10."""
    root = tmp_path_factory.mktemp("roundtrip")
    df = synthetic_table(n_groups=40, seed=3)
    # repeated words and English stop words, so that `binary` and `stop_words` matter
    extra = np.array(["", " with the kopi kopi", " and SUSU susu susu for you", " of"])
    df["title"] = df["title"] + extra[np.arange(len(df)) % len(extra)]
    csv = root / "train.csv"
    df.to_csv(csv, index=False)
    out = build(BuildOptions(csv=csv, out=root / "rt.bundle", k=K, progress=False))
    return csv, out, pd.read_csv(csv, dtype=str, keep_default_na=False)


def test_build_returns_the_bundle_and_leaves_nothing_else(built):
    csv, out, _ = built
    assert out == csv.parent / "rt.bundle"
    assert sorted(p.name for p in csv.parent.iterdir()) == ["rt.bundle", "train.csv"]


def test_manifest_fields(built):
    csv, out, df = built
    m = Bundle.open(out).manifest
    assert m.schema_version == SCHEMA_VERSION
    assert m.n_items == len(df)
    assert m.k == K
    assert m.scopes == ("all", *FOLD_SCOPES)
    assert sorted(x.name for x in m.modalities) == ["phash", "tfidf"]
    assert m.modality("tfidf").storage == "sparse"
    assert m.modality("tfidf").kind == "text"
    assert m.modality("phash").storage == "bits"
    assert m.modality("phash").kind == "image"
    assert m.modality("phash").dim == 64
    assert m.dataset["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert m.dataset["csv"] == csv.name
    assert m.dataset["has_labels"] is True
    assert m.has_labels
    for lib in ("python", "numpy", "pandas", "scipy", "scikit-learn"):
        assert m.libraries.get(lib), lib
    assert set(m.graphs) == set(m.scopes)
    # the manifest on disk is plain JSON with the same content
    raw = read_manifest(out)
    assert raw["schema_version"] == SCHEMA_VERSION
    assert raw["n_items"] == len(df)


def test_items_table_keeps_the_csv_rows_in_order(built):
    _, out, df = built
    items = Bundle.open(out).items
    assert list(items.columns) == list(ITEM_COLUMNS)
    assert items["posting_id"].tolist() == df["posting_id"].tolist()
    assert items["title"].tolist() == df["title"].tolist()
    assert items["image"].tolist() == df["image"].tolist()
    assert items["image_phash"].tolist() == df["image_phash"].str.lower().tolist()
    assert items["label_group"].astype(str).tolist() == df["label_group"].tolist()


def test_folds_are_a_group_split(built):
    _, out, _ = built
    b = Bundle.open(out)
    folds = b.folds
    assert sorted(np.unique(folds).tolist()) == [0, 1, 2, 3, 4]
    per_group = b.items.groupby("label_group")["fold"].nunique()
    assert (per_group == 1).all()
    for scope in FOLD_SCOPES:
        rows = b.scope_rows(scope)
        assert np.array_equal(rows, np.flatnonzero(folds == int(scope[4:])))
    assert np.array_equal(b.scope_rows("all"), np.arange(b.n_items))


def test_phash_bits_match_the_hex_column(built):
    _, out, _ = built
    b = Bundle.open(out)
    bits = np.asarray(b.array(b.manifest.modality("phash").files["embeddings"]))
    assert bits.shape == (b.n_items, 8)
    assert [row.tobytes().hex() for row in bits] == b.items["image_phash"].tolist()


@pytest.mark.parametrize("scope", ["all", *FOLD_SCOPES])
@pytest.mark.parametrize("modality", ["tfidf", "phash"])
def test_knn_lists_are_well_formed(built, scope, modality):
    _, out, _ = built
    b = Bundle.open(out)
    rows = b.scope_rows(scope)
    idx, sim = (np.asarray(a) for a in b.knn(scope, modality))
    assert idx.shape == sim.shape == (len(rows), min(K, len(rows)))
    assert idx.dtype == np.int32
    assert sim.dtype == np.float32
    assert np.array_equal(idx[:, 0], rows)  # query first
    if modality == "phash":
        assert np.all(idx >= 0)  # every scope has at least K rows: no padding
    else:  # TF-IDF lists only postings sharing a word with the query: padding after them
        assert np.all(sim[idx >= 0] > 0) and np.all(np.isneginf(sim[idx < 0]))
        assert (idx >= 0).mean() > 0.9
    valid = idx >= 0
    assert np.isin(idx[valid], rows).all()  # neighbours inside the scope
    for r, ok in zip(idx, valid, strict=True):
        assert len(set(r[ok].tolist())) == ok.sum()
    filled = np.where(valid, sim, -2)
    assert np.all(np.diff(filled, axis=1) <= 1e-6)  # best first
    assert np.allclose(sim[:, 0], 1.0)


@pytest.mark.parametrize("scope", ["all", "fold0", "fold3"])
def test_phash_similarities_recomputed_by_hand(built, scope):
    _, out, df = built
    b = Bundle.open(out)
    hexes = df["image_phash"].tolist()
    rows = b.scope_rows(scope)
    idx, sim = (np.asarray(a) for a in b.knn(scope, "phash"))
    for q in (0, len(rows) // 2, len(rows) - 1):
        for j in range(1, idx.shape[1]):
            want = hand_phash_sim(hexes[rows[q]], hexes[idx[q, j]])
            assert sim[q, j] == pytest.approx(want, abs=1e-6), (q, j)
    # exact top-K: nothing outside the list beats the list's last entry
    q = 0
    others = [hand_phash_sim(hexes[rows[q]], hexes[r]) for r in rows
              if r not in set(idx[q].tolist())]
    assert max(others) <= sim[q, -1] + 1e-6


@pytest.mark.parametrize("scope", ["fold0", "fold2", "all"])
def test_tfidf_similarities_match_sklearn_fitted_on_the_scope(built, scope):
    _, out, df = built
    b = Bundle.open(out)
    rows = b.scope_rows(scope)
    titles = df["title"].to_numpy()[rows].tolist()
    cos = sklearn_cosines(titles)
    local = {int(g): i for i, g in enumerate(rows)}
    idx, sim = (np.asarray(a) for a in b.knn(scope, "tfidf"))
    for q in (0, 1, len(rows) // 2, len(rows) - 1):
        for j in range(1, idx.shape[1]):
            want = cos[q, local[int(idx[q, j])]]
            assert sim[q, j] == pytest.approx(want, abs=1e-5), (q, j)
        listed = {local[int(g)] for g in idx[q]}
        rest = [cos[q, c] for c in range(len(rows)) if c not in listed]
        assert max(rest) <= sim[q, -1] + 1e-5
    # the stored CSR rows are the same vectors (same dot products)
    mat = b.sparse("tfidf", scope)
    assert mat.shape[0] == len(rows)
    assert np.allclose((mat @ mat.T).toarray(), cos, atol=1e-5)


def test_graph_similarities_are_exact(built):
    _, out, df = built
    b = Bundle.open(out)
    hexes = df["image_phash"].tolist()
    scope = "fold1"
    rows = b.scope_rows(scope)
    g = b.graph_files(scope)
    cand = np.asarray(b.array(g["cand"]))
    ph = np.asarray(b.array(g["sims"]["phash"]))
    tf = np.asarray(b.array(g["sims"]["tfidf"]))
    assert np.array_equal(cand[:, 0], rows)
    cos = sklearn_cosines(df["title"].to_numpy()[rows].tolist())
    local = {int(r): i for i, r in enumerate(rows)}
    for q in range(0, len(rows), 7):
        for c in range(1, cand.shape[1]):
            if cand[q, c] < 0:
                continue
            assert ph[q, c] == pytest.approx(hand_phash_sim(hexes[rows[q]], hexes[cand[q, c]]),
                                             abs=1e-6)
            assert tf[q, c] == pytest.approx(cos[q, local[int(cand[q, c])]], abs=1e-5)


# --------------------------------------------------------------------------- corruption


@pytest.fixture
def copy(bundle_copy) -> Path:
    return bundle_copy


def _drop_manifest(root: Path) -> None:
    (root / MANIFEST).unlink()


def _manifest_not_json(root: Path) -> None:
    (root / MANIFEST).write_text('{"schema_version": 1, "n_items": ', encoding="utf-8")


def _newer_schema(root: Path) -> None:
    data = read_manifest(root)
    data["schema_version"] = SCHEMA_VERSION + 1
    write_manifest(root, data)


def _missing_npy(root: Path) -> None:
    (root / "scopes" / "fold3" / "knn.phash.sim.npy").unlink()


def _row_removed(root: Path) -> None:
    items = pd.read_parquet(root / "items.parquet")
    items.iloc[:-1].to_parquet(root / "items.parquet", index=False)


def _nan_in_graph(root: Path) -> None:
    def put(a):
        a[0, 0] = np.nan
    rewrite_array(root / "scopes" / "fold2" / "graph.sim.phash.npy", put)


def _tfidf_not_normalised(root: Path) -> None:
    rewrite_array(root / "modalities" / "tfidf" / "fold1.data.npy", lambda a: a * 2)


def _index_out_of_range(root: Path) -> None:
    n = read_manifest(root)["n_items"]

    def put(a):
        a[3, 2] = n
    rewrite_array(root / "scopes" / "fold0" / "knn.tfidf.idx.npy", put)


def _outside_fold(root: Path) -> None:
    stranger = int(fold_rows(root, 1)[0])

    def put(a):
        a[3, 2] = stranger
    rewrite_array(root / "scopes" / "fold0" / "knn.phash.idx.npy", put)


def _first_not_query(root: Path) -> None:
    def put(a):
        a[[5, 5], [0, 1]] = a[[5, 5], [1, 0]]
    rewrite_array(root / "scopes" / "fold4" / "knn.tfidf.idx.npy", put)


CORRUPTIONS = {
    # id: (damage, substrings the one-line message must contain)
    "missing-manifest": (_drop_manifest, ["manifest.json"]),
    "manifest-not-json": (_manifest_not_json, ["manifest.json", "unreadable manifest"]),
    "newer-schema": (_newer_schema, ["manifest.json", "schema_version", "upgrade"]),
    "missing-npy": (_missing_npy, ["knn.phash.sim.npy", "missing"]),
    "items-row-removed": (_row_removed, ["items.parquet", "n_items"]),
    "nan-in-graph": (_nan_in_graph, ["graph.sim.phash.npy", "NaN"]),
    "tfidf-not-normalised": (_tfidf_not_normalised, ["fold1.data.npy", "normalised"]),
    "index-out-of-range": (_index_out_of_range, ["knn.tfidf.idx.npy", "out of range"]),
    "neighbour-outside-fold": (_outside_fold, ["knn.phash.idx.npy", "outside its scope"]),
    "first-not-query": (_first_not_query, ["knn.tfidf.idx.npy", "first neighbour"]),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corruption_is_refused_with_one_line(copy, case):
    damage, expected = CORRUPTIONS[case]
    damage(copy)
    with pytest.raises(BundleError) as info:
        Bundle.open(copy)
    msg = str(info.value)
    assert "\n" not in msg
    for part in expected:
        assert part in msg, (part, msg)


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_manifest_path_outside_the_bundle_is_refused(copy, tmp_path, where):
    # a perfectly valid array lies outside: only the path rule can refuse it
    outside = tmp_path / "x.npy"
    shutil.copy(copy / "scopes" / "fold0" / "knn.tfidf.idx.npy", outside)
    rel = "../x.npy" if where == "relative" else str(outside)
    data = read_manifest(copy)
    modality_entry(data, "tfidf")["files"]["knn"]["fold0"]["idx"] = rel
    write_manifest(copy, data)
    with pytest.raises(BundleError) as info:
        Bundle.open(copy)
    msg = str(info.value)
    assert "\n" not in msg
    assert repr(rel) in msg
    assert "outside" in msg


class _Trap:
    """Unpickling this creates a folder: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("validate", [True, False])
def test_object_npy_is_refused_without_unpickling(copy, tmp_path, validate):
    marker = tmp_path / "unpickled"
    target = copy / "scopes" / "fold0" / "knn.tfidf.idx.npy"
    trap = np.empty(1, dtype=object)
    trap[0] = _Trap(marker)
    np.save(target, trap, allow_pickle=True)
    with pytest.raises(BundleError) as info:
        b = Bundle.open(copy, validate=validate)
        b.knn("fold0", "tfidf")
    msg = str(info.value)
    assert "\n" not in msg
    assert "knn.tfidf.idx.npy" in msg
    assert not marker.exists()
    # the trap is live: loading it the unsafe way would have run it
    np.load(target, allow_pickle=True)
    assert marker.is_dir()


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(BundleError) as info:
        Bundle.open(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- writer


def _tiny_manifest() -> Manifest:
    return Manifest(schema_version=SCHEMA_VERSION, n_items=1, k=1, scopes=("all",),
                    modalities=(), dataset={}, split={}, created="now", libraries={},
                    graphs={})


def test_writer_exception_leaves_nothing(tmp_path):
    parent = tmp_path / "out"
    parent.mkdir()
    out = parent / "b.bundle"
    with pytest.raises(RuntimeError, match="boom"), BundleWriter(out) as w:
        w.save_array("scopes/all/x.npy", np.arange(3))
        assert w.tmp.is_dir()
        assert w.tmp.parent == parent
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(parent.iterdir()) == []


def test_writer_refuses_existing_output(tmp_path):
    out = tmp_path / "b.bundle"
    out.mkdir()
    (out / "keep.txt").write_text("old", encoding="utf-8")
    with pytest.raises(BundleError) as info:
        BundleWriter(out)
    assert str(out) in str(info.value)
    assert "\n" not in str(info.value)
    assert (out / "keep.txt").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bundle"]


def test_writer_overwrite_replaces(tmp_path, tiny_bundle):
    out = tmp_path / "b.bundle"
    out.mkdir()
    (out / "keep.txt").write_text("old", encoding="utf-8")
    shutil.copy(tiny_bundle / MANIFEST, out / MANIFEST)  # a bundle: only that is replaced
    with BundleWriter(out, overwrite=True) as w:
        w.save_array("x.npy", np.arange(4))
        assert (out / "keep.txt").exists()  # the old bundle stays until the commit
        w.commit(_tiny_manifest())
    assert not (out / "keep.txt").exists()
    assert np.array_equal(np.load(out / "x.npy"), np.arange(4))
    assert read_manifest(out)["n_items"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bundle"]


def test_build_force_replaces_a_bundle(make_csv, tmp_path):
    out = tmp_path / "b.bundle"
    first = build(BuildOptions(csv=make_csv(synthetic_table(n_groups=20, seed=1), "a.csv"),
                               out=out, k=5, progress=False))
    n_first = Bundle.open(first).n_items
    csv = make_csv(synthetic_table(n_groups=30, seed=2), "b.csv")
    with pytest.raises(InputError, match="already exists"):  # refused before any work
        build(BuildOptions(csv=csv, out=out, k=5, progress=False))
    assert Bundle.open(out).n_items == n_first
    build(BuildOptions(csv=csv, out=out, k=5, force=True, progress=False))
    b = Bundle.open(out)
    assert b.n_items == len(synthetic_table(n_groups=30, seed=2)) != n_first
    assert b.manifest.dataset["csv"] == "b.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.bundle", "b.csv"]
