"""A tiny random BERT saved as a plain transformers folder (no hub, no download): the text
models of the encoder and training tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizer


def write_tiny_bert(folder: Path, words: Iterable[str], *, hidden: int, layers: int,
                    intermediate: int, max_positions: int) -> Path:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer.from_pretrained(folder).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=intermediate,
                        max_position_embeddings=max_positions)
    BertModel(config).save_pretrained(folder)
    return folder
