"""`precompute train crossmodal`: CLIP-style contrastive training of two projection heads
(image features -> D, title features -> D) over a FROZEN image encoder and a FROZEN text
encoder, so that a title and its own posting's picture meet in one space.

Frozen towers make it cheap: every posting is embedded once with the encoders `precompute
build` loads by name (`load_image_encoder`, `load_text_encoder`), and only the heads are
trained, on those cached features. The split is the study's (GroupKFold(5) by label_group
in file order): folds 2-4 train, fold 1 selects the epoch by text-to-image recall@10
(each fold-1 title against all fold-1 pictures), fold 0 is never read past the fold
assignment. Every posting of folds 2-4 with a readable picture is a training pair (a
posting alone in its label group is still a picture and its title).

Writes OUT/best.pt (a plain dict of tensors, readable with `torch.load(weights_only=True)`;
`load_heads` reads it) and OUT/crossmodal.json (models, dimensions, best epoch, history,
the CSV's sha256, fold-1 recall before and after training)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from precompute.checkpoints import read_checkpoint, save_checkpoint
from precompute.dataset import read_dataset
from precompute.errors import InputError
from precompute.split import ROLES, assign_folds

log = logging.getLogger(__name__)

FORMAT = "shopee-explorer-crossmodal/1"
BEST = "best.pt"
SUMMARY = "crossmodal.json"
INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature
MAX_LOGIT_SCALE = math.log(100.0)      # CLIP's clamp: logits at most 100 x cosine
KEYS = ("image_proj.weight", "text_proj.weight", "logit_scale")
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


def _batches(n: int, batch: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Shuffled batches of row positions; a last batch of one row (no negatives) is left
    out of the epoch."""
    order = torch.randperm(n, generator=gen)
    out = [order[lo:lo + batch] for lo in range(0, n, batch)]
    return [b for b in out if len(b) >= 2]


def _evaluate(heads: ProjectionHeads, image: torch.Tensor,
              text: torch.Tensor) -> dict[str, float]:
    heads.eval()
    with torch.no_grad():
        img, txt = heads(image, text)
    return {"recall@1": recall_at_k(txt, img, 1), "recall@10": recall_at_k(txt, img, 10)}


def _mean_loss(heads: ProjectionHeads, image: torch.Tensor, text: torch.Tensor,
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
    first = _batches(len(tr), batch, torch.Generator().manual_seed(seed))
    entry = {"epoch": 0, "loss": _mean_loss(heads, img_tr, txt_tr, first),
             **_evaluate(heads, img_va, txt_va), "seconds": round(time.perf_counter() - start, 3),
             "logit_scale": heads.logit_scale.item()}
    history = [entry]
    best_key, best_state = _rank(entry), _state(heads)
    if on_epoch is not None:
        on_epoch(entry)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        heads.train()
        losses = []
        for b in _batches(len(tr), batch, gen):
            loss = clip_loss(*heads(img_tr[b], txt_tr[b]), heads.clamped_scale())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            heads.clamp_()
            losses.append(loss.item())
        entry = {"epoch": epoch, "loss": float(np.mean(losses)),
                 **_evaluate(heads, img_va, txt_va),
                 "seconds": round(time.perf_counter() - start, 3),
                 "logit_scale": heads.logit_scale.item()}
        history.append(entry)
        if _rank(entry) > best_key:
            best_key, best_state = _rank(entry), _state(heads)
        if on_epoch is not None:
            on_epoch(entry)
    heads.load_state_dict(best_state)
    return heads.eval(), history


def _rank(entry: dict[str, Any]) -> tuple[float, float]:
    """Higher is better; a later epoch must beat, not tie, to be chosen."""
    return entry["recall@10"], entry["recall@1"]


def _state(heads: ProjectionHeads) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in heads.state_dict().items()}


# ---- checkpoint ----------------------------------------------------------------------


def save_heads(heads: ProjectionHeads, path: Path) -> None:
    """torch.save of a plain dict of tensors (atomically): the heads' weights and the
    log temperature; the dimensions follow from the shapes."""
    save_checkpoint(_state(heads), Path(path))


def load_heads(path: str | Path) -> ProjectionHeads:
    """The heads saved by `save_heads`, read with `torch.load(weights_only=True)` only;
    anything else is a one-line InputError naming the file."""
    path = Path(path)
    obj = read_checkpoint(path)
    if not isinstance(obj, dict) or set(obj) != set(KEYS) or \
            not all(isinstance(obj[k], torch.Tensor) for k in KEYS):
        raise InputError(f"{path}: not a cross-modal checkpoint (expected the tensors "
                         f"{', '.join(KEYS)})")
    img, txt, scale = (obj[k] for k in KEYS)
    if img.ndim != 2 or txt.ndim != 2 or img.shape[0] != txt.shape[0] or scale.ndim != 0:
        raise InputError(f"{path}: projection shapes {list(img.shape)} and {list(txt.shape)} "
                         "do not fit one shared space")
    heads = ProjectionHeads(img.shape[1], txt.shape[1], img.shape[0])
    heads.load_state_dict(obj)
    return heads.eval()


# ---- the command ---------------------------------------------------------------------


def _ours(summary: Path) -> bool:
    """True when `summary` is a crossmodal.json this command wrote."""
    try:
        meta = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT and "text_model" in meta


