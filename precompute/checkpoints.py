"""Reading torch checkpoints that may come from someone else: tensors and plain types
only (`torch.load(weights_only=True)`), never code, with a one-line InputError naming
the file for anything else; and writing ours atomically."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from explorer.core.atomic_write import UnsafeTarget, write_atomic
from precompute.errors import InputError, one_line

__all__ = ["check_fits", "read_checkpoint", "save_checkpoint"]


def read_checkpoint(path: Path) -> Any:
    """The checkpoint at `path` (a zip or legacy torch file) as tensors and plain types."""
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    with path.open("rb") as fh:
        head = fh.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # zip or legacy pickle
        raise InputError(f"{path}: not a torch checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise InputError(f"{path}: refused, it holds Python objects{what}, not only tensors; "
                         "re-save its state_dict") from None
    except Exception as exc:
        raise InputError(f"{path}: cannot be read as a torch checkpoint ({one_line(exc)})") \
            from None


def save_checkpoint(obj: Any, path: Path) -> None:
    """torch.save into a new temporary file beside `path`, then a rename: a crash never
    leaves a half-written checkpoint, and no existing path but `path` (a regular file or
    absent) is ever written or replaced."""
    try:
        write_atomic(path, lambda fh: torch.save(obj, fh))
    except UnsafeTarget as exc:
        raise InputError(str(exc)) from None


def check_fits(path: Path, name: str, want: dict[str, torch.Tensor],
               state: dict[str, torch.Tensor], ignore: frozenset[str] = frozenset()) -> None:
    """One line naming the file unless `state` has exactly the tensors of `want` (a
    module's state_dict; keys in `ignore` may be missing), each of the same shape."""
    missing = sorted(set(want) - set(state) - ignore)
    unexpected = sorted(set(state) - set(want))
    if missing or unexpected:
        raise InputError(f"{path}: does not fit {name}: {len(missing)} missing tensors "
                         f"{missing[:2]}, {len(unexpected)} unexpected {unexpected[:2]}")
    for key, tensor in state.items():
        if tensor.shape != want[key].shape:
            raise InputError(f"{path}: does not fit {name}: {key} has shape "
                             f"{list(tensor.shape)}, the model wants {list(want[key].shape)}")
