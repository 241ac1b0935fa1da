"""The cross-modal model of `precompute train crossmodal`: two projection heads and a
learnable temperature, CLIP's symmetric contrastive loss, text-to-image recall@k, the
training of the heads on cached features (`train_heads`), and best.pt: a plain dict of
tensors (the heads', and the tuned tensors of a partly unfrozen encoder), written
atomically and read with `torch.load(weights_only=True)` only."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from precompute.checkpoints import read_checkpoint, save_checkpoint
from precompute.errors import InputError

INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature
MAX_LOGIT_SCALE = math.log(100.0)      # CLIP's clamp: logits at most 100 x cosine
KEYS = ("image_proj.weight", "text_proj.weight", "logit_scale")
# a tuned encoder's tensors in best.pt: the prefix, then the name in its named_parameters
ENCODER_PREFIX = {"image": "image_encoder.", "text": "text_encoder."}
EVAL_CHUNK = 1024  # query rows scored at a time in recall_at_k


# ---- model and loss ------------------------------------------------------------------


class ProjectionHeads(nn.Module):
    """A linear map per side (image_dim -> dim, text_dim -> dim, no bias, as CLIP's
    projections) and a learnable log inverse temperature `logit_scale`, initialised to
    log(1/0.07) and never used above log(100)."""

    def __init__(self, image_dim: int, text_dim: int, dim: int) -> None:
        super().__init__()
        self.image_proj = nn.Linear(image_dim, dim, bias=False)
        self.text_proj = nn.Linear(text_dim, dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))

    @property
    def dims(self) -> dict[str, int]:
        return {"image_dim": self.image_proj.in_features,
                "text_dim": self.text_proj.in_features, "dim": self.image_proj.out_features}

    def clamped_scale(self) -> torch.Tensor:
        """The log scale as used: at most log(100)."""
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE)

    def forward(self, image_feats: torch.Tensor,
                text_feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected (not yet normalised) image and text rows."""
        return self.image_proj(image_feats), self.text_proj(text_feats)

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp the parameter itself after an optimiser step, as CLIP's training does."""
        self.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)


def clip_loss(image_proj: torch.Tensor, text_proj: torch.Tensor,
              logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE: rows are L2-normalised, logits = exp(logit_scale) * img @ txt.T,
    row i's right answer is column i; the mean of the cross-entropy over the rows (image to
    text) and over the columns (text to image)."""
    img = F.normalize(image_proj, dim=1)
    txt = F.normalize(text_proj, dim=1)
    logits = torch.exp(torch.as_tensor(logit_scale, dtype=img.dtype)) * img @ txt.T
    target = torch.arange(len(img), device=img.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


@torch.no_grad()
def recall_at_k(text_proj: torch.Tensor, image_proj: torch.Tensor, k: int) -> float:
    """Text-to-image retrieval: the share of rows i whose own picture (image row i) is
    among the k pictures nearest (cosine) to title i. A picture that ties with the right
    one does not push it out (two postings may share one image file)."""
    if len(text_proj) != len(image_proj) or len(text_proj) == 0:
        raise ValueError("recall_at_k needs as many image rows as text rows, at least one")
    txt = F.normalize(text_proj.float(), dim=1)
    img = F.normalize(image_proj.float(), dim=1)
    hits = 0
    for lo in range(0, len(txt), EVAL_CHUNK):
        sims = txt[lo:lo + EVAL_CHUNK] @ img.T
        rows = torch.arange(lo, lo + len(sims), device=sims.device)
        own = sims[torch.arange(len(sims)), rows]
        ahead = (sims > own[:, None]).sum(dim=1)  # pictures strictly nearer than its own
        hits += int((ahead < k).sum())
    return hits / len(txt)


# ---- training ------------------------------------------------------------------------


def shuffled_batches(n: int, batch: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Shuffled batches of row positions; a last batch of one row (no negatives) is left
    out of the epoch."""
    order = torch.randperm(n, generator=gen)
    out = [order[lo:lo + batch] for lo in range(0, n, batch)]
    return [b for b in out if len(b) >= 2]


def evaluate(heads: ProjectionHeads, image: torch.Tensor,
              text: torch.Tensor) -> dict[str, float]:
    heads.eval()
    with torch.no_grad():
        img, txt = heads(image, text)
    return {"recall@1": recall_at_k(txt, img, 1), "recall@10": recall_at_k(txt, img, 10)}


def mean_loss(heads: ProjectionHeads, image: torch.Tensor, text: torch.Tensor,
               batches: list[torch.Tensor]) -> float:
    with torch.no_grad():
        losses = [float(clip_loss(*heads(image[b], text[b]), heads.clamped_scale()))
                  for b in batches]
    return float(np.mean(losses)) if losses else float("nan")


def untrained_heads(image_dim: int, text_dim: int, dim: int, seed: int) -> ProjectionHeads:
    """The heads training starts from for a seed (its epoch 0): what "before training"
    means for a recall."""
    torch.manual_seed(seed)
    return ProjectionHeads(image_dim, text_dim, dim)


