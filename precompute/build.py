"""`precompute build`: dataset -> index bundle (items, embeddings, per-scope top-K lists
and candidate graphs), written to a temporary folder and renamed at the end."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from explorer.core import bundle as B
from explorer.core.graph import build_graph, to_global
from explorer.core.spaces import BitSpace, SparseSpace
from precompute import tfidf
from precompute.dataset import Dataset, read_dataset
from precompute.errors import InputError
from precompute.phash import phash_column
from precompute.split import N_SPLITS, ROLES, assign_folds

TEXT_CHOICES = ("tfidf",)
IMAGE_CHOICES = ("phash",)


@dataclass
class BuildOptions:
    csv: Path
    out: Path
    images: Path | None = None
    text: tuple[str, ...] = ("tfidf",)
    image: tuple[str, ...] = ("phash",)
    k: int = 50
    force: bool = False
    progress: bool = True


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("shopee-explorer", "numpy", "pandas", "scipy", "scikit-learn", "faiss-cpu",
                 "faiss-gpu", "pyarrow", "imagehash"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _check_options(opts: BuildOptions) -> None:
    for name in opts.text:
        if name not in TEXT_CHOICES:
            raise InputError(f"--text {name!r}: this build supports {', '.join(TEXT_CHOICES)}")
    for name in opts.image:
        if name not in IMAGE_CHOICES:
            raise InputError(f"--image {name!r}: this build supports {', '.join(IMAGE_CHOICES)}")
    if not opts.text and not opts.image:
        raise InputError("nothing to build: give at least one --text or --image modality")
    if opts.k < 2:
        raise InputError(f"--k {opts.k}: need at least 2 (the query and one neighbour)")
    if opts.images is not None and not opts.images.is_dir():
        raise InputError(f"--images {opts.images}: not a folder")


def _items(ds: Dataset, folds: np.ndarray, hexes: pd.Series) -> pd.DataFrame:
    t = ds.table
    labels = t["label_group"] if ds.has_labels else pd.Series([None] * len(t), dtype=object)
    return pd.DataFrame({
        "posting_id": t["posting_id"], "image": t["image"], "title": t["title"],
        "label_group": labels.to_numpy(), "image_phash": hexes.str.lower().to_numpy(),
        "fold": folds,
    })


def _save_csr(w: B.BundleWriter, name: str, mat) -> dict:
    base = f"modalities/{name}"
    return {
        "data": w.save_array(f"{base}.data.npy", mat.data.astype(np.float32)),
        "indices": w.save_array(f"{base}.indices.npy", mat.indices.astype(np.int32)),
        "indptr": w.save_array(f"{base}.indptr.npy", mat.indptr.astype(np.int64)),
        "n_features": int(mat.shape[1]),
    }


def build(opts: BuildOptions) -> Path:
    _check_options(opts)
    ds = read_dataset(opts.csv)
    folds = assign_folds(ds.table["label_group"], source=str(ds.csv)) if ds.has_labels else np.full(
        len(ds), -1, np.int8)
    scopes = B.scope_names(N_SPLITS) if ds.has_labels else ("all",)
    names = [*opts.text, *opts.image]
    bits, hexes = (phash_column(ds.table, opts.images, ds.csv, progress=opts.progress)
                   if "phash" in names else (None, ds.table["image_phash"]))
    titles = ds.table["title"].tolist()

    mods: dict[str, B.Modality] = {}
    graphs: dict[str, dict] = {}
    with B.BundleWriter(opts.out, overwrite=opts.force) as w:
        w.save_items(_items(ds, folds, hexes))
        if bits is not None:
            mods["phash"] = B.Modality(
                "phash", "image", "phash", "image_phash (64-bit DCT hash)", 64, "bits",
                files={"embeddings": w.save_array("modalities/phash/bits.npy", bits), "knn": {}})
        if "tfidf" in names:
            mods["tfidf"] = B.Modality(
                "tfidf", "text", "tfidf", "TfidfVectorizer", tfidf.PARAMS["max_features"],
                "sparse", files={"embeddings": {}, "knn": {}}, params=dict(tfidf.PARAMS))
        order = [m for m in names if m in mods]
        steps = tqdm(total=len(scopes) * (len(order) + 1), desc="build", unit="step",
                     disable=not opts.progress)
        for scope in scopes:
            rows = B.scope_rows(folds, scope)
            spaces = {}
            for name in order:
                if name == "tfidf":
                    mat = tfidf.fit_transform([titles[r] for r in rows],
                                              source=f"{ds.csv} ({scope})")
                    mods[name].files["embeddings"][scope] = _save_csr(w, f"tfidf/{scope}", mat)
                    spaces[name] = SparseSpace(mat)
                else:
                    spaces[name] = BitSpace(bits[rows])
            knn = {}
            for name in order:
                steps.set_postfix_str(f"{scope} {name} top-{opts.k}")
                idx, sim = spaces[name].topk(opts.k)
                knn[name] = idx
                paths = B.knn_paths(scope, name)
                w.save_array(paths["idx"], to_global(idx, rows))
                w.save_array(paths["sim"], sim)
                mods[name].files["knn"][scope] = paths
                steps.update()
            steps.set_postfix_str(f"{scope} candidate graph")
            graph = build_graph(scope, rows, spaces, knn)
            paths = B.graph_paths(scope, order)
            w.save_array(paths["cand"], to_global(graph.cand, rows))
            w.save_array(paths["topk"], graph.topk)
            for name in order:
                w.save_array(paths["sims"][name], graph.sims[name])
            graphs[scope] = paths
            steps.update()
        steps.close()
        manifest = B.Manifest(
            schema_version=B.SCHEMA_VERSION, n_items=len(ds), k=opts.k, scopes=tuple(scopes),
            modalities=tuple(mods[m] for m in order),
            dataset={"csv": ds.csv.name, "sha256": ds.sha256, "has_labels": ds.has_labels,
                     "images": str(opts.images) if opts.images else None},
            split={"protocol": "GroupKFold", "n_splits": N_SPLITS if ds.has_labels else 0,
                   "group": "label_group", "order": "file",
                   "roles": ROLES if ds.has_labels else {}},
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            libraries=library_versions(), graphs=graphs,
        )
        return w.commit(manifest)
