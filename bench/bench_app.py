"""Responsiveness of the desktop app on the real table (34,250 postings, no images).

    python bench/bench_app.py [--csv PATH] [--bundle DIR] [--demo DIR] [--repeat 21]

Runs the real MainWindow offscreen and prints:
- app start in a fresh process (imports, Qt, the bundle, the first tuned view painted);
- slider move -> metrics repainted: median / p90 over threshold moves (the common case: a
  re-threshold of cached scores) and for an INB-2 configuration's last threshold;
- a cold change (new mode: its scores computed) -> repainted;
- scrolling the query list and the neighbour grid page by page: ms per repainted page
  (median / max);
- resident memory after start and at the end.
Targets (issue 4): slider median <= 100 ms, start <= 3 s, no stalls while scrolling.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from common import add_data_args, get_bundle, require_csv
from PySide6.QtCore import QCoreApplication, QEventLoop, QSettings
from PySide6.QtWidgets import QApplication

from explorer.core.bundle import Bundle
from explorer.core.config import InbStage, MatchConfig
from explorer.core.session import Session
from explorer.gui.app import app_context
from explorer.gui.main_window import MainWindow
from explorer.gui.settings import AppSettings

STARTUP = """
import time, sys
t0 = time.perf_counter()
import os, tempfile
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from explorer.core.bundle import Bundle
from explorer.core.session import Session
from explorer.gui.app import app_context, wait_for_view
from explorer.gui.main_window import MainWindow
from explorer.gui.settings import AppSettings
t1 = time.perf_counter()
app = QApplication([])
ini = os.path.join(tempfile.mkdtemp(), "s.ini")
w = MainWindow(Session(Bundle.open(sys.argv[1])), sys.argv[1],
               app_context(AppSettings(QSettings(ini, QSettings.Format.IniFormat))))
w.resize(1600, 1000)
w.show()
ok = wait_for_view(w) is None
w.repaint()
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t0:.3f} {int(ok)}")
"""


def startup_s(bundle: Path) -> tuple[float, float]:
    """A fresh process: (seconds to import the app, seconds until the first query and
    its metrics are painted), from the interpreter's start."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", STARTUP, str(bundle)], capture_output=True,
                         text=True, check=True).stdout.split()
    if out[2] != "1":
        raise SystemExit("bench: the app showed no view")
    return float(out[0]), float(out[1])


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait(window: MainWindow, timeout_s: float = 120, signal=None) -> float:
    """Block until the window applies its next view (or emits `signal`); seconds waited."""
    from PySide6.QtCore import QTimer

    signal = window.viewApplied if signal is None else signal
    start = time.perf_counter()
    loop = QEventLoop()
    signal.connect(loop.quit)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(loop.quit)
    return time.perf_counter() - start


def drag_with_cases(window: MainWindow, value: float) -> tuple[float, float]:
    """A threshold move with an error-case list on screen: ms to repainted metrics, and to
    the list refilled (it follows in its own worker job)."""
    from PySide6.QtWidgets import QWidget

    slider = window.controls.findChild(QWidget, "threshold0")
    start = time.perf_counter()
    slider.setValue(value)
    metrics = _repainted(window, start)
    wait(window, signal=window.caseShown)
    return metrics, (time.perf_counter() - start) * 1e3


def move(window: MainWindow, cfg: MatchConfig) -> float:
    """A programmatic change (mode, INB depth...) of the viewer state, which the panel
    shows; ms to repainted metrics."""
    start = time.perf_counter()
    window.set_config(cfg)
    return _repainted(window, start)