def train_heads(image_feats: np.ndarray | torch.Tensor, text_feats: np.ndarray | torch.Tensor,
                train_rows: np.ndarray, valid_rows: np.ndarray, *, epochs: int, batch: int,
                lr: float, seed: int, dim: int = 256, weight_decay: float = 0.01,
                device: str | torch.device = "cpu",
                on_epoch: Any = None) -> tuple[ProjectionHeads, list[dict[str, Any]]]:
    """Train heads on (image_feats[r], text_feats[r]) pairs of `train_rows` with AdamW
    (no weight decay on the temperature) over shuffled batches, and return the heads of
    the epoch with the best recall@10 on `valid_rows` (ties: better recall@1, then the
    earlier epoch; the untrained heads, epoch 0, compete too) and the history: one dict
    per epoch (epoch, loss = mean training-batch loss, recall@1, recall@10, seconds,
    logit_scale), epoch 0 first. Deterministic for a seed on the CPU. `on_epoch(entry)` is
    called after each entry (progress lines)."""
    if epochs < 1 or batch < 2 or not lr > 0 or dim < 1:
        raise ValueError("epochs >= 1, batch >= 2, lr > 0 and dim >= 1 expected")
    if len(train_rows) < 2 or len(valid_rows) < 1:
        raise ValueError("at least 2 training rows and 1 validation row expected")
    dev = torch.device(device)
    image = torch.as_tensor(np.asarray(image_feats), dtype=torch.float32).to(dev)
    text = torch.as_tensor(np.asarray(text_feats), dtype=torch.float32).to(dev)
    tr = torch.as_tensor(np.asarray(train_rows), dtype=torch.long).to(dev)
    va = torch.as_tensor(np.asarray(valid_rows), dtype=torch.long).to(dev)
    heads = untrained_heads(image.shape[1], text.shape[1], dim, seed).to(dev)
    gen = torch.Generator().manual_seed(seed)  # the batches' order
    decay = [p for n, p in heads.named_parameters() if n != "logit_scale"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": [heads.logit_scale], "weight_decay": 0.0}], lr=lr)
    img_tr, txt_tr, img_va, txt_va = image[tr], text[tr], image[va], text[va]
    start = time.perf_counter()
    first = shuffled_batches(len(tr), batch, torch.Generator().manual_seed(seed))
    entry = {"epoch": 0, "loss": mean_loss(heads, img_tr, txt_tr, first),
             **evaluate(heads, img_va, txt_va), "seconds": round(time.perf_counter() - start, 3),
             "logit_scale": heads.logit_scale.item()}
    history = [entry]
    best_key, best_state = epoch_rank(entry), state_of(heads)
    if on_epoch is not None:
        on_epoch(entry)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        heads.train()
        losses = []
        for b in shuffled_batches(len(tr), batch, gen):
            loss = clip_loss(*heads(img_tr[b], txt_tr[b]), heads.clamped_scale())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            heads.clamp_()
            losses.append(loss.item())
        entry = {"epoch": epoch, "loss": float(np.mean(losses)),
                 **evaluate(heads, img_va, txt_va),
                 "seconds": round(time.perf_counter() - start, 3),
                 "logit_scale": heads.logit_scale.item()}
        history.append(entry)
        if epoch_rank(entry) > best_key:
            best_key, best_state = epoch_rank(entry), state_of(heads)
        if on_epoch is not None:
            on_epoch(entry)
    heads.load_state_dict(best_state)
    return heads.eval(), history


def epoch_rank(entry: dict[str, Any]) -> tuple[float, float]:
    """Higher is better; a later epoch must beat, not tie, to be chosen."""
    return entry["recall@10"], entry["recall@1"]


def state_of(heads: ProjectionHeads) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in heads.state_dict().items()}


# ---- checkpoint ----------------------------------------------------------------------


def save_heads(heads: ProjectionHeads, path: Path,
               tuned: dict[str, dict[str, torch.Tensor]] | None = None) -> None:
    """torch.save of a plain dict of tensors (atomically): the heads' weights and the
    log temperature (the dimensions follow from the shapes), and `tuned[side]`, an
    encoder's tuned tensors, as `image_encoder.NAME` / `text_encoder.NAME`."""
    state = state_of(heads)
    for side, tensors in (tuned or {}).items():
        state |= {ENCODER_PREFIX[side] + n: t.detach().cpu().clone()
                  for n, t in tensors.items()}
    save_checkpoint(state, Path(path))


def load_crossmodal(path: str | Path
                    ) -> tuple[ProjectionHeads, dict[str, dict[str, torch.Tensor]]]:
    """The heads saved by `save_heads` and the tuned encoder tensors per side (none for a
    frozen run), read with `torch.load(weights_only=True)` only; anything else is a
    one-line InputError naming the file."""
    path = Path(path)
    obj = read_checkpoint(path)
    encoder_keys = set()
    if isinstance(obj, dict):
        encoder_keys = {k for k in obj if isinstance(k, str)
                        and k.startswith(tuple(ENCODER_PREFIX.values()))}
    if not isinstance(obj, dict) or set(obj) - encoder_keys != set(KEYS) or \
            not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path}: not a cross-modal checkpoint (expected the tensors "
                         f"{', '.join(KEYS)}, and tuned encoder tensors)")
    img, txt, scale = (obj[k] for k in KEYS)
    if img.ndim != 2 or txt.ndim != 2 or img.shape[0] != txt.shape[0] or scale.ndim != 0:
        raise InputError(f"{path}: projection shapes {list(img.shape)} and {list(txt.shape)} "
                         "do not fit one shared space")
    heads = ProjectionHeads(img.shape[1], txt.shape[1], img.shape[0])
    heads.load_state_dict({k: obj[k] for k in KEYS})
    tuned = {side: {k.removeprefix(prefix): v for k, v in obj.items() if k.startswith(prefix)}
             for side, prefix in ENCODER_PREFIX.items()}
    return heads.eval(), {side: t for side, t in tuned.items() if t}


def load_heads(path: str | Path) -> ProjectionHeads:
    """The heads of a cross-modal checkpoint (`load_crossmodal` gives its tuned encoder
    tensors too)."""
    return load_crossmodal(path)[0]
