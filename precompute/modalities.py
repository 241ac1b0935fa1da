"""One builder per kind of modality. Each computes what it needs once (`prepare`: neural
embeddings, hashes), gives the embedding space of a scope (`space`: TF-IDF is fitted per
scope there), and describes itself for the manifest (`modality`)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from explorer.core import bundle as B
from explorer.core.bundle import writer as W
from explorer.core.spaces import BitSpace, DenseSpace, Space, SparseSpace, cross_space
from precompute import tfidf
from precompute.crossmodal_towers import project
from precompute.errors import InputError
from precompute.images import ImagePaths
from precompute.phash import PhashColumn


@dataclass
class Context:
    """What every builder may read: the table, image paths, the writer and options."""

    csv: Path
    titles: list[str]
    images: ImagePaths | None  # every row's image file (None without --images)
    phash: PhashColumn | None  # the hashes (None when no phash modality is built)
    writer: W.BundleWriter
    device: str | None = None
    batch_size: int | None = None
    workers: int | None = None
    image_size: int | None = None
    progress: bool = True
    use_gpu: bool = False
    log: Any = print
    ray: str | None = None  # embed neural modalities on Ray: an address, or "local"
    dataset_sha256: str = ""  # the CSV's: whether a trained model saw this table's labels
    folds: np.ndarray | None = None  # every row's fold (-1 without labels)


class Builder(Protocol):
    name: str

    def prepare(self, ctx: Context) -> None: ...
    def space(self, ctx: Context, scope: str, rows: np.ndarray) -> Space: ...
    def modality(self) -> B.Modality: ...


def safe_name(text: str) -> str:
    """A modality name from a model name: its last path part, file-name safe."""
    base = text.rstrip("/").split("/")[-1]
    name = re.sub(r"[^A-Za-z0-9_.+-]", "-", base).strip("-.")
    if not name:
        raise InputError(f"{text!r}: cannot make a modality name from it")
    return name


RUN_RECORDS = ("history.json", "crossmodal.json")  # what `precompute train` writes beside


def trained_on(ckpt: Path | None, dataset_sha256: str) -> dict[str, list[str]]:
    """{"trained_on": fold scopes} when `ckpt` is a `precompute train` run's checkpoint
    whose record beside it says it learned from this very table's labels (its CSV's
    sha256) on those folds; {} otherwise (a study checkpoint, a hub model, another table).
    `explorer learn` weighs such a modality on the folds it was fitted on."""
    if ckpt is None or not dataset_sha256 or not Path(ckpt).is_file():
        return {}
    for name in RUN_RECORDS:
        try:
            meta = json.loads((Path(ckpt).parent / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        folds = meta.get("train_folds") if isinstance(meta, dict) else None
        if meta.get("csv_sha256") == dataset_sha256 and isinstance(folds, list) and folds \
                and all(isinstance(k, int) and not isinstance(k, bool) for k in folds):
            return {"trained_on": [f"fold{k}" for k in folds]}
    return {}


@dataclass
class TfidfBuilder:
    name: str = "tfidf"
    files: dict[str, Any] = field(default_factory=lambda: {"embeddings": {}, "knn": {}})

    def prepare(self, ctx: Context) -> None:
        return None

    def space(self, ctx: Context, scope: str, rows: np.ndarray) -> Space:
        mat = tfidf.fit_transform([ctx.titles[r] for r in rows], source=f"{ctx.csv} ({scope})")
        base = f"modalities/{self.name}/{scope}"
        w = ctx.writer
        self.files["embeddings"][scope] = {
            "data": w.save_array(f"{base}.data.npy", mat.data.astype(np.float32)),
            "indices": w.save_array(f"{base}.indices.npy", mat.indices.astype(np.int32)),
            "indptr": w.save_array(f"{base}.indptr.npy", mat.indptr.astype(np.int64)),
            "n_features": int(mat.shape[1]),
        }
        return SparseSpace(mat)

    def modality(self) -> B.Modality:
        return B.Modality(self.name, "text", "tfidf", "TfidfVectorizer",
                          tfidf.PARAMS["max_features"], "sparse", self.files, dict(tfidf.PARAMS))


@dataclass
class PhashBuilder:
    name: str = "phash"
    bits: np.ndarray | None = None
    files: dict[str, Any] = field(default_factory=lambda: {"knn": {}})

    present: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def prepare(self, ctx: Context) -> None:
        col = ctx.phash
        self.bits = col.bits
        self.files["embeddings"] = ctx.writer.save_array("modalities/phash/bits.npy", self.bits)
        # as for dense modalities: rows whose image could not be hashed have no hash
        self.present = None if col.present.all() else col.present
        if self.present is not None:
            self.files["present"] = ctx.writer.save_array("modalities/phash/present.npy",
                                                          self.present)
        self.params = {"skipped": [{"row": int(r), "reason": str(why)}
                                   for r, why in col.skipped]}
        if col.skipped:
            ctx.log(f"{self.name}: {len(col.skipped)} images could not be hashed, skipped")

    def space(self, ctx: Context, scope: str, rows: np.ndarray) -> Space:
        present = None if self.present is None else self.present[rows]
        return BitSpace(self.bits[rows], present=present)

    def modality(self) -> B.Modality:
        return B.Modality(self.name, "image", "phash", "image_phash (64-bit DCT hash)", 64,
                          "bits", self.files, self.params)


@dataclass
class DenseBuilder:
    """A neural modality (image or text) or a fusion: (N, d) unit rows, some absent."""

    name: str
    kind: str
    encoder: str
    model: str
    emb: np.ndarray | None = None
    present: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=lambda: {"knn": {}})

    def open_embeddings(self, ctx: Context, n: int, dim: int) -> np.memmap:
        """The bundle's (n, dim) float32 embeddings file, memory-mapped in the writer's
        temporary folder: encoders write each batch into it, so the rows are never all
        held in memory; a failed build removes it with the folder."""
        rel = f"modalities/{self.name}/embeddings.npy"
        self.files["embeddings"] = rel
        return ctx.writer.open_array(rel, (n, dim), np.float32)

    def store(self, ctx: Context, emb: np.ndarray, present: np.ndarray | None) -> None:
        """Record the embeddings: the memmap of `open_embeddings` (flushed, then read
        back read-only by the search) or an array, saved here."""
        base = f"modalities/{self.name}"
        if isinstance(emb, np.memmap) and emb.filename is not None:
            emb.flush()
            self.emb = np.load(emb.filename, mmap_mode="r", allow_pickle=False)
        else:
            self.emb = np.ascontiguousarray(emb, np.float32)
            self.files["embeddings"] = ctx.writer.save_array(f"{base}/embeddings.npy",
                                                             self.emb)
        self.present = None if present is None or present.all() else present
        if self.present is not None:
            self.files["present"] = ctx.writer.save_array(f"{base}/present.npy", self.present)

    def space(self, ctx: Context, scope: str, rows: np.ndarray) -> Space:
        present = None if self.present is None else self.present[rows]
        # scope `all`: search the memory-mapped file itself, not a copy of every row
        whole = len(rows) == len(self.emb) and np.array_equal(rows, np.arange(len(rows)))
        return DenseSpace(self.emb if whole else self.emb[rows], present=present,
                          use_gpu=ctx.use_gpu)

    def modality(self) -> B.Modality:
        return B.Modality(self.name, self.kind, self.encoder, self.model,
                          int(self.emb.shape[1]), "dense", self.files, self.params)


@dataclass
class ImageBuilder(DenseBuilder):
    spec: str = ""

    def prepare(self, ctx: Context) -> None:
        from precompute.image_encoders import encode_images, load_image_encoder
        from precompute.image_encoders import parse_spec as parse_image_spec

        if ctx.images is None:
            raise InputError(f"--image {self.spec}: needs --images DIR")
        if ctx.ray is not None:
            from precompute.ray_embed import require_ray

            require_ray()  # before the model loads
        paths = ctx.images.paths
        # with Ray the model loads here only to check the spec and learn its size
        enc = load_image_encoder(self.spec, device="cpu" if ctx.ray else ctx.device,
                                 image_size=ctx.image_size)
        emb, info = self.open_embeddings(ctx, len(paths), enc.dim), enc.info
        if ctx.ray is not None:
            from precompute import ray_embed

            del enc  # the actors load their own
            out = ray_embed.embed("image", self.spec, [None if p is None else str(p)
                                                       for p in paths], emb,
                                  address=ctx.ray, workers=ctx.workers, device=ctx.device,
                                  batch_size=ctx.batch_size or 64,
                                  image_size=ctx.image_size, progress=ctx.progress)
        else:
            out = encode_images(enc, paths, batch_size=ctx.batch_size or 64,
                                workers=ctx.workers, device=ctx.device,
                                progress=ctx.progress, out=emb)
        why = ctx.images.rejected  # a rejected name's own reason, not just "no image"
        self.params = {**info, **out.info,
                       **trained_on(parse_image_spec(self.spec)[1], ctx.dataset_sha256),
                       "skipped": [{"row": int(r), "reason": str(why.get(r, reason))}
                                   for r, reason in out.skipped]}
        ctx.log(f"{self.name}: {len(paths)} images, "
                f"{out.info.get('images_per_s', 0):.1f} images/s, {len(out.skipped)} skipped")
        self.store(ctx, emb, out.present)


@dataclass
class TextBuilder(DenseBuilder):
    spec: str = ""

    def prepare(self, ctx: Context) -> None:
        from precompute.text_encoders import encode_texts, load_text_encoder
        from precompute.text_encoders import parse_spec as parse_text_spec

        if ctx.ray is not None:
            from precompute.ray_embed import require_ray

            require_ray()  # before the model loads
        # with Ray the model loads here only to check the spec and learn its size
        enc = load_text_encoder(self.spec, device="cpu" if ctx.ray else ctx.device)
        emb, info = self.open_embeddings(ctx, len(ctx.titles), enc.dim), enc.info
        if ctx.ray is not None:
            from precompute import ray_embed

            del enc  # the actors load their own
            out = ray_embed.embed("text", self.spec, ctx.titles, emb, address=ctx.ray,
                                  workers=ctx.workers, device=ctx.device,
                                  batch_size=ctx.batch_size or 128, progress=ctx.progress)
        else:
            out = encode_texts(enc, ctx.titles, batch_size=ctx.batch_size or 128,
                               device=ctx.device, progress=ctx.progress, out=emb)
        self.params = {**info, **out.info,
                       **trained_on(parse_text_spec(self.spec)[1], ctx.dataset_sha256)}
        if str(info.get("kind", "")).startswith(("transformers", "study")):
            self.encoder = "transformers"
        ctx.log(f"{self.name}: {len(ctx.titles)} titles, "
                f"{out.info.get('titles_per_s', 0):.1f} titles/s")
        self.store(ctx, emb, None)


FUSE_BLOCK_ROWS = 8192  # rows fused at a time (float64 temporaries: 8192 x d x 8 bytes)


@dataclass
class FusedBuilder(DenseBuilder):
    """Weight-scaled concatenation of normalised dense modalities: its inner product is
    the weighted mean of their cosines (what `sum` fusion scores), so INB and exact search
    can run on the fusion itself. A part missing for a posting counts as zero."""

    parts: tuple[DenseBuilder, ...] = ()
    weights: tuple[float, ...] = ()

    def prepare(self, ctx: Context) -> None:
        w = np.asarray(self.weights, np.float64)
        w = w / w.sum()
        n = len(self.parts[0].emb)
        emb = self.open_embeddings(ctx, n, sum(int(p.emb.shape[1]) for p in self.parts))
        present = np.zeros(n, bool)
        # row blocks into the memmap: each row's arithmetic is that of the whole array
        for lo in range(0, n, FUSE_BLOCK_ROWS):
            hi = min(lo + FUSE_BLOCK_ROWS, n)
            blocks = [np.sqrt(wi) * p.emb[lo:hi] for wi, p in zip(w, self.parts, strict=True)]
            part = np.concatenate(blocks, axis=1).astype(np.float32)
            norms = np.linalg.norm(part, axis=1, keepdims=True)
            emb[lo:hi] = np.divide(part, norms, out=np.zeros_like(part), where=norms > 0)
            present[lo:hi] = norms[:, 0] > 0
        self.params = {"parts": [p.name for p in self.parts], "weights": [float(x) for x in w]}
        self.store(ctx, emb, present)


def parse_fuse(text: str, dense: dict[str, DenseBuilder]) -> FusedBuilder:
    """'A,B[:wA,wB]' over dense modalities already requested."""
    names, _, weights = text.partition(":")
    parts = [n.strip() for n in names.split(",") if n.strip()]
    if len(parts) < 2:
        raise InputError(f"--fuse {text!r}: name two or more modalities, e.g. A,B[:0.5,0.5]")
    missing = [p for p in parts if p not in dense]
    if missing:
        raise InputError(f"--fuse {text!r}: {', '.join(missing)} is not a neural modality of "
                         f"this build (available: {', '.join(dense) or 'none'})")
    try:
        w = tuple(float(x) for x in weights.split(",")) if weights else (1.0,) * len(parts)
    except ValueError:
        raise InputError(f"--fuse {text!r}: weights must be numbers") from None
    if (len(w) != len(parts) or not all(math.isfinite(x) and 0 <= x <= 1000 for x in w)
            or sum(w) <= 0):  # NaN passes both `< 0` and `<= 0`
        raise InputError(f"--fuse {text!r}: one weight in [0, 1000] per modality, not all 0")
    kinds = {dense[p].kind for p in parts}
    return FusedBuilder(name="+".join(parts), kind=kinds.pop() if len(kinds) == 1 else "fused",
                        encoder="fused", model=text, parts=tuple(dense[p] for p in parts),
                        weights=w)


CROSS_BLOCK_ROWS = 32768  # postings a cross-modal block embeds at a time (both sides)


@dataclass
class CrossBuilder:
    """A cross-modal modality: every posting's picture and title through the two towers of
    a `precompute train crossmodal` model (precompute.crossmodal_towers), stored as the
    pictures' rows (`embeddings`, absent where the picture could not be read) and the
    titles' rows (`text`); its similarity is `explorer.core.spaces.cross_space`'s. The
    towers' record and text head are stored too, so the app can embed typed text."""

    name: str
    spec: str
    text: np.ndarray | None = None
    image: np.ndarray | None = None
    present: np.ndarray | None = None
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=lambda: {"knn": {}})

    def prepare(self, ctx: Context) -> None:
        from tqdm import tqdm

        from precompute.crossmodal_towers import load_towers

        if ctx.images is None:
            raise InputError(f"--crossmodal {self.name}:{self.spec}: needs --images DIR")
        towers = load_towers(self.spec, device=ctx.device, image_size=ctx.image_size)
        n = len(ctx.titles)
        # both sides stream into the bundle's files a block of postings at a time: memory
        # holds one block's encoder features, never every posting's
        image, text = self._open_sides(ctx, n, towers.dim)
        present = np.zeros(n, bool)
        skipped: list[tuple[int, str]] = []
        seconds = 0.0
        with tqdm(total=n, desc=f"{self.name} pictures and titles", unit="posting",
                  disable=not ctx.progress) as bar:
            for lo in range(0, n, CROSS_BLOCK_ROWS):
                hi = min(lo + CROSS_BLOCK_ROWS, n)
                pics = towers.encode_images(ctx.images.paths[lo:hi],
                                            batch_size=ctx.batch_size or 64,
                                            workers=ctx.workers, progress=False)
                image[lo:hi], present[lo:hi] = pics.emb, pics.present
                skipped += [(lo + r, why) for r, why in pics.skipped]
                seconds += float(pics.info.get("seconds") or 0.0)
                text[lo:hi] = towers.encode_texts(ctx.titles[lo:hi],
                                                  batch_size=ctx.batch_size or 128)
                bar.update(hi - lo)
        self._store_sides(ctx, image, text, present, towers.arrays)
        self.model = towers.model
        why = ctx.images.rejected
        rate = round(int(present.sum()) / seconds, 2) if seconds > 0 else None
        self.params = {"towers": towers.record, **towers.info,
                       "images_seconds": round(seconds, 3), "images_per_s": rate,
                       **trained_on(Path(self.spec), ctx.dataset_sha256),
                       "skipped": [{"row": int(r), "reason": str(why.get(r, reason))}
                                   for r, reason in skipped]}
        ctx.log(f"{self.name}: {n} titles and pictures in one space ({towers.dim} "
                f"dimensions), {len(skipped)} pictures skipped")

    def _open_sides(self, ctx: Context, n: int, dim: int) -> tuple[np.memmap, np.memmap]:
        """The pictures' and the titles' (n, dim) files, memory-mapped in the writer's
        temporary folder (removed with it when the build fails)."""
        base = f"modalities/{self.name}"
        self.files["embeddings"], self.files["text"] = f"{base}/image.npy", f"{base}/text.npy"
        return (ctx.writer.open_array(self.files["embeddings"], (n, dim), np.float32),
                ctx.writer.open_array(self.files["text"], (n, dim), np.float32))

    def _store_sides(self, ctx: Context, image: np.memmap, text: np.memmap,
                     present: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        """Flush both sides and read them back read-only for the search; save which rows
        have a picture (when not all) and the text tower's arrays."""
        base, w = f"modalities/{self.name}", ctx.writer
        for arr in (image, text):
            arr.flush()
        self.image = np.load(image.filename, mmap_mode="r", allow_pickle=False)
        self.text = np.load(text.filename, mmap_mode="r", allow_pickle=False)
        self.present = None if present.all() else present
        if self.present is not None:
            self.files["present"] = w.save_array(f"{base}/present.npy", self.present)
        self.files["tower"] = {key: w.save_array(f"{base}/tower.{key}.npy", arr)
                               for key, arr in arrays.items()}

    def space(self, ctx: Context, scope: str, rows: np.ndarray) -> Space:
        present = None if self.present is None else self.present[rows]
        return cross_space(self.text[rows], self.image[rows], present, use_gpu=ctx.use_gpu)

    def modality(self) -> B.Modality:
        return B.Modality(self.name, "cross", "crossmodal", self.model,
                          int(self.text.shape[1]), "cross", self.files, self.params)


def parse_crossmodal(text: str, *, has_images: bool) -> CrossBuilder:
    """'NAME:CKPT' (a cross-modal run's best.pt), checked before any model loads."""
    name, sep, spec = text.partition(":")
    if not sep or not spec or not B.MODALITY_NAME.fullmatch(name):
        raise InputError(f"--crossmodal {text!r}: expected NAME:CHECKPOINT, NAME of letters, "
                         "digits and _ . + -")
    if not has_images:
        raise InputError(f"--crossmodal {text!r}: needs --images DIR (the pictures' side)")
    return CrossBuilder(name=name, spec=spec)


FIT = {"epochs": 20, "batch": 128, "lr": 3e-3, "dim": 128, "seed": 0}  # bench/crossmodal.py's


@dataclass
class FittedCrossBuilder(CrossBuilder):
    """A cross-modal modality whose heads are fitted here, on two neural modalities of this
    build (their unit rows are the frozen encoders' features `precompute train crossmodal`
    would embed again): CLIP-style heads on folds 2-4, the epoch chosen on fold 1 by
    text-to-picture recall@10, then every posting projected. Seconds on the demo, where
    it saves the training run's second pass over every picture. The rows are held in
    memory for the training: for large tables, train with `precompute train crossmodal`."""

    image_part: DenseBuilder | None = None
    text_part: DenseBuilder | None = None

    def prepare(self, ctx: Context) -> None:
        import torch

        from precompute.split import ROLES
        from precompute.training.crossmodal import train_heads

        img, txt = self.image_part, self.text_part
        folds = ctx.folds
        if folds is None or not (folds >= 0).any():
            raise InputError(f"--crossmodal-fit {self.name}: needs label_group (the heads "
                             "are fitted on folds 2-4 and chosen on fold 1)")
        n = len(folds)
        has = np.ones(n, bool) if img.present is None else np.asarray(img.present)
        train = np.flatnonzero(np.isin(folds, ROLES["train"]) & has)
        valid = np.flatnonzero((folds == ROLES["valid"]) & has)
        if len(train) < 2 or len(valid) < 1:
            raise InputError(f"--crossmodal-fit {self.name}: too few postings with a "
                             "picture in folds 1-4")
        dev = ctx.device or ("cuda" if torch.cuda.is_available() else "cpu")
        # copies: torch wants writable arrays, and the parts are read-only memory maps
        heads, history = train_heads(np.array(img.emb, np.float32),
                                     np.array(txt.emb, np.float32), train, valid,
                                     device=dev, **FIT)
        w_img = heads.image_proj.weight.detach().cpu().numpy().astype(np.float32)
        w_txt = heads.text_proj.weight.detach().cpu().numpy().astype(np.float32)
        image, text = self._open_sides(ctx, n, FIT["dim"])
        for lo in range(0, n, CROSS_BLOCK_ROWS):
            hi = min(lo + CROSS_BLOCK_ROWS, n)
            image[lo:hi] = np.where(has[lo:hi, None], project(img.emb[lo:hi], w_img), 0)
            text[lo:hi] = project(txt.emb[lo:hi], w_txt)
        self._store_sides(ctx, image, text, has, {"text_proj": w_txt})
        best = max(history, key=lambda h: (h["recall@10"], h["recall@1"], -h["epoch"]))
        self.model = f"{img.name} x {txt.name} (heads fitted in the build)"
        self.params = {
            "towers": {"kind": "heads", "text_model": txt.spec, "image_model": img.spec,
                       "text_dim": int(w_txt.shape[1]), "fitted_on": [img.name, txt.name]},
            "fit": FIT, "best_epoch": best["epoch"],
            "fold1_recall": {"before": {k: history[0][k] for k in ("recall@1", "recall@10")},
                             "after": {k: best[k] for k in ("recall@1", "recall@10")}},
            "trained_on": [f"fold{k}" for k in ROLES["train"]]}
        ctx.log(f"{self.name}: heads fitted on {img.name} and {txt.name} (fold-1 "
                f"text-to-picture recall@10 {history[0]['recall@10']:.3f} -> "
                f"{best['recall@10']:.3f})")


def parse_crossmodal_fit(text: str, dense: dict[str, DenseBuilder]) -> FittedCrossBuilder:
    """'NAME:IMAGE,TEXT': an image and a text modality (by name) of this build."""
    name, sep, parts = text.partition(":")
    pair = [p.strip() for p in parts.split(",")]
    if not sep or not B.MODALITY_NAME.fullmatch(name) or len(pair) != 2:
        raise InputError(f"--crossmodal-fit {text!r}: expected NAME:IMAGE,TEXT (an image and "
                         "a text modality of this build, e.g. cx:effnet,minilm)")
    kinds = {p: getattr(dense.get(p), "kind", None) for p in pair}
    if kinds[pair[0]] != "image" or kinds[pair[1]] != "text" or \
            not isinstance(dense[pair[1]], TextBuilder):
        raise InputError(f"--crossmodal-fit {text!r}: {pair[0]} must be a neural image "
                         f"modality and {pair[1]} a neural text modality of this build "
                         f"(neural ones here: {', '.join(dense) or 'none'})")
    return FittedCrossBuilder(name=name, spec="", image_part=dense[pair[0]],
                              text_part=dense[pair[1]])
