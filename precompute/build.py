"""`precompute build`: dataset -> index bundle (items, embeddings, thumbnails, per-scope
top-K lists and candidate graphs), written to a temporary folder and renamed at the end."""

from __future__ import annotations

import dataclasses
import platform
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from explorer.core import ann
from explorer.core import bundle as B
from explorer.core.bundle import writer as W
from explorer.core.faiss_search import gpu_count
from explorer.core.graph import build_graph, to_global
from precompute.dataset import Dataset, read_dataset
from precompute.errors import InputError
from precompute.images import image_paths
from precompute.modalities import (
    Builder,
    Context,
    DenseBuilder,
    ImageBuilder,
    PhashBuilder,
    TextBuilder,
    TfidfBuilder,
    parse_crossmodal,
    parse_crossmodal_fit,
    parse_fuse,
    safe_name,
)
from precompute.phash import phash_column
from precompute.split import N_SPLITS, ROLES, assign_folds

THUMBNAIL_SIZE = 192


@dataclass
class BuildOptions:
    csv: Path
    out: Path
    images: Path | None = None
    text: tuple[str, ...] = ("tfidf",)
    image: tuple[str, ...] = ("phash",)
    fuse: tuple[str, ...] = ()
    crossmodal: tuple[str, ...] = ()  # NAME:CKPT (precompute train crossmodal's best.pt)
    crossmodal_fit: tuple[str, ...] = ()  # NAME:IMAGE,TEXT (heads fitted in the build)
    k: int = 50
    force: bool = False
    progress: bool = True
    thumbnails: bool = True
    device: str | None = None
    batch_size: int | None = None
    workers: int | None = None
    image_size: int | None = None
    search: str = "auto"  # exact | approx | auto (explorer.core.ann.resolve)
    ray: str | None = None  # neural embedding on Ray: an address, or ray_embed.LOCAL


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("shopee-explorer", "numpy", "pandas", "scipy", "scikit-learn", "faiss-cpu",
                 "faiss-gpu", "pyarrow", "imagehash", "pillow", "torch", "timm",
                 "sentence-transformers", "transformers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _builders(opts: BuildOptions) -> list[Builder]:
    """One builder per requested modality, in the order given (text, image, fused)."""
    out: list[Builder] = []
    dense: dict[str, DenseBuilder] = {}
    for kind, specs in (("text", opts.text), ("image", opts.image)):
        for spec in specs:
            if spec == "tfidf" and kind == "text":
                b: Builder = TfidfBuilder()
            elif spec == "phash" and kind == "image":
                b = PhashBuilder()
            else:
                name, spec = _alias(spec)
                cls = TextBuilder if kind == "text" else ImageBuilder
                b = cls(name=name, kind=kind, encoder="timm" if kind == "image" else
                        "sentence-transformers", model=spec, spec=spec)
                dense[name] = b
            out.append(b)
    for spec in opts.fuse:
        fused = parse_fuse(spec, dense)
        dense[fused.name] = fused
        out.append(fused)
    out.extend(parse_crossmodal(spec, has_images=opts.images is not None)
               for spec in opts.crossmodal)
    out.extend(parse_crossmodal_fit(spec, dense) for spec in opts.crossmodal_fit)
    names = [b.name for b in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"modality name {dup[0]!r} is requested twice")
    if not out:
        raise InputError("nothing to build: give at least one --text or --image modality")
    return out


def _alias(spec: str) -> tuple[str, str]:
    """'ALIAS=NAME[:CHECKPOINT]' names the modality ALIAS; without it the name is the
    model name's last part ('sentence-transformers/all-MiniLM-L6-v2' -> 'all-MiniLM-L6-v2')."""
    alias, sep, rest = spec.partition("=")
    if sep and re.fullmatch(r"[A-Za-z0-9_.+-]+", alias):
        return alias, rest
    return safe_name(spec.split(":", 1)[0]), spec


def _check_options(opts: BuildOptions) -> None:
    if opts.k < 2:
        raise InputError(f"--k {opts.k}: need at least 2 (the query and one neighbour)")
    if opts.images is not None and not opts.images.is_dir():
        raise InputError(f"--images {opts.images}: not a folder")
    if opts.search not in ann.MODES:
        raise InputError(f"--search {opts.search!r}: expected one of {', '.join(ann.MODES)}")
    if opts.ray is not None:  # before the CSV is read: a missing extra is one line at once
        from precompute.ray_embed import require_ray

        require_ray()


def _items(ds: Dataset, folds: np.ndarray, hexes: pd.Series) -> pd.DataFrame:
    t = ds.table
    labels = t["label_group"] if ds.has_labels else pd.Series([None] * len(t), dtype=object)
    return pd.DataFrame({
        "posting_id": t["posting_id"], "image": t["image"], "title": t["title"],
        "label_group": labels.to_numpy(), "image_phash": hexes.str.lower().to_numpy(),
        "fold": folds,
    })


def _thumbnails(ctx: Context) -> dict[str, str]:
    from precompute.thumbnails import make_thumbnails

    blob, offsets = make_thumbnails(ctx.images.paths, size=THUMBNAIL_SIZE,
                                    progress=ctx.progress)
    ctx.writer.save_bytes(B.THUMBNAILS["data"], blob)
    ctx.writer.save_array(B.THUMBNAILS["offsets"], offsets.astype(np.int64))
    return {**B.THUMBNAILS, "size": THUMBNAIL_SIZE, "format": "jpeg"}


def build(opts: BuildOptions) -> Path:
    """Build the bundle at opts.out. The target is locked and checked first (only a bundle
    that holds neither the CSV nor the image folder is replaced, and only with `force`),
    so a refused build does no work."""
    _check_options(opts)
    builders = _builders(opts)
    log = tqdm.write if opts.progress else (lambda _msg: None)
    extra: dict = {}
    protect = (opts.csv, *((opts.images,) if opts.images else ()))
    try:
        writer = W.BundleWriter(opts.out, overwrite=opts.force, protect=protect)
    except B.BundleError as exc:  # --out is not a place we may write: a bad option
        raise InputError(str(exc)) from None
    with writer as w:
        ds = read_dataset(opts.csv)
        folds = (assign_folds(ds.table["label_group"], source=str(ds.csv)) if ds.has_labels
                 else np.full(len(ds), -1, np.int8))
        scopes = B.scope_names(N_SPLITS) if ds.has_labels else ("all",)
        images = image_paths(opts.images, ds.table["image"]) if opts.images else None
        phash = None
        if any(isinstance(b, PhashBuilder) for b in builders):
            phash = phash_column(ds.table, images, ds.csv, progress=opts.progress)
        ctx = Context(csv=ds.csv, titles=ds.table["title"].tolist(), images=images,
                      phash=phash, writer=w, device=opts.device, batch_size=opts.batch_size,
                      workers=opts.workers, image_size=opts.image_size,
                      progress=opts.progress, use_gpu=gpu_count() > 0, log=log,
                      ray=opts.ray, dataset_sha256=ds.sha256, folds=folds)
        # the CSV's hashes, with those computed from images ("" where there is none)
        w.save_items(_items(ds, folds, ds.table["image_phash"] if phash is None
                            else phash.hexes))
        for b in builders:
            b.prepare(ctx)
        if images is not None and opts.thumbnails:
            extra["thumbnails"] = _thumbnails(ctx)
        graphs, searches = _search_scopes(ctx, builders, folds, scopes, opts.k, opts.search)
        manifest = B.Manifest(
            schema_version=B.SCHEMA_VERSION, n_items=len(ds), k=opts.k, scopes=tuple(scopes),
            modalities=tuple(_with_search(b.modality(), searches[b.name]) for b in builders),
            dataset={"csv": ds.csv.name, "sha256": ds.sha256, "has_labels": ds.has_labels,
                     "images": str(opts.images) if opts.images else None},
            split={"protocol": "GroupKFold", "n_splits": N_SPLITS if ds.has_labels else 0,
                   "group": "label_group", "order": "file",
                   "roles": ROLES if ds.has_labels else {}},
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            libraries=library_versions(), graphs=graphs, extra=extra,
        )
        return w.commit(manifest)


def _with_search(mod: B.Modality, search: dict[str, dict]) -> B.Modality:
    """The modality's manifest entry with `params.search[scope]`: how its top-K was found."""
    return dataclasses.replace(mod, params={**mod.params, "search": search})


def _search_scopes(ctx: Context, builders: list[Builder], folds: np.ndarray,
                   scopes: tuple[str, ...], k: int, search: str = "auto"
                   ) -> tuple[dict[str, dict], dict[str, dict[str, dict]]]:
    """Top-K of every modality within every scope (exact, or approximate per `search`), the
    scope's candidate graph, and per modality and scope the record of the search that ran."""
    w = ctx.writer
    graphs: dict[str, dict] = {}
    names = [b.name for b in builders]
    records: dict[str, dict[str, dict]] = {name: {} for name in names}
    steps = tqdm(total=len(scopes) * (len(builders) + 1), desc="search", unit="step",
                 disable=not ctx.progress)
    for scope in scopes:
        rows = B.scope_rows(folds, scope)
        spaces = {b.name: b.space(ctx, scope, rows) for b in builders}
        knn = {}
        for b in builders:
            steps.set_postfix_str(f"{scope} {b.name} top-{k}")
            idx, sim, record = ann.search_topk(spaces[b.name], k, search)
            records[b.name][scope] = record
            if record.get("note"):
                ctx.log(f"{b.name} {scope}: {record['note']}")
            knn[b.name] = idx
            paths = W.knn_paths(scope, b.name)
            w.save_array(paths["idx"], to_global(idx, rows))
            w.save_array(paths["sim"], sim)
            b.files["knn"][scope] = paths
            steps.update()
        steps.set_postfix_str(f"{scope} candidate graph")
        graph = build_graph(scope, rows, spaces, knn)
        paths = W.graph_paths(scope, names)
        w.save_array(paths["cand"], to_global(graph.cand, rows))
        w.save_array(paths["topk"], graph.topk)
        for name in names:
            w.save_array(paths["sims"][name], graph.sims[name])
        graphs[scope] = paths
        steps.update()
    steps.close()
    return graphs, records
