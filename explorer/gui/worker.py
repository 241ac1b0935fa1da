"""One background thread for all engine work, latest request wins.

Every slider move posts a request with a new generation number. The thread computes only
the newest pending request; a computation in progress (INB stage by stage) is abandoned
between stages as soon as a newer request arrives, and a result whose generation is no
longer the newest is dropped by the receiver. The engine is touched by this thread only.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from explorer.core.bundle import BundleError
from explorer.core.config import ConfigError
from explorer.core.session import Cancelled


@dataclass(frozen=True)
class Request:
    generation: int
    job: Callable[[Callable[[int, int], None], Callable[[], bool]], Any]
    label: str


class Worker(QObject):
    """Runs `job(progress, cancelled)` callables on one thread; newest wins."""

    # Only plain ints and strings cross threads through Qt's event queue: a Python object
    # in a queued signal that is dropped (receiver deleted) has crashed PySide6 6.12 with
    # a refcount error, so the result waits here and the receiver calls `take`.
    finished = Signal(int)              # generation; the result: take(generation)
    failed = Signal(int, str)           # generation, one-line message
    progress = Signal(int, int, int)    # generation, done, total
    busy = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cond = threading.Condition()
        self._pending: Request | None = None
        self._generation = 0
        self._stop = False
        self._result: tuple[int, Any] | None = None
        self._running = False
        self._thread = threading.Thread(target=self._loop, name="explorer-worker", daemon=True)
        self._thread.start()

    @property
    def generation(self) -> int:
        """The newest generation handed out; results of older ones are stale."""
        return self._generation

    def submit(self, job: Callable[..., Any], label: str = "") -> int:
        with self._cond:
            self._generation += 1
            self._pending = Request(self._generation, job, label)
            self._cond.notify()
            return self._generation

    @property
    def idle(self) -> bool:
        """Nothing pending and nothing running: a new request supersedes no work."""
        with self._cond:
            return self._pending is None and not self._running

    def take(self, generation: int) -> Any:
        """The result of `generation` (once), or None when a newer one replaced it."""
        with self._cond:
            if self._result is None or self._result[0] != generation:
                return None
            result, self._result = self._result[1], None
            return result

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._pending = None
            self._cond.notify()
        self._thread.join(timeout)

    def _superseded(self, gen: int) -> bool:
        return self._stop or self._generation != gen

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                req, self._pending = self._pending, None
                self._running = True
            self.busy.emit(True)
            error = None
            try:
                result = req.job(
                    lambda done, total, g=req.generation: self.progress.emit(g, done, total),
                    lambda g=req.generation: self._superseded(g))
            except Cancelled:
                result = None
            except (ConfigError, BundleError, ValueError) as exc:
                error = str(exc)
            except Exception as exc:  # a bug: report it instead of killing the thread
                traceback.print_exc()
                error = f"{type(exc).__name__}: {exc}"
            # not running before any signal goes out: a receiver may post the next job
            with self._cond:
                self._running = False
                fresh = not self._superseded(req.generation)
                if fresh and error is None and result is not None:
                    self._result = (req.generation, result)
                idle = self._pending is None
            if error is not None:
                self.failed.emit(req.generation, error)
            elif fresh and result is not None:
                self.finished.emit(req.generation)
            if idle:
                self.busy.emit(False)
