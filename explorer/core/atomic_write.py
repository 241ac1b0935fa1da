"""Writing a file so that nothing but the program's own output is ever replaced: the
target must be a regular file (or absent) in an existing folder, the bytes go to a new
temporary file beside it (created exclusively, so no existing path is ever opened for
writing), and a rename puts them in place; on any failure the temporary file is removed
and the target is left as it was. Used by the exports, the scale data and checkpoints."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from explorer.core.config import ConfigError


class UnsafeTarget(ConfigError):
    """A target that must not be replaced; the message names the path (a ConfigError:
    an option or a dialog named it, and callers report both alike)."""


def check_target(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a target that is not a regular file to be (re)written:
    a folder, a FIFO, a device, a socket or a symbolic link (renaming over one would
    replace it), or one whose folder does not exist."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not stat.S_ISREG(path.stat().st_mode)):
        raise UnsafeTarget(f"{path}: not a regular file; refusing to replace it")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise UnsafeTarget(f"{path}: folder {parent} does not exist")
    return path


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(binary file)` on a new temporary file beside `path`, then rename it
    over `path` (checked before and again just before the rename)."""
    path = check_target(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        check_target(path)  # it may have changed while we wrote
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
