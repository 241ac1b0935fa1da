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
    worker.finished.connect(lambda g: seen.append((g, worker.idle, worker.take(g))),
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
    worker.finished.connect(lambda g: finished.append((g, worker.take(g))))
    worker.failed.connect(lambda g, msg: failed.append((g, msg)))
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