def click_during(window: MainWindow, cfg: MatchConfig, after_ms: int = 300
                 ) -> tuple[float, float]:
    """A query click `after_ms` into a slow view computation (a cold INB): ms from the
    click until the clicked query's grid is on screen, and from the request until the
    view is. The worker answers the click at the computation's next yield point (between
    two per-modality steps of an INB stage) instead of after the whole computation."""
    from PySide6.QtCore import QTimer

    clicked: list[float] = []

    def click() -> None:
        clicked.append(time.perf_counter())
        window.step_query(1)

    start = time.perf_counter()
    window.set_config(cfg)
    QTimer.singleShot(after_ms, click)
    while not clicked:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    if window.query_pending():
        wait(window, signal=window.queryShown)
    click_ms = (time.perf_counter() - clicked[0]) * 1e3
    if window.view.snapshot.config != cfg:
        wait(window)
    return click_ms, (time.perf_counter() - start) * 1e3


def drag(window: MainWindow, slider_name: str, value: float) -> float:
    """What a user's slider move does: the slider itself emits; ms to repainted metrics."""
    from PySide6.QtWidgets import QWidget

    slider = window.controls.findChild(QWidget, slider_name)
    start = time.perf_counter()
    slider.setValue(value)
    return _repainted(window, start)


def _repainted(window: MainWindow, start: float) -> float:
    wait(window)
    window.metrics.main.repaint()
    window.list.viewport().repaint()
    return (time.perf_counter() - start) * 1e3


def scroll_ms(view, pages: int) -> np.ndarray:
    bar = view.verticalScrollBar()
    out = []
    for _ in range(pages):
        start = time.perf_counter()
        bar.setValue(bar.value() + bar.pageStep())
        QCoreApplication.processEvents()
        view.viewport().repaint()
        out.append((time.perf_counter() - start) * 1e3)
    return np.array(out)


LINES: list[str] = []


def say(text: str) -> None:
    print(text, flush=True)
    LINES.append(text)


def fmt(ms: np.ndarray) -> str:
    return (f"median {np.median(ms):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms, "
            f"max {ms.max():.1f} ms (n={len(ms)})")


