"""One background thread for all engine work, in lanes, newest request wins per lane.

The engine is touched by this thread only. Requests go to a lane:
- `view`: the snapshot and ScopeView of the current settings (a slider move, INB, Best);
- `query`: one query's explanation (the neighbour grid);
- `cases`: an error-case list of the view on screen;
- `curve`: the threshold curve of the view on screen, when the view came without it (a
  million postings); it stops at its next checkpoint once a view request is pending (that
  view brings or asks for its own curve).
A newer request supersedes only the pending or running request of its own lane, so a
query click never cancels a view and a slider move never drops a query's grid. Pending
requests run in the order query, view, cases, curve; and a long view job (INB stage by stage,
the Best search mode by mode) serves pending query and case requests each time it checks
whether it was cancelled, so a query click never waits behind it. The receiver drops a
result whose generation is no longer its lane's newest.
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

LANES = ("query", "view", "cases", "curve")  # the order pending requests are served in
INTERLEAVED = ("query", "cases")     # served inside a long job's cancel checks
YIELDS_TO = {"curve": "view"}        # a job of the key's lane stops for a pending request


@dataclass(frozen=True)
class Request:
    lane: str
    generation: int
    job: Callable[[Callable[[int, int], None], Callable[[], bool]], Any]
    label: str


class Worker(QObject):
    """Runs `job(progress, cancelled)` callables on one thread, in lanes (see above)."""

    # Only plain ints and strings cross threads through Qt's event queue: a Python object
    # in a queued signal that is dropped (receiver deleted) has crashed PySide6 6.12 with
    # a refcount error, so the result waits here and the receiver calls `take`.
    finished = Signal(str, int)         # lane, generation; the result: take(lane, generation)
    failed = Signal(str, int, str)      # lane, generation, one-line message
    progress = Signal(int, int, int)    # view generation, done, total
    busy = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cond = threading.Condition()
        self._pending: dict[str, Request] = {}
        self._newest = dict.fromkeys(LANES, 0)
        self._counter = 0
        self._stop = False
        self._results: dict[str, tuple[int, Any]] = {}
        self._running = 0
        self._nested = False
        self._thread = threading.Thread(target=self._loop, name="explorer-worker", daemon=True)
        self._thread.start()

    def generation(self, lane: str = "view") -> int:
        """The newest generation handed out in `lane`; results of older ones are stale."""
        return self._newest[lane]

    def submit(self, job: Callable[..., Any], label: str = "", lane: str = "view") -> int:
        if lane not in LANES:
            raise ValueError(f"unknown worker lane {lane!r}")
        with self._cond:
            self._counter += 1
            self._newest[lane] = self._counter
            self._pending[lane] = Request(lane, self._counter, job, label)
            self._cond.notify()
            return self._counter

    @property
    def idle(self) -> bool:
        """Nothing pending and nothing running in any lane."""
        with self._cond:
            return not self._pending and not self._running

    def take(self, lane: str, generation: int) -> Any:
        """The result of `generation` in `lane` (once), or None when a newer one replaced it."""
        with self._cond:
            got = self._results.get(lane)
            if got is None or got[0] != generation:
                return None
            del self._results[lane]
            return got[1]

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._pending.clear()
            self._cond.notify()
        self._thread.join(timeout)

    # -- the thread -------------------------------------------------------------------
    def _superseded(self, lane: str, gen: int) -> bool:
        return self._stop or self._newest[lane] != gen

    def _next(self, lanes: tuple[str, ...]) -> Request | None:
        """Pop the first pending request of `lanes` (call with the lock held)."""
        for lane in lanes:
            if lane in self._pending:
                self._running += 1
                return self._pending.pop(lane)
        return None

    def _checkpoint(self, req: Request) -> bool:
        """A running job's cancel check: serve pending quick lanes, then say whether the
        job was superseded."""
        if not self._nested and req.lane not in INTERLEAVED:
            self._nested = True
            try:
                while True:
                    with self._cond:
                        quick = None if self._stop else self._next(INTERLEAVED)
                    if quick is None:
                        break
                    self._run(quick)
            finally:
                self._nested = False
        with self._cond:
            gives_way = YIELDS_TO.get(req.lane) in self._pending
        return gives_way or self._superseded(req.lane, req.generation)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                req = self._next(LANES)
            self.busy.emit(True)
            self._run(req)
            with self._cond:
                idle = not self._pending
            if idle:
                self.busy.emit(False)

    def _run(self, req: Request) -> None:
        error = None
        result = None
        try:
            result = req.job(
                lambda done, total, g=req.generation: self.progress.emit(g, done, total)
                if req.lane == "view" else None,
                lambda r=req: self._checkpoint(r))
        except Cancelled:
            result = None
        except (ConfigError, BundleError, ValueError) as exc:
            error = str(exc)
        except Exception as exc:  # a bug: report it instead of killing the thread
            traceback.print_exc()
            error = f"{type(exc).__name__}: {exc}"
        # not running before any signal goes out: a receiver may post the next job
        with self._cond:
            self._running -= 1
            fresh = not self._superseded(req.lane, req.generation)
            if fresh and error is None and result is not None:
                self._results[req.lane] = (req.generation, result)
        if error is not None:
            self.failed.emit(req.lane, req.generation, error)
        elif fresh and result is not None:
            self.finished.emit(req.lane, req.generation)
