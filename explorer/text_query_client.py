"""The app's side of "find pictures by words": a child process that embeds typed text with
a bundle's cross-modal text tower.

The app never imports torch, so the text tower runs in `python -m precompute text-query
BUNDLE` (the precompute environment, the very code that embedded the bundle's titles;
its protocol is in precompute/text_query.py). :class:`TextQueryClient` starts it, waits
for its "ready" line, and sends one text at a time. A reader thread takes the child's
stdout and another keeps the last lines of its stderr, so no call can hang: the start
waits at most `start_timeout` (loading a model takes a while the first time), a query at
most `query_timeout`; when the child dies or times out the error says so in one line
with the child's last stderr line, and the client is closed (a new one starts afresh).
No Qt here: the CLI (`explorer search-pictures`) uses it as the app does."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["QUERY_TIMEOUT_S", "START_TIMEOUT_S", "TextQueryClient", "TextQueryError"]

START_TIMEOUT_S = 180.0  # the model's first load (a cold disk, a large text encoder)
QUERY_TIMEOUT_S = 30.0
_EOF = object()  # the child's stdout ended


class TextQueryError(Exception):
    """The text model could not start or answer; the message is one line."""


class TextQueryClient:
    """One `precompute text-query` child over `bundle` (its cross-modal `modality`, or
    the only one). :meth:`start` (also called by the first :meth:`embed`) blocks until
    the child is ready; :meth:`embed` returns the text's unit vector (float32);
    :meth:`close` kills the child. Every failure is a one-line TextQueryError. Calls are
    serialised (one request in flight); usable as a context manager."""

    def __init__(self, bundle: str | os.PathLike[str], modality: str | None = None, *,
                 device: str | None = None, start_timeout: float = START_TIMEOUT_S,
                 query_timeout: float = QUERY_TIMEOUT_S,
                 command: list[str] | None = None) -> None:
        self.bundle = Path(bundle)
        self.start_timeout, self.query_timeout = start_timeout, query_timeout
        # the child is the precompute CLI in this interpreter's environment, run by
        # module name: this process never imports precompute (tests may pass another)
        self.command = command or [sys.executable, "-m", "precompute", "text-query",
                                   str(self.bundle), *(["--modality", modality] if modality
                                                       else []),
                                   *(["--device", device] if device else [])]
        self.modality: str | None = None
        self.dim: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[Any] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._lock = threading.Lock()
        self._next_id = 0
        self._readers: list[threading.Thread] = []
        self._guard = threading.Lock()  # short: the child and the count of closes
        self._closes = 0

    # -- life ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self.dim is not None

    def start(self) -> None:
        """Start the child and wait for its ready line (at most `start_timeout`)."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self.running:
            return
        self.close_unlocked()
        self._replies = queue.Queue()
        self._stderr.clear()
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
        closes = self._closes
        try:
            proc = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        except OSError as exc:
            raise TextQueryError(f"cannot start the text model: {exc}") from None
        with self._guard:
            self._proc = proc
            if closes != self._closes:  # closed while it was being started
                proc.kill()
        self._readers = [
            threading.Thread(target=self._read_stdout, args=(self._proc, self._replies),
                             name="text-query-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, args=(self._proc,),
                             name="text-query-stderr", daemon=True)]
        for t in self._readers:
            t.start()
        first = self._reply(self.start_timeout, "to load")
        if "error" in first:  # its own one line: the stderr tail would repeat it
            self._fail(f"the text model did not start: {first['error']}", tail=False)
        if first.get("ready") is not True or not isinstance(first.get("dim"), int):
            self._fail(f"the text model's first line is not a ready line: {first!r:.200}")
        self.modality, self.dim = str(first.get("modality")), int(first["dim"])

    def close(self) -> None:
        """Kill the child (if any) and forget it; safe to call twice, and from another
        thread than a call in progress, which then fails at once instead of waiting."""
        with self._guard:
            self._closes += 1
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # wakes a waiting call: its reader sees the pipe end
        with self._lock:
            self.close_unlocked()

    def close_unlocked(self) -> None:
        """`close` for a caller that holds the lock."""
        with self._guard:
            proc, self._proc, self.dim = self._proc, None, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for t in self._readers:  # its pipes end with it: the readers see the last lines
            t.join(2.0)
        self._readers = []
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):  # a broken pipe's buffered write
                stream.close()

    def __enter__(self) -> TextQueryClient:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- queries ------------------------------------------------------------------------
    def embed(self, text: str) -> np.ndarray:
        """The unit vector (dim,) float32 of `text` (starting the child first if need
        be); TextQueryError when the child refuses the text, dies or does not answer."""
        with self._lock:
            self._start()
            self._next_id += 1
            rid = self._next_id
            line = json.dumps({"id": rid, "text": text}) + "\n"
            try:
                self._proc.stdin.write(line.encode("utf-8"))
                self._proc.stdin.flush()
            except OSError:  # a broken pipe: it died since the last answer
                self._fail("the text model stopped")
            while True:
                reply = self._reply(self.query_timeout, "to answer")
                # one request in flight: an answer without an id (a line the child could
                # not read) is this one's too
                if reply.get("id") in (rid, None):
                    break
            if "error" in reply:
                raise TextQueryError(str(reply["error"]))
            vec = np.asarray(reply.get("vector"), np.float32)
            if vec.shape != (self.dim,) or not np.isfinite(vec).all():
                self._fail("the text model answered with a malformed vector")
            return vec

    def _reply(self, timeout: float, doing: str) -> dict[str, Any]:
        """The next JSON object from the child; closes it and raises on death or timeout."""
        try:
            got = self._replies.get(timeout=timeout)
        except queue.Empty:
            self._fail(f"the text model took more than {timeout:g} s {doing}")
        if got is _EOF:
            try:
                code = self._proc.wait(5) if self._proc is not None else None
            except subprocess.TimeoutExpired:  # stdout closed, yet it runs: kill it
                code = None
            self._fail("the text model stopped" + (f" (exit status {code})"
                                                    if code is not None else ""))
        return got

    def _fail(self, message: str, *, tail: bool = True) -> None:
        """Close the child and raise `message`, with the last line it wrote to stderr."""
        self.close_unlocked()
        last = next((line for line in reversed(self._stderr) if line), "") if tail else ""
        raise TextQueryError(f"{message}: {last}" if last else message)

    # -- reader threads -----------------------------------------------------------------
    @staticmethod
    def _read_stdout(proc: subprocess.Popen[bytes], replies: queue.Queue[Any]) -> None:
        try:
            for raw in proc.stdout:
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except ValueError:
                    continue  # not ours (the child keeps stdout clean; belt and braces)
                if isinstance(obj, dict):
                    replies.put(obj)
        except (OSError, ValueError):  # closed under us by close()
            pass
        replies.put(_EOF)

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            for raw in proc.stderr:
                text = raw.decode("utf-8", "replace").split("\r")[-1].strip()
                if text:
                    self._stderr.append(text[:300])
        except (OSError, ValueError):
            pass
