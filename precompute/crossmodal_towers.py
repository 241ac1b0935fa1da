"""The two towers of a cross-modal model: picture -> unit row and title -> unit row in one
shared space, as `precompute build --crossmodal` embeds every posting and as the app's
text-search child (`precompute text-query`) embeds what an analyst types.

A `Towers` is loaded from a spec:
- `CKPT`: a `precompute train crossmodal` run's best.pt; its crossmodal.json beside it
  names the encoders (loaded by name, as `precompute build` loads them) and the heads are
  read with `torch.load(weights_only=True)`. A run that tuned the last blocks of an
  encoder (`--unfreeze-image N`, `--unfreeze-text N`) keeps those blocks' tensors in the
  same best.pt; they replace the loaded encoder's.
- `open_clip:MODEL:WEIGHTS`: an open_clip / CLIP model's own two towers, no heads
  (precompute/crossmodal_openclip.py gives the exact syntax); needs the openclip extra.

`Towers.record` is what the bundle's manifest keeps so that the text side can be made
again (`text_tower_from_record`), kind "heads": the text encoder's spec and the text
projection, which the build stores in the bundle as an array; when the run tuned the text
encoder, also the checkpoint's path and sha256 (its tensors are read from there, and a
missing or changed file is refused). Kind "open_clip": the architecture's config and the
weights file's path and sha256; no arrays."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from precompute.errors import InputError

HEADS = "heads"  # record kind: encoders + linear heads (precompute train crossmodal)
OPEN_CLIP = "open_clip"  # record kind and spec prefix: an open_clip model's own towers


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def project(features: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A head without bias (CLIP's projection) then unit length: (N, in) -> (N, dim)."""
    return unit_rows(np.asarray(features, np.float32) @ np.asarray(weight, np.float32).T)