def check_args(args: argparse.Namespace) -> None:
    """Positive numbers (NaN refused), a batch with negatives, the CSV and the image
    folder present: all before any model loads."""
    positive = {"--epochs": args.epochs, "--batch": args.batch, "--lr": args.lr,
                "--dim": args.dim}
    for flag, value in positive.items():
        if not value > 0:
            raise InputError(f"{flag} {value}: must be positive")
    if args.batch < 2:
        raise InputError(f"--batch {args.batch}: contrastive training needs at least 2 pairs "
                         "per batch")
    if not Path(args.csv).is_file():
        raise InputError(f"{args.csv}: CSV not found")
    if not Path(args.images).is_dir():
        raise InputError(f"{args.images}: image folder not found")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if not args.force and any((out / name).exists() for name in (BEST, SUMMARY)):
        raise InputError(f"{out}: holds a cross-modal run already; pass --force to replace it")
    if (out / BEST).exists() and not _ours(out / SUMMARY):
        # another command's best.pt (precompute train text / image write one too): never
        # replaced, --force or not
        raise InputError(f"{out / BEST}: not a cross-modal run's checkpoint (no "
                         f"{SUMMARY} of ours beside it); choose another --out")


def split_rows(csv: Path) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """(dataset, folds, train rows = folds 2-4, valid rows = fold 1), file order."""
    data = read_dataset(csv)
    if not data.has_labels:
        raise InputError(f"{data.csv}: label_group column missing; training needs the folds")
    folds = assign_folds(data.table["label_group"], source=str(data.csv))
    train = np.flatnonzero(np.isin(folds, ROLES["train"]))
    valid = np.flatnonzero(folds == ROLES["valid"])
    return data, folds, train, valid


def embed_postings(data: Any, images: Path, rows: np.ndarray, image_spec: str, text_spec: str,
                   *, device: str | None, progress: bool
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Image and title features of `rows` (unit rows, frozen encoders loaded by name as
    `precompute build` loads them), which rows have a picture, and the encoders' info."""
    from precompute.image_encoders import encode_images, load_image_encoder
    from precompute.images import image_paths
    from precompute.text_encoders import encode_texts, load_text_encoder

    paths = image_paths(images, data.table["image"]).paths
    ienc = load_image_encoder(image_spec, device=device)
    img = encode_images(ienc, [paths[r] for r in rows], device=device, progress=progress)
    tenc = load_text_encoder(text_spec, device=device)
    titles = data.table["title"].tolist()
    txt = encode_texts(tenc, [titles[r] for r in rows], device=device, progress=progress)
    info = {"image": ienc.info | img.info | {"skipped": len(img.skipped)},
            "text": tenc.info | txt.info}
    return img.emb, txt.emb, img.present, info


def train_from_args(args: argparse.Namespace) -> Path:
    """Run `precompute train crossmodal`; returns the path of best.pt."""
    logging.basicConfig(format="%(asctime)s %(message)s")
    check_args(args)
    data, _, train, valid = split_rows(Path(args.csv))
    if len(train) < 2 or len(valid) < 1:
        raise InputError(f"{args.csv}: folds 2-4 need 2 postings and fold 1 one")
    rows = np.concatenate([train, valid])  # fold 0 is never embedded
    image, text, present, info = embed_postings(
        data, Path(args.images), rows, args.image, args.text, device=args.device,
        progress=not args.quiet)
    pos_train = np.flatnonzero(present[:len(train)])
    pos_valid = len(train) + np.flatnonzero(present[len(train):])
    if len(pos_train) < 2 or len(pos_valid) < 1:
        raise InputError(f"{args.images}: too few readable pictures in folds 1-4 to train")

    def report(entry: dict[str, Any]) -> None:
        if not args.quiet:
            print(f"epoch {entry['epoch']}: loss {entry['loss']:.4f}, fold-1 recall@1 "
                  f"{entry['recall@1']:.3f}, recall@10 {entry['recall@10']:.3f}", flush=True)

    dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    heads, history = train_heads(image, text, pos_train, pos_valid, epochs=args.epochs,
                                 batch=args.batch, lr=args.lr, seed=args.seed, dim=args.dim,
                                 device=dev, on_epoch=report)
    best = max(history, key=lambda h: (*_rank(h), -h["epoch"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_heads(heads, out / BEST)
    summary = {
        "format": FORMAT, "image_model": args.image, "text_model": args.text,
        **heads.dims, "csv": str(data.csv), "csv_sha256": data.sha256,
        "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed,
        "selection": "fold 1, text-to-image recall@10 (ties: recall@1, earlier epoch)",
        "train_pairs": len(pos_train), "valid_pairs": len(pos_valid),
        "skipped_no_picture": int((~present).sum()),
        "best_epoch": best["epoch"],
        "before": {k: history[0][k] for k in ("recall@1", "recall@10")},
        "after": {k: best[k] for k in ("recall@1", "recall@10")},
        "history": history, "encoders": info,
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(f"best epoch {best['epoch']}: fold-1 text-to-image recall@10 "
          f"{history[0]['recall@10']:.3f} -> {best['recall@10']:.3f}, recall@1 "
          f"{history[0]['recall@1']:.3f} -> {best['recall@1']:.3f}")
    if best["epoch"] == 0:
        print("warning: no epoch beat the untrained heads on fold 1; train longer or "
              "change --lr")
    return out / BEST