def run(bundle_path: Path, repeat: int, label: str, scope: str) -> None:
    runs = sorted(startup_s(bundle_path) for _ in range(3))
    imp, total = runs[1]
    say(f"[{label}] app start in a fresh process (median of 3): first query shown after "
          f"{total:.2f} s, of which importing Qt, numpy, pandas and the app {imp:.2f} s")
    app = QApplication.instance() or QApplication([])
    tmp = tempfile.mkdtemp()
    settings = AppSettings(QSettings(f"{tmp}/s.ini", QSettings.Format.IniFormat))
    start = time.perf_counter()
    window = MainWindow(Session(Bundle.open(bundle_path)), bundle_path, app_context(settings))
    window.resize(1600, 1000)
    window.show()
    wait(window)
    app.processEvents()
    window.repaint()
    first = time.perf_counter()
    say(f"[{label}] in this process: window + first view (scope {window.scope}, threshold "
          f"tuned on fold1) {first - start:.2f} s; RSS {rss_mb():.0f} MB")
    if window.scope != scope:
        s0 = time.perf_counter()
        window.set_scope(scope)
        wait(window)
        say(f"[{label}] switch to scope {scope}: {time.perf_counter() - s0:.2f} s")
    say(f"[{label}] measuring on {window.view.snapshot.n:,} postings (scope {window.scope})")

    cfg = window.config
    t = cfg.thresholds[0]
    moves = [drag(window, "threshold0", float(v)) for v in np.linspace(t - 0.05, t + 0.05,
                                                                        repeat)]
    say(f"[{label}] slider move -> metrics repainted (re-threshold): {fmt(np.array(moves))}")

    inb = MatchConfig("single", cfg.modalities, cfg.thresholds,
                      inb=(InbStage(0.7), InbStage(0.8)))
    cold = move(window, inb)
    say(f"[{label}] INB 2 first computation -> repainted: {cold:.0f} ms")
    clicks = [click_during(window, inb.replace(inb=(InbStage(0.7 + d), InbStage(0.8 + d))))
              for d in (0.01, 0.02, 0.03)]
    say(f"[{label}] query click 0.3 s into another INB 2 computation: grid shown after "
        f"{', '.join(f'{c:.0f}' for c, _ in clicks)} ms (the INB views after "
        f"{', '.join(f'{t:.0f}' for _, t in clicks)} ms)")
    moves = [drag(window, "inbThreshold1", float(v)) for v in np.linspace(0.75, 0.85, repeat)]
    say(f"[{label}] slider move on INB 2's last threshold: {fmt(np.array(moves))}")
    mods = [n for n, _ in window.session.modalities][:2]
    fused = MatchConfig("sum", tuple(mods), (0.5,), weights=(0.5, 0.5))
    say(f"[{label}] cold mode change (sum:{','.join(mods)}) -> repainted: "
          f"{move(window, fused):.0f} ms")
    moves = [drag(window, "threshold0", float(v)) for v in np.linspace(0.45, 0.55, repeat)]
    say(f"[{label}] slider move on the sum's threshold: {fmt(np.array(moves))}")

    window.tabs.setCurrentWidget(window.cases)  # a list recomputed after every view
    for index, kind in enumerate(window.cases.models):
        window.cases.setCurrentIndex(index)
        wait(window, signal=window.caseShown)
        both = np.array([drag_with_cases(window, float(v))
                         for v in np.linspace(0.45, 0.55, repeat)])
        say(f"[{label}] slider move with the {kind} cases shown: metrics repainted "
              f"{fmt(both[:, 0])}; list refilled {fmt(both[:, 1])}")
    window.tabs.setCurrentIndex(0)

    window.list.scrollToTop()
    say(f"[{label}] query list scroll, per page: {fmt(scroll_ms(window.list, 60))}")
    big = int(np.argmax(window.view.table.group_size))
    window.select_query(big)
    if window.query_pending():
        wait(window, signal=window.queryShown)
    app.processEvents()
    tiles = window.grid.model().rowCount()
    say(f"[{label}] neighbour grid ({tiles} tiles) scroll, per page: "
          f"{fmt(scroll_ms(window.grid, 10))}")
    steps = []
    for _ in range(30):
        s = time.perf_counter()
        window.step_query(1)  # the panel at once, the grid from the worker's query lane
        if window.query_pending():
            wait(window, signal=window.queryShown)
        window.grid.viewport().repaint()
        window.query_panel.repaint()
        steps.append((time.perf_counter() - s) * 1e3)
    say(f"[{label}] next query (grid + panel repainted): {fmt(np.array(steps))}")
    say(f"[{label}] RSS at the end {rss_mb():.0f} MB")
    window.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(p)
    p.add_argument("--demo", type=Path, help="also run on this demo bundle (thumbnails)")
    p.add_argument("--repeat", type=int, default=21)
    p.add_argument("--scope", default="all", help="scope to measure on (default all: 34,250)")
    p.add_argument("--write", type=Path, metavar="MD",
                   help="also write the figures as the `app` section of this Markdown file "
                        "(e.g. docs/results.md)")
    args = p.parse_args(argv)
    csv = require_csv(args.csv)
    info = get_bundle(csv, args.bundle, args.rebuild)
    run(info.path, args.repeat, "real table", args.scope)
    if args.demo:
        run(args.demo, args.repeat, "demo", args.scope)
    if args.write:
        from common import source_state, write_section
        from results import cpu_model

        cmd = "python bench/bench_app.py" + (f" --demo {args.demo}" if args.demo else "")
        body = ["## The app's responsiveness", "",
                f"Generated by `{cmd} --write {args.write}` on {cpu_model()} "
                f"({os.cpu_count()} cores), offscreen Qt; source {source_state()}. Targets "
                "(issue 4): slider move to repainted metrics <= 100 ms median at 34k, app "
                "start to first query shown <= 3 s, no stalls while scrolling.", "", "```",
                *LINES, "```"]
        write_section(args.write, "app", "\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
