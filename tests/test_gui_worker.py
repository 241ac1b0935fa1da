"""The background worker: newest request wins, results by generation, idle state."""

from __future__ import annotations

import threading

from PySide6.QtCore import Qt

from explorer.gui.worker import Worker

TIMEOUT = 10_000


def test_idle_before_the_result_is_announced(qtbot):
    worker = Worker()
    seen = []
    # a direct connection: the slot runs as the signal is emitted, not when it is delivered
    worker.finished.connect(lambda lane, g: seen.append((g, worker.idle, worker.take(lane, g))),
                            Qt.ConnectionType.DirectConnection)
    assert worker.idle
    release = threading.Event()
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):
        gen = worker.submit(lambda p, c: (release.wait(5), "done")[1])
        qtbot.waitUntil(lambda: not worker.idle, timeout=TIMEOUT)  # running
        release.set()
    # a receiver may post the next job at once: the worker is already idle then
    assert seen == [(gen, True, "done")]
    worker.stop()


def test_a_newer_request_supersedes_and_failures_are_one_line(qtbot):
    worker = Worker()
    started, release = threading.Event(), threading.Event()

    def slow(progress, cancelled):
        started.set()
        release.wait(5)
        return "old"

    finished, failed = [], []
    worker.finished.connect(lambda lane, g: finished.append((g, worker.take(lane, g))))
    worker.failed.connect(lambda lane, g, msg: failed.append((g, msg)))
    old = worker.submit(slow)
    assert started.wait(5)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):
        new = worker.submit(lambda p, c: "new")
        release.set()
    assert finished == [(new, "new")] and new > old  # the old result was never announced
    with qtbot.waitSignal(worker.failed, timeout=TIMEOUT):
        bad = worker.submit(lambda p, c: (_ for _ in ()).throw(ValueError("no such scope")))
    assert failed == [(bad, "no such scope")]
    qtbot.waitUntil(lambda: worker.idle, timeout=TIMEOUT)
    worker.stop()


def test_lanes_never_cancel_each_other(qtbot):
    worker = Worker()
    done: dict[str, list] = {}
    worker.finished.connect(lambda lane, g: done.setdefault(lane, []).append(
        worker.take(lane, g)))
    release = threading.Event()
    worker.submit(lambda p, c: (release.wait(5), "view")[1], lane="view")
    qtbot.waitUntil(lambda: not worker.idle, timeout=TIMEOUT)
    worker.submit(lambda p, c: "cases", lane="cases")
    worker.submit(lambda p, c: "old query", lane="query")
    worker.submit(lambda p, c: "query", lane="query")  # supersedes only its own lane
    release.set()
    qtbot.waitUntil(lambda: len(done) == 3, timeout=TIMEOUT)
    assert done == {"view": ["view"], "query": ["query"], "cases": ["cases"]}
    worker.stop()


def test_a_long_view_job_serves_query_requests_between_its_steps(qtbot):
    """A query click during an INB computation is answered at the computation's next
    cancel check, on the worker thread, before the view job ends."""
    worker = Worker()
    order: list[tuple[str, str]] = []
    worker.finished.connect(lambda lane, g: order.append((lane, worker.take(lane, g))),
                            Qt.ConnectionType.DirectConnection)
    step, release = threading.Event(), threading.Event()

    def view(progress, cancelled):
        while not release.is_set():  # an INB computation, stage by stage
            cancelled()
            step.set()
            release.wait(0.01)
        return "view"

    def query(progress, cancelled):
        return threading.current_thread().name

    worker.submit(view, lane="view")
    assert step.wait(5)
    worker.submit(query, lane="query")
    qtbot.waitUntil(lambda: bool(order), timeout=TIMEOUT)
    assert order == [("query", "explorer-worker")]  # while the view job still runs
    release.set()
    qtbot.waitUntil(lambda: len(order) == 2, timeout=TIMEOUT)
    assert order[1] == ("view", "view")
    worker.stop()


def test_a_curve_job_gives_way_to_a_pending_view(qtbot):
    """A threshold curve computed in its own lane stops at its next cancel check once a
    view request is pending (that view brings its own curve); the view then runs."""
    worker = Worker()
    done: dict[str, list] = {}
    worker.finished.connect(lambda lane, g: done.setdefault(lane, []).append(
        worker.take(lane, g)))
    looping, saw_cancel = threading.Event(), threading.Event()

    def curve(progress, cancelled):
        for _ in range(500):  # a sweep, block by block
            if cancelled():
                saw_cancel.set()
                return "stopped"
            looping.set()
            threading.Event().wait(0.01)
        return "curve"

    worker.submit(curve, lane="curve")
    assert looping.wait(5)
    worker.submit(lambda p, c: "view", lane="view")
    qtbot.waitUntil(lambda: "view" in done, timeout=TIMEOUT)
    assert saw_cancel.is_set() and done["view"] == ["view"]
    worker.stop()
