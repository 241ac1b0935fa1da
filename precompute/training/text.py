"""Text fine-tuning: a transformers backbone, mean pooling (the embedding `precompute
build` computes from the checkpoint), fc + BatchNorm and a margin layer for the loss.

The checkpoint (`shopee-explorer-text/1`) holds the backbone only, with what rebuilds it:
the base model name, max_length, pooling; the fc/bn head and class centres are training
aids, as in the study, which embedded with mean pooling alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

from precompute.checkpoints import save_checkpoint
from precompute.errors import InputError, one_line
from precompute.text_encoders import (
    TEXT_FORMAT,
    TextEncoder,
    encode_texts,
    mean_pooling,
    normalise_title,
    token_limit,
    transformer_source,
)
from precompute.training.data import TrainSplit
from precompute.training.heads import EmbeddingHead, margin_layer
from precompute.training.selection import Selection, tuned_f1


def load_backbone(name: str) -> tuple[nn.Module, Any]:
    src = transformer_source(name)
    local = Path(src).is_dir()
    try:
        model = AutoModel.from_pretrained(src, local_files_only=local)
        tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=local)
    except Exception as exc:
        raise InputError(f"{name}: could not load the text model ({one_line(exc)}); pass a "
                         "local folder with the model instead") from None
    return model, tokenizer


def bucketed(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
             pool: int = 50) -> Iterator[np.ndarray]:
    """Shuffled batches of positions whose titles have similar lengths: a shuffled pool of
    `pool` batches is sorted by length, cut into batches, and the batches are shuffled.
    Less padding doubles training speed on real titles (median 18, longest 70 tokens).
    A last batch of one row is dropped (BatchNorm needs two)."""
    order = rng.permutation(len(lengths))
    out = []
    for lo in range(0, len(order), batch_size * pool):
        chunk = order[lo:lo + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    for b in rng.permutation(len(out)):
        if len(out[b]) >= 2:
            yield out[b]


class TextNet(nn.Module):
    """backbone -> mean pooling (the embedding) -> fc + bn -> margin layer (the loss)."""

    def __init__(self, backbone: nn.Module, head: EmbeddingHead, margin_fn: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head, self.margin_fn = backbone, head, margin_fn


@dataclass
class TextTask:
    split: TrainSplit
    model_name: str
    model: TextNet
    tokenizer: Any
    max_length: int
    loss_name: str
    scale: float
    titles: list[str]
    lengths: np.ndarray  # characters of each train row's title (for bucketing)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: bool = False
    valid_batch: int = 128
    progress: bool = False
    skipped: int = 0

    @property
    def n_train(self) -> int:
        return len(self.split.train_rows)

    def _embed_fn(self):
        return mean_pooling(self.model.backbone, self.tokenizer, self.max_length)

    def param_groups(self, lr: float, head_lr_mult: float) -> list[dict[str, Any]]:
        head = [*self.model.head.parameters(), *self.model.margin_fn.parameters()]
        return [{"params": list(self.model.backbone.parameters()), "lr": lr},
                {"params": head, "lr": lr * head_lr_mult}]

    def batches(self, epoch: int, batch_size: int, seed: int
                ) -> Iterator[tuple[list[str], torch.Tensor]]:
        for idx in bucketed(self.lengths, batch_size, np.random.default_rng(seed + epoch)):
            rows = self.split.train_rows[idx]
            yield [self.titles[r] for r in rows], torch.from_numpy(self.split.train_labels[idx])

    def loss(self, inputs: list[str], labels: torch.Tensor) -> torch.Tensor:
        pooled = self._embed_fn()(inputs)
        logits = self.model.margin_fn(self.model.head(pooled), labels)
        return nn.functional.cross_entropy(logits, labels)

    def embed(self, rows: np.ndarray) -> np.ndarray:
        """Unit embeddings of table rows, exactly as `precompute build` computes them."""
        enc = TextEncoder(module=self.model.backbone, dim=self.embedding_dim, info={},
                          embed=self._embed_fn())
        return encode_texts(enc, [self.titles[r] for r in rows], batch_size=self.valid_batch,
                            device=self.device, amp=self.amp, progress=self.progress).emb

    def validate(self) -> Selection:
        return tuned_f1(self.embed(self.split.valid_rows), self.split.valid_groups)

    @property
    def embedding_dim(self) -> int:
        return int(self.model.backbone.config.hidden_size)

    def identity(self) -> dict[str, Any]:
        return {"kind": "text", "base_model": self.model_name, "max_length": self.max_length,
                "n_classes": self.split.n_classes, "data_sha256": self.split.sha256}

    def save_best(self, path: Path, meta: dict[str, Any]) -> None:
        state = {k: v.detach().cpu().clone() for k, v in self.model.backbone.state_dict().items()}
        save_checkpoint({"format": TEXT_FORMAT, "base_model": self.model_name,
                         "max_length": self.max_length, "pooling": "mean",
                         "embedding_dim": self.embedding_dim, "loss": self.loss_name,
                         "scale": self.scale, "fc_dim": self.model.head.fc.out_features,
                         "data_sha256": self.split.sha256, **meta, "state_dict": state}, path)


def text_task(split: TrainSplit, model_name: str, *, loss: str = "arcface",
              margin: float = 0.5, scale: float = 30.0, fc_dim: int = 512,
              max_length: int = 128, device: torch.device | None = None, amp: bool = False,
              progress: bool = False) -> TextTask:
    backbone, tokenizer = load_backbone(model_name)
    hidden = int(backbone.config.hidden_size)
    net = TextNet(backbone, EmbeddingHead(hidden, fc_dim),
                  margin_layer(loss, fc_dim, split.n_classes, scale, margin))
    titles = [normalise_title(t) for t in split.data.table["title"]]
    lengths = np.array([len(titles[r]) for r in split.train_rows])
    return TextTask(split, model_name, net, tokenizer, token_limit(tokenizer, max_length),
                    loss, scale, titles, lengths, device or torch.device("cpu"), amp,
                    progress=progress)
