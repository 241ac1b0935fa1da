"""`precompute train crossmodal`: CLIP-style contrastive training of two projection heads
(image features -> D, title features -> D) over an image encoder and a text encoder,
frozen or partly unfrozen, so that a title and its own posting's picture meet in one space.

Frozen towers (the default) make it cheap: every posting is embedded once with the
encoders `precompute build` loads by name (`load_image_encoder`, `load_text_encoder`), and
only the heads are trained, on those cached features. `--unfreeze-image N` /
`--unfreeze-text N` train the last N blocks of that encoder too, at `--encoder-lr`, with
the encoder in the loop (precompute/training/crossmodal_unfrozen.py). The split is the
study's (GroupKFold(5) by label_group in file order): folds 2-4 train, fold 1 selects the
epoch by text-to-image recall@10 (each fold-1 title against all fold-1 pictures), fold 0
is never read past the fold assignment. Every posting of folds 2-4 with a readable picture
is a training pair (a posting alone in its label group is still a picture and its title).

Writes OUT/best.pt (a plain dict of tensors, readable with `torch.load(weights_only=True)`:
the heads, and the selected epoch's tuned encoder tensors; `load_crossmodal` reads it)
and OUT/crossmodal.json (models, dimensions, the tuned blocks and tensors, best epoch,
history, the CSV's sha256, fold-1 recall before and after training)."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from precompute.dataset import read_dataset
from precompute.errors import InputError
from precompute.split import ROLES, assign_folds
from precompute.training.crossmodal_heads import (  # the model's API, here as before
    ENCODER_PREFIX,
    KEYS,
    MAX_LOGIT_SCALE,
    ProjectionHeads,
    clip_loss,
    epoch_rank,
    load_crossmodal,
    load_heads,
    recall_at_k,
    save_heads,
    train_heads,
    untrained_heads,
)

__all__ = ["BEST", "ENCODER_PREFIX", "FORMAT", "KEYS", "MAX_LOGIT_SCALE", "SUMMARY",
           "ProjectionHeads", "clip_loss", "embed_postings", "load_crossmodal", "load_heads",
           "recall_at_k", "save_heads", "split_rows", "train_from_args", "train_heads",
           "untrained_heads"]

log = logging.getLogger(__name__)

FORMAT = "shopee-explorer-crossmodal/1"
BEST = "best.pt"
SUMMARY = "crossmodal.json"


# ---- the command ---------------------------------------------------------------------


def _ours(summary: Path) -> bool:
    """True when `summary` is a crossmodal.json this command wrote."""
    try:
        meta = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT and "text_model" in meta


def check_args(args: argparse.Namespace) -> None:
    """Positive finite numbers (NaN refused), a batch with negatives, block counts of 0 or
    more, the CSV and the image folder present: all before any model loads."""
    positive = {"--epochs": args.epochs, "--batch": args.batch, "--lr": args.lr,
                "--dim": args.dim, "--encoder-lr": args.encoder_lr}
    for flag, value in positive.items():
        if not (value > 0 and math.isfinite(value)):
            raise InputError(f"{flag} {value}: must be positive and finite")
    for flag, value in (("--unfreeze-image", args.unfreeze_image),
                        ("--unfreeze-text", args.unfreeze_text)):
        if value < 0:
            raise InputError(f"{flag} {value}: must be 0 (frozen) or a number of last blocks "
                             "to tune")
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
    from precompute.image_encoders import load_image_encoder
    from precompute.images import image_paths
    from precompute.text_encoders import load_text_encoder

    paths = image_paths(images, data.table["image"]).paths
    titles = data.table["title"].tolist()
    ienc = load_image_encoder(image_spec, device=device)
    tenc = load_text_encoder(text_spec, device=device)
    return embed_rows(ienc, tenc, [paths[r] for r in rows], [titles[r] for r in rows],
                      device=device, progress=progress)


def embed_rows(ienc: Any, tenc: Any, pictures: list[Path | None], titles: list[Any], *,
               device: str | None, progress: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """`embed_postings` with encoders already loaded, over pictures and titles."""
    from precompute.image_encoders import encode_images
    from precompute.text_encoders import encode_texts

    img = encode_images(ienc, pictures, device=device, progress=progress)
    txt = encode_texts(tenc, titles, device=device, progress=progress)
    info = {"image": ienc.info | img.info | {"skipped": len(img.skipped)},
            "text": tenc.info | txt.info}
    return img.emb, txt.emb, img.present, info


def _train_tuned(args: argparse.Namespace, ienc: Any, tenc: Any, tuned: dict[str, Any],
                 inputs: tuple[list, list], feats: tuple[np.ndarray, np.ndarray],
                 rows: tuple[np.ndarray, np.ndarray], dev: str, report: Any
                 ) -> tuple[ProjectionHeads, dict[str, dict[str, torch.Tensor]], list[dict]]:
    from precompute.image_encoders import usable_cpus
    from precompute.training.crossmodal_unfrozen import Pairs, Settings, train_unfrozen

    sides = [Pairs(torch.as_tensor(f, dtype=torch.float32).to(dev), enc, data,
                   tuned[side]["tensors"] if side in tuned else [])
             for side, enc, data, f in zip(("image", "text"), (ienc, tenc), inputs, feats,
                                           strict=True)]
    settings = Settings(epochs=args.epochs, batch=args.batch, lr=args.lr,
                        encoder_lr=args.encoder_lr, seed=args.seed, dim=args.dim,
                        device=torch.device(dev), workers=min(4, usable_cpus()))
    return train_unfrozen(*sides, *rows, settings, on_epoch=report)


def train_from_args(args: argparse.Namespace) -> Path:
    """Run `precompute train crossmodal`; returns the path of best.pt."""
    from precompute.image_encoders import load_image_encoder
    from precompute.images import image_paths
    from precompute.text_encoders import load_text_encoder

    logging.basicConfig(format="%(asctime)s %(message)s")
    check_args(args)
    data, _, train, valid = split_rows(Path(args.csv))
    if len(train) < 2 or len(valid) < 1:
        raise InputError(f"{args.csv}: folds 2-4 need 2 postings and fold 1 one")
    rows = np.concatenate([train, valid])  # fold 0 is never embedded
    ienc = load_image_encoder(args.image, device=args.device)
    tenc = load_text_encoder(args.text, device=args.device)
    tuned: dict[str, Any] = {}
    if args.unfreeze_image or args.unfreeze_text:  # checked before the long embedding pass
        from precompute.training.crossmodal_unfrozen import tune_setup

        tuned = tune_setup(ienc, tenc, args.unfreeze_image, args.unfreeze_text, args.image,
                           args.text)
    paths = image_paths(Path(args.images), data.table["image"]).paths
    all_titles = data.table["title"].tolist()
    pictures, titles = [paths[r] for r in rows], [all_titles[r] for r in rows]
    image, text, present, info = embed_rows(ienc, tenc, pictures, titles, device=args.device,
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
    states: dict[str, dict[str, torch.Tensor]] = {}
    if tuned:
        heads, states, history = _train_tuned(args, ienc, tenc, tuned, (pictures, titles),
                                              (image, text), (pos_train, pos_valid), dev,
                                              report)
    else:
        heads, history = train_heads(image, text, pos_train, pos_valid, epochs=args.epochs,
                                     batch=args.batch, lr=args.lr, seed=args.seed,
                                     dim=args.dim, device=dev, on_epoch=report)
    best = max(history, key=lambda h: (*epoch_rank(h), -h["epoch"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_heads(heads, out / BEST, states)
    summary = {
        "format": FORMAT, "image_model": args.image, "text_model": args.text,
        **heads.dims, "csv": str(data.csv), "csv_sha256": data.sha256,
        "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed,
        "unfreeze_image": args.unfreeze_image, "unfreeze_text": args.unfreeze_text,
        # per tuned side: its last `blocks` of `of`, and the tensors best.pt holds for it
        "tuned": tuned, **({"encoder_lr": args.encoder_lr} if tuned else {}),
        "selection": "fold 1, text-to-image recall@10 (ties: recall@1, earlier epoch)",
        "train_folds": list(ROLES["train"]), "valid_fold": ROLES["valid"],
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