@dataclass
class EncodedPictures:
    emb: np.ndarray  # (N, dim) float32 unit rows, zeros where the picture was skipped
    present: np.ndarray  # (N,) bool
    skipped: list[tuple[int, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Towers:
    """Both sides of a cross-modal model. `encode_texts(titles)` and
    `encode_images(paths)` give unit rows of `dim` columns; `record` is JSON for the
    manifest, `arrays` the named arrays the bundle must store for it (the text head)."""

    dim: int
    model: str  # a short description: "IMAGE x TEXT"
    record: dict[str, Any]
    arrays: dict[str, np.ndarray]
    encode_texts: Callable[..., np.ndarray]
    encode_images: Callable[..., EncodedPictures]
    info: dict[str, Any] = field(default_factory=dict)


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _run_summary(ckpt: Path) -> dict[str, Any]:
    from precompute.training.crossmodal import FORMAT, SUMMARY

    path = ckpt.parent / SUMMARY
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{ckpt}: no {SUMMARY} beside it: the cross-modal checkpoint's run "
                         "record names its encoders (precompute train crossmodal writes it)"
                         ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not all(
            isinstance(meta.get(k), str) and meta.get(k) for k in ("image_model",
                                                                    "text_model")):
        raise InputError(f"{path}: not a cross-modal run record (format {FORMAT} with "
                         "image_model and text_model)")
    return meta


def load_towers(spec: str, *, device: str | None = None, image_size: int | None = None
                ) -> Towers:
    """The towers named by `spec` (a cross-modal best.pt, or `open_clip:MODEL:WEIGHTS`);
    one-line InputError when the checkpoint, its record, a model or its weights cannot be
    loaded, or their sizes disagree."""
    if spec.startswith(OPEN_CLIP + ":"):
        return _open_clip_towers(spec[len(OPEN_CLIP) + 1:], device=device,
                                 image_size=image_size)
    from precompute.image_encoders import encode_images, load_image_encoder
    from precompute.text_encoders import encode_texts, load_text_encoder
    from precompute.training.crossmodal_heads import load_crossmodal
    from precompute.training.crossmodal_unfrozen import apply_tuned

    ckpt = Path(spec).expanduser()
    meta = _run_summary(ckpt)
    heads, tuned = load_crossmodal(ckpt)
    img_w = heads.image_proj.weight.detach().cpu().numpy().astype(np.float32)
    txt_w = heads.text_proj.weight.detach().cpu().numpy().astype(np.float32)
    ienc = load_image_encoder(meta["image_model"], device=device, image_size=image_size)
    tenc = load_text_encoder(meta["text_model"], device=device)
    for side, enc_dim, head_dim in (("image", ienc.dim, img_w.shape[1]),
                                    ("text", tenc.dim, txt_w.shape[1])):
        if enc_dim != head_dim:
            raise InputError(f"{ckpt}: its {side} head takes {head_dim} features but "
                             f"{meta[side + '_model']} gives {enc_dim}")
    for side, enc in (("image", ienc), ("text", tenc)):
        if side in tuned:  # the run's tuned last blocks replace the loaded encoder's
            apply_tuned(enc.module, tuned[side], ckpt, f"{side} encoder")

    def texts(titles: Sequence[str], *, batch_size: int = 128, progress: bool = False
              ) -> np.ndarray:
        out = encode_texts(tenc, list(titles), batch_size=batch_size, device=device,
                           progress=progress)
        return project(out.emb, txt_w)

    def images(paths: Sequence[Path | None], *, batch_size: int = 64,
               workers: int | None = None, progress: bool = False) -> EncodedPictures:
        out = encode_images(ienc, paths, batch_size=batch_size, workers=workers,
                            device=device, progress=progress)
        emb = project(out.emb, img_w)
        emb[~out.present] = 0
        return EncodedPictures(emb, out.present, out.skipped, out.info)

    dim = int(txt_w.shape[0])
    record = {"kind": HEADS, "text_model": meta["text_model"],
              "image_model": meta["image_model"], "checkpoint": str(ckpt.resolve()),
              "checkpoint_sha256": file_sha256(ckpt), "text_dim": int(txt_w.shape[1]),
              "tuned": sorted(tuned)}  # "text" there: the text side needs the checkpoint
    info = {"image": ienc.info, "text": tenc.info, "best_epoch": meta.get("best_epoch"),
            "fold1_recall": meta.get("after")}
    return Towers(dim=dim, model=f"{meta['image_model']} x {meta['text_model']}",
                  record=record, arrays={"text_proj": txt_w}, encode_texts=texts,
                  encode_images=images, info=info)


def _open_clip_texts(tenc: Any, device: str | None) -> Callable[..., np.ndarray]:
    from precompute.text_encoders import encode_texts

    def texts(titles: Sequence[str], *, batch_size: int = 128, progress: bool = False
              ) -> np.ndarray:
        # float32 always: the app's text child (often on the CPU) must give the same rows
        return encode_texts(tenc, list(titles), batch_size=batch_size, device=device,
                            amp=False, progress=progress).emb

    return texts


def _open_clip_towers(spec: str, *, device: str | None, image_size: int | None) -> Towers:
    """An open_clip model's own towers (crossmodal_openclip gives the spec's syntax)."""
    from precompute.crossmodal_openclip import load_openclip
    from precompute.image_encoders import encode_images

    oc = load_openclip(spec, device=device, image_size=image_size)

    def images(paths: Sequence[Path | None], *, batch_size: int = 64,
               workers: int | None = None, progress: bool = False) -> EncodedPictures:
        out = encode_images(oc.image, paths, batch_size=batch_size, workers=workers,
                            device=device, progress=progress)
        return EncodedPictures(out.emb, out.present, out.skipped, out.info)

    return Towers(dim=oc.dim, model=f"open_clip {oc.name} ({oc.tag or oc.weights.name})",
                  record={"kind": OPEN_CLIP, **oc.record()}, arrays={},
                  encode_texts=_open_clip_texts(oc.text, device), encode_images=images,
                  info=oc.info)


def text_tower_from_record(record: dict[str, Any], arrays: dict[str, np.ndarray], *,
                           device: str | None = None) -> Callable[[Sequence[str]], np.ndarray]:
    """The text side of towers a bundle recorded (`Towers.record` and the arrays it
    stored): titles -> unit rows equal to the bundle's own text projections."""
    from precompute.text_encoders import encode_texts, load_text_encoder

    kind = record.get("kind")
    if kind == OPEN_CLIP:
        from precompute.crossmodal_openclip import load_openclip_text

        return _open_clip_texts(load_openclip_text(record, device=device), device)
    if kind != HEADS:
        raise InputError(f"cross-modal towers of kind {kind!r}: this version knows "
                         f"{HEADS!r} and {OPEN_CLIP!r}")
    weight = arrays.get("text_proj")
    spec = record.get("text_model")
    if weight is None or weight.ndim != 2 or not isinstance(spec, str):
        raise InputError("the bundle's cross-modal record lacks its text model or head")
    tenc = load_text_encoder(spec, device=device)
    if tenc.dim != weight.shape[1]:
        raise InputError(f"{spec} gives {tenc.dim} features; the bundle's text head takes "
                         f"{weight.shape[1]}")
    if "text" in record.get("tuned", ()):
        _apply_recorded_text(record, tenc)

    def texts(titles: Sequence[str]) -> np.ndarray:
        return project(encode_texts(tenc, list(titles), device=device, progress=False).emb,
                       weight)

    return texts


def _apply_recorded_text(record: dict[str, Any], tenc: Any) -> None:
    """Put the tuned text blocks of the run a record names into `tenc`, from its
    checkpoint: the very file the bundle was built with (path and sha256), or a one-line
    InputError."""
    from precompute.training.crossmodal_heads import load_crossmodal
    from precompute.training.crossmodal_unfrozen import apply_tuned

    path = Path(str(record.get("checkpoint")))
    if not path.is_file():
        raise InputError(f"{path}: missing; the bundle's text tower needs this cross-modal "
                         "checkpoint (its text encoder was tuned in training)")
    if file_sha256(path) != record.get("checkpoint_sha256"):
        raise InputError(f"{path}: sha256 differs from the bundle's record: not the "
                         "checkpoint its cross-modal rows were made with")
    tuned = load_crossmodal(path)[1]
    if "text" not in tuned:
        raise InputError(f"{path}: holds no tuned text encoder tensors, yet the bundle's "
                         "record says it does")
    apply_tuned(tenc.module, tuned["text"], path, "text encoder")
