"""Where a bundle is written, and what a build may do there.

A build owns three kinds of things beside its target folder `NAME`, all hidden siblings:

- `.NAME.lock`: held (flock) for the whole build, so two builds never write one target;
  the kernel drops the lock when its process dies, so a stale lock file is simply taken over;
- `.NAME.XXXXXXXX/`: the temporary folder the bundle is written into (and the one the old
  bundle is moved into while it is replaced), each holding a `.precompute-build` marker
  (pid, host, target, start time) written before anything else;
- nothing else: the target itself is only ever replaced when it is a bundle (a folder whose
  manifest.json parses) that holds neither the input CSV nor the image folder.

A build killed with SIGKILL leaves its temporary folder behind; the next build of the same
target removes the folders whose marker names a process of this host that no longer runs.
A folder without our marker is never deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explorer.core.bundle.manifest import read_manifest
from explorer.core.bundle.schema import MANIFEST, BundleError

MARKER = ".precompute-build"
LOCK_SUFFIX = ".lock"


def is_bundle(path: Path) -> bool:
    """A real folder (not a symbolic link) whose manifest.json parses as a bundle manifest."""
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        read_manifest(path)
    except BundleError:
        return False
    return True


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_target(out: Path, *, overwrite: bool, protect: Sequence[Path] = ()) -> None:
    """Raise a one-line BundleError unless a bundle may be written at `out`: nothing there,
    or (with `overwrite`) a bundle that holds none of the `protect`ed inputs."""
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise BundleError(f"{out}: already exists (pass --force to replace it)")
    if out.is_symlink():
        raise BundleError(f"{out}: is a symbolic link; --force only replaces a bundle folder")
    if not out.is_dir():
        raise BundleError(f"{out}: is a file, not a bundle; --force only replaces a bundle")
    real = out.resolve()
    for p in protect:
        if _inside(Path(p).resolve(), real):
            raise BundleError(f"{out}: holds the input {p}; --force never replaces it")
    if not is_bundle(out):
        raise BundleError(f"{out}: is not a bundle (no valid {MANIFEST}); --force only "
                          "replaces a bundle")


# --------------------------------------------------------------------------- the lock


def lock_path(out: Path) -> Path:
    return out.with_name(f".{out.name}{LOCK_SUFFIX}")


def _owner_record(out: Path) -> dict[str, Any]:
    return {"program": "precompute build", "target": out.name, "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


class TargetLock:
    """An exclusive lock on a build target, held from `acquire` to `release`.

    `.NAME.lock` records the holder's pid and host. Only a file this module wrote (empty,
    or our JSON record) is used as the lock; anything else at that name is refused."""

    def __init__(self, out: Path) -> None:
        self.path = lock_path(out)
        self.out = out
        self._fd: int | None = None

    def acquire(self) -> TargetLock:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: commit's re-check still guards
            return self
        for _ in range(10):  # retried only when the file is swapped under us
            # O_NONBLOCK: a FIFO put at that name must not block the open (refused below)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK
                         | getattr(os, "O_NOFOLLOW", 0), 0o644)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise BundleError(f"{self.path}: exists and is not a build lock (not a "
                                  "regular file); remove it or choose another --out")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe_holder(fd)
                os.close(fd)
                raise BundleError(f"{self.out}: another build is writing it ({holder}; lock "
                                  f"{self.path})") from None
            except BaseException:
                os.close(fd)
                raise
            # the holder before us may have unlinked the file between our open and flock
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            if not _is_our_lock_file(fd):
                os.close(fd)
                raise BundleError(f"{self.path}: exists and is not a build lock; remove it "
                                  "or choose another --out")
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(_owner_record(self.out)).encode(), 0)
            self._fd = fd
            return self
        raise BundleError(f"{self.path}: could not be locked (it keeps changing)")

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:  # unlink while still holding it: a waiting build then retries on a new file
            if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(fd)


def _read_fd(fd: int) -> bytes:
    return os.pread(fd, 4096, 0)


def _is_our_lock_file(fd: int) -> bool:
    raw = _read_fd(fd)
    if not raw.strip():
        return True
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(record, dict) and record.get("program") == "precompute build"


def _describe_holder(fd: int) -> str:
    try:
        record = json.loads(_read_fd(fd))
        return f"pid {int(record['pid'])} on {record['host']}"
    except (ValueError, KeyError, TypeError, OSError, RecursionError):
        return "pid unknown"


# --------------------------------------------------------------------------- temporaries


def make_temporary(out: Path) -> Path:
    """A new hidden sibling `.NAME.XXXXXXXX/` holding our owner marker (written first)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    (tmp / MARKER).write_text(json.dumps(_owner_record(out)) + "\n", encoding="utf-8")
    return tmp


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The owner record of one of our temporary folders, or None when it is not ours."""
    marker = folder / MARKER
    if marker.is_symlink() or not marker.is_file():  # a FIFO would block the read
        return None
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or record.get("program") != "precompute build":
        return None
    return record


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove the temporary folders of dead builds of `out` (same target name, our marker,
    a pid of this host that no longer runs); returns what was removed."""
    removed = []
    host = socket.gethostname()
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        if not p.name.startswith(f".{out.name}.") or p.is_symlink() or not p.is_dir():
            continue
        record = read_marker(p)
        if record is None or record.get("target") != out.name or record.get("host") != host:
            continue
        pid = record.get("pid")
        if not isinstance(pid, int) or pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed
