"""Reaching a bundle's files: every read goes through `bundle_file`, which refuses names
and links that leave the folder and anything that is not a regular file."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from explorer.core.bundle.schema import BundleError


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def bundle_file(root: Path, real_root: Path, rel: Any) -> Path:
    """The real path of the file that `rel` names in the bundle at `root` (whose real path
    is `real_root`), checked before anything opens it: a relative name without '..', whose
    real path (every link followed) stays inside the bundle, naming a regular file (a
    FIFO, socket or device would block the reader or never end). Raises BundleError."""
    if not isinstance(rel, str) or not rel or any(ord(c) < 32 for c in rel):
        raise BundleError(f"{root}: {rel!r} is not a file name")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise BundleError(f"{root}: file name {rel!r} points outside the bundle")
    shown = root / pure
    try:
        real = Path(os.path.realpath(shown))
        if not real.is_relative_to(real_root):
            raise BundleError(f"{shown}: a link that points outside the bundle (to {real})")
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise BundleError(f"{shown}: missing file") from None
    except (OSError, ValueError) as exc:  # a link loop, a name too long, no permission
        raise BundleError(f"{shown}: unreadable ({one_line(exc)})") from None
    if not stat.S_ISREG(mode):
        raise BundleError(f"{shown}: not a regular file")
    return real
