"""Remembering which parts of a bundle this user's explorer has already checked.

Checking a scope reads and tests every array of its graph and top-K lists: about 10 s at
a million postings, on every start. After a part passes, an empty stamp file is written
to a per-user cache folder, named by a hash of: the checks' version, the manifest's bytes,
the part, and the identity of every file in the bundle (path, device, inode, size,
modification and change times in nanoseconds). A later open that finds the stamp skips
that part's checks; any change to any file of the bundle changes the name, so the part is
checked again. Nothing is read from a stamp (only its existence counts), nothing in the
bundle itself can claim to be checked, and the change time cannot be set back by a
program (utime sets it to now).

The folder is $EXPLORER_CHECK_STAMPS, else $XDG_CACHE_HOME/explorer/checked, else
~/.cache/explorer/checked; EXPLORER_CHECK_STAMPS=off turns stamps off (every open checks
everything). A folder that cannot be written only means the checks run each time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHECKS_VERSION = "1"  # raise when the checks change: earlier stamps no longer count
OFF = "off"


def stamp_folder() -> Path | None:
    """The stamp folder, or None when stamps are off."""
    env = os.environ.get("EXPLORER_CHECK_STAMPS")
    if env is not None:
        return None if env.strip().lower() in (OFF, "") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "explorer" / "checked"


def bundle_identity(real_root: Path, manifest_bytes: bytes) -> str | None:
    """A digest of the manifest and every file's identity under the bundle (None when the
    folder cannot be listed: then nothing is stamped)."""
    h = hashlib.sha256()
    h.update(CHECKS_VERSION.encode())
    h.update(hashlib.sha256(manifest_bytes).digest())
    try:
        entries = []
        for folder, dirs, files in os.walk(real_root):
            dirs.sort()
            for name in sorted(files):
                st = os.stat(os.path.join(folder, name), follow_symlinks=False)
                rel = os.path.relpath(os.path.join(folder, name), real_root)
                entries.append(f"{rel}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0"
                               f"{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_mode}")
    except OSError:
        return None
    h.update("\n".join(entries).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _stamp(identity: str, part: str) -> Path | None:
    folder = stamp_folder()
    if folder is None:
        return None
    name = hashlib.sha256(f"{identity}\0{part}".encode("utf-8", "surrogateescape")).hexdigest()
    return folder / name


def is_stamped(identity: str | None, part: str) -> bool:
    """Whether `part` of the bundle with this identity passed its checks before."""
    path = None if identity is None else _stamp(identity, part)
    return path is not None and path.is_file()


def stamp(identity: str | None, part: str) -> None:
    """Record that `part` passed its checks (silently nothing when it cannot be written)."""
    path = None if identity is None else _stamp(identity, part)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL | O_NOFOLLOW: never write through something that is already there
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except OSError:  # already stamped (FileExistsError), or the folder is not writable
        return
