"""`precompute train crossmodal --unfreeze-image N / --unfreeze-text N`: the projection
heads trained together with the last N blocks of an encoder, at a smaller learning rate
(`--encoder-lr`). A tuned side runs its encoder in the training loop (pictures decoded
and titles tokenised every epoch); a frozen side keeps its cached features.

Blocks: for a timm image model, timm's own grouping (`group_matcher`, what layer-wise
learning-rate decay uses; the stem is never a block, and the layers after the last
block, head conv, final norm and an fc/BN head of ours, count with it); for a text model,
the layers of its transformer stack (the largest ModuleList; the layers after it count
with the last). Of those, only parameters the embedding uses are tuned: a probe backward
pass drops the rest (a pooler mean pooling never reads). Encoders stay in eval mode:
BatchNorm keeps its running statistics (a contrastive batch is too small to re-estimate
them) and dropout stays off, so the tuned encoder embeds as `encode_images` /
`encode_texts` will.

The tuned tensors go into best.pt beside the heads' (`image_encoder.NAME`,
`text_encoder.NAME`, NAME as in the encoder's `named_parameters`), still a plain dict of
tensors; `apply_tuned` puts them back into an encoder loaded by name."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from precompute.errors import InputError
from precompute.training.crossmodal_heads import (
    clip_loss,
    epoch_rank,
    evaluate,
    mean_loss,
    shuffled_batches,
    state_of,
    untrained_heads,
)

SIDES = ("image", "text")
FLAG = {"image": "--unfreeze-image", "text": "--unfreeze-text"}


# ---- blocks --------------------------------------------------------------------------


def image_blocks(module: nn.Module, name: str) -> list[list[str]]:
    """Parameter names of each block of an image encoder (`load_image_encoder`'s module),
    in forward order."""
    from timm.models import group_parameters

    backbone = getattr(module, "backbone", module)  # ImageHead: backbone + fc/BN
    prefix = "backbone." if backbone is not module else ""
    try:
        matcher = backbone.group_matcher(coarse=False)
    except (AttributeError, NotImplementedError):
        raise InputError(f"{name}: timm gives this model no block grouping; "
                         f"{FLAG['image']} needs one") from None
    stem = matcher.get("stem") if isinstance(matcher, dict) else None
    stem_re = re.compile(stem) if isinstance(stem, str) else None
    groups = [list(g) for _, g in sorted(group_parameters(backbone, matcher).items())]
    blocks = [[prefix + n for n in g] for g in groups
              if not (stem_re and all(stem_re.match(n) for n in g))]
    grouped = {n for b in blocks for n in b}
    stem_names = {prefix + n for n, _ in backbone.named_parameters()
                  if stem_re and stem_re.match(n)}
    rest = [n for n, _ in module.named_parameters() if n not in grouped and n not in stem_names]
    if not blocks:
        raise InputError(f"{name}: no blocks found; {FLAG['image']} needs some")
    blocks[-1].extend(rest)  # the fc/BN head of a checkpoint of ours follows the last block
    return blocks


def text_blocks(module: nn.Module, name: str) -> list[list[str]]:
    """Parameter names of each layer of a text encoder's transformer stack, in order; the
    parameters registered after the stack (a final norm, a pooler) join the last layer."""
    stacks = [(sum(p.numel() for p in m.parameters()), path, m)
              for path, m in module.named_modules() if isinstance(m, nn.ModuleList) and len(m)]
    if not stacks:
        raise InputError(f"{name}: no transformer layer stack found; {FLAG['text']} needs one")
    _, path, stack = max(stacks, key=lambda s: s[0])
    names = [n for n, _ in module.named_parameters()]
    blocks = [[n for n in names if n.startswith(f"{path}.{i}.")] for i in range(len(stack))]
    last = max(names.index(n) for b in blocks for n in b)
    blocks[-1].extend(names[last + 1:])
    return [b for b in blocks if b]


def last_blocks(blocks: list[list[str]], n: int, side: str, name: str) -> list[str]:
    """The parameter names of the last `n` blocks; a one-line InputError past the count."""
    if not 0 < n <= len(blocks):
        raise InputError(f"{FLAG[side]} {n}: {name} has {len(blocks)} blocks")
    return [p for b in blocks[-n:] for p in b]


def used_by(module: nn.Module, names: list[str], forward: Callable[[], torch.Tensor]
            ) -> list[str]:
    """The names among `names` a backward pass through `forward()` reaches; leaves exactly
    those trainable in `module`."""
    params = dict(module.named_parameters())
    for p in module.parameters():
        p.requires_grad_(False)
    for n in names:
        params[n].requires_grad_(True)
    with torch.enable_grad():
        forward().float().sum().backward()
    used = [n for n in names if params[n].grad is not None]
    for n in names:
        params[n].grad = None
        params[n].requires_grad_(n in used)
    return used


# ---- forward passes with gradients ---------------------------------------------------


def text_forward(encoder: Any) -> Callable[[list[str]], torch.Tensor]:
    """Titles -> (B, dim) rows with gradients, the same computation as `encoder.embed`
    (sentence-transformers' `encode` runs without them)."""
    from sentence_transformers import SentenceTransformer

    from explorer.core.titles import normalise_title

    module = encoder.module
    if not isinstance(module, SentenceTransformer):
        embed = encoder.embed  # mean pooling over a transformers model: differentiable
        return lambda titles: embed([normalise_title(t) for t in titles])
    prepare = getattr(module, "preprocess", None) or module.tokenize  # renamed in 6.x

    def forward(titles: list[str]) -> torch.Tensor:
        dev = next(module.parameters()).device
        batch = prepare([normalise_title(t) for t in titles])
        batch = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return module(batch)["sentence_embedding"]

    return forward


def tune_setup(ienc: Any, tenc: Any, n_image: int, n_text: int, image_name: str,
               text_name: str) -> dict[str, dict[str, Any]]:
    """Per tuned side (none for a frozen one): {"blocks": N, "of": the encoder's block
    count, "tensors": the names tuned}; every other encoder parameter is frozen. A one-line
    InputError when N exceeds the blocks."""
    tuned: dict[str, dict[str, Any]] = {}
    if n_image:
        blocks = image_blocks(ienc.module, image_name)
        names = last_blocks(blocks, n_image, "image", image_name)
        x = torch.zeros(2, 3, ienc.input_size, ienc.input_size, device=ienc.device)
        tuned["image"] = {"blocks": n_image, "of": len(blocks),
                          "tensors": used_by(ienc.module, names, lambda: ienc.module(x))}
    if n_text:
        blocks = text_blocks(tenc.module, text_name)
        names = last_blocks(blocks, n_text, "text", text_name)
        fwd = text_forward(tenc)
        tuned["text"] = {"blocks": n_text, "of": len(blocks), "tensors": used_by(
            tenc.module, names, lambda: fwd(["a title", "another title"]))}
    return tuned


def apply_tuned(module: nn.Module, state: dict[str, torch.Tensor], path: Path,
                what: str) -> None:
    """Put a run's tuned tensors into an encoder loaded by name: every name must be one of
    its parameters, of the same shape (a one-line InputError naming the file otherwise)."""
    own = dict(module.named_parameters())
    wrong = [n for n in state if n not in own or own[n].shape != state[n].shape]
    if wrong:
        raise InputError(f"{path}: its tuned {what} tensors do not fit the encoder "
                         f"({len(wrong)} of {len(state)}, e.g. {wrong[0]})")
    with torch.no_grad():
        for n, tensor in state.items():
            own[n].copy_(tensor)


# ---- training ------------------------------------------------------------------------


@dataclass
class Pairs:
    """What one side sees: cached unit features (all rows), and for a tuned side the
    encoder and the rows' inputs (picture paths or titles)."""

    feats: torch.Tensor
    encoder: Any = None
    inputs: Sequence[Any] = ()
    tuned: list[str] = field(default_factory=list)


@dataclass
class Settings:
    """The numbers of a run (`precompute train crossmodal`'s, checked there)."""

    epochs: int
    batch: int
    lr: float
    encoder_lr: float
    seed: int
    dim: int
    device: torch.device
    workers: int = 0
    weight_decay: float = 0.01


def _optimizer(heads: nn.Module, image: Pairs, text: Pairs, s: Settings) -> torch.optim.AdamW:
    """AdamW: the heads at `lr` (no decay on the temperature), the tuned encoder tensors at
    `encoder_lr` (no decay on biases and norms, as timm and transformers fine-tune)."""
    decay = [p for n, p in heads.named_parameters() if n != "logit_scale"]
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": s.weight_decay, "lr": s.lr},
        {"params": [heads.logit_scale], "weight_decay": 0.0, "lr": s.lr}]
    for side in (image, text):
        params = dict(side.encoder.module.named_parameters()) if side.tuned else {}
        tensors = [params[n] for n in side.tuned]
        groups += [{"params": [p for p in tensors if p.ndim >= 2], "lr": s.encoder_lr,
                    "weight_decay": s.weight_decay},
                   {"params": [p for p in tensors if p.ndim < 2], "lr": s.encoder_lr,
                    "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]])


def _image_batches(image: Pairs, rows: torch.Tensor, batches: list[torch.Tensor],
                   s: Settings) -> Any:
    """(batch positions kept, unit image rows with gradients) per batch; a picture that can
    no longer be read leaves its pair out of that batch."""
    if not image.tuned:
        for b in batches:
            yield b, image.feats[rows[b]]
        return
    from precompute.image_encoders import ImageFiles

    enc = image.encoder
    files = ImageFiles([image.inputs[int(r)] for r in rows], enc.transform, enc.input_size)
    loader = torch.utils.data.DataLoader(files, batch_sampler=[b.tolist() for b in batches],
                                         num_workers=s.workers)
    for pos, x, ok, _ in loader:
        keep = pos[ok].to(rows.device)
        if len(keep) >= 2:
            yield keep, F.normalize(enc.module(x[ok].to(s.device)).float(), dim=1)


def _text_rows(text: Pairs, rows: torch.Tensor, forward: Callable | None) -> torch.Tensor:
    if forward is None:
        return text.feats[rows]
    return F.normalize(forward([text.inputs[int(r)] for r in rows]).float(), dim=1)


def _valid_feats(image: Pairs, text: Pairs, va: torch.Tensor,
                 s: Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold-1 features as the towers will embed them (`encode_images` / `encode_texts`)."""
    from precompute.image_encoders import encode_images
    from precompute.text_encoders import encode_texts

    img, txt = image.feats[va], text.feats[va]
    if image.tuned:
        out = encode_images(image.encoder, [image.inputs[int(r)] for r in va], device=s.device,
                            workers=s.workers, progress=False)
        img = torch.from_numpy(out.emb).to(s.device)
    if text.tuned:
        out = encode_texts(text.encoder, [text.inputs[int(r)] for r in va], device=s.device,
                           progress=False)
        txt = torch.from_numpy(out.emb).to(s.device)
    return img, txt


def _snapshot(heads: nn.Module, image: Pairs, text: Pairs
              ) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    """Copies of the heads' state and of each side's tuned tensors (CPU)."""
    tuned = {}
    for side, pairs in zip(SIDES, (image, text), strict=True):
        params = dict(pairs.encoder.module.named_parameters()) if pairs.tuned else {}
        tuned[side] = {n: params[n].detach().cpu().clone() for n in pairs.tuned}
    return state_of(heads), tuned


def train_unfrozen(image: Pairs, text: Pairs, train_rows: np.ndarray, valid_rows: np.ndarray,
                   s: Settings, on_epoch: Callable[[dict[str, Any]], None] | None = None
                   ) -> tuple[nn.Module, dict[str, dict[str, torch.Tensor]], list[dict]]:
    """As `train_heads` (the same initial heads, batches, selection and history), with the
    tuned tensors of a side trained too. Returns the selected epoch's heads, its tuned
    tensors per side (CPU; also left in the encoders) and the history."""
    dev = s.device
    tr = torch.as_tensor(np.asarray(train_rows), dtype=torch.long, device=dev)
    va = torch.as_tensor(np.asarray(valid_rows), dtype=torch.long, device=dev)
    heads = untrained_heads(image.feats.shape[1], text.feats.shape[1], s.dim, s.seed).to(dev)
    opt = _optimizer(heads, image, text, s)
    gen = torch.Generator().manual_seed(s.seed)
    forward = text_forward(text.encoder) if text.tuned else None
    start = time.perf_counter()
    first = shuffled_batches(len(tr), s.batch, torch.Generator().manual_seed(s.seed))
    # epoch 0: the encoders as loaded, so their cached features are what they embed
    entry = {"epoch": 0, "loss": mean_loss(heads, image.feats[tr], text.feats[tr], first),
             **evaluate(heads, image.feats[va], text.feats[va]),
             "seconds": round(time.perf_counter() - start, 3),
             "logit_scale": heads.logit_scale.item()}
    history = [entry]
    best_key, best = epoch_rank(entry), _snapshot(heads, image, text)
    if on_epoch is not None:
        on_epoch(entry)
    for epoch in range(1, s.epochs + 1):
        start = time.perf_counter()
        heads.train()
        losses = []
        with torch.enable_grad():
            for b, img in _image_batches(image, tr, shuffled_batches(len(tr), s.batch, gen), s):
                txt = _text_rows(text, tr[b], forward)
                loss = clip_loss(*heads(img, txt), heads.clamped_scale())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                heads.clamp_()
                losses.append(loss.item())
        entry = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
                 **evaluate(heads, *_valid_feats(image, text, va, s)),
                 "seconds": round(time.perf_counter() - start, 3),
                 "logit_scale": heads.logit_scale.item()}
        history.append(entry)
        if epoch_rank(entry) > best_key:
            best_key, best = epoch_rank(entry), _snapshot(heads, image, text)
        if on_epoch is not None:
            on_epoch(entry)
    heads.load_state_dict(best[0])
    for side, pairs in zip(SIDES, (image, text), strict=True):
        if pairs.tuned:
            apply_tuned(pairs.encoder.module, best[1][side], Path("(training)"), side)
    return heads.eval(), {k: v for k, v in best[1].items() if v}, history
