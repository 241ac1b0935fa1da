"""`explorer [BUNDLE] [--images DIR] [--settings JSON] [--query POSTING_ID] [--screenshot
PNG]`: the app.

Without BUNDLE the built-in demo opens; it is built on first use by `precompute demo` in
a child process (the app never imports the precompute stack) with a progress dialog, and
cached afterwards. A folder that is not a valid bundle gets a dialog, not a traceback;
with --screenshot nothing ever opens a dialog: every error is one line on stderr and the
exit status is 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QProcess, QStandardPaths, QTimer
from PySide6.QtWidgets import QApplication, QProgressDialog, QWidget

from explorer.core.bundle import Bundle, BundleError
from explorer.core.config import ConfigError
from explorer.core.session import Session
from explorer.core.state import read_settings
from explorer.gui.context import AppContext
from explorer.gui.main_window import MainWindow
from explorer.gui.settings import APPLICATION, ORGANISATION, AppSettings

SCREENSHOT_SIZE = (1600, 1000)
VIEW_TIMEOUT_S = 120
_PROGRESS = re.compile(r"([A-Za-z][\w ]*?):\s+(\d+)%")


def demo_dir() -> Path:
    """Where the demo is cached: $EXPLORER_DEMO_DIR, else the user's cache folder."""
    env = os.environ.get("EXPLORER_DEMO_DIR")
    if env:
        return Path(env)
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    return Path(base or Path.home() / ".cache" / APPLICATION) / "demo"


def build_demo(context: AppContext, parent: QWidget | None = None) -> Path | None:
    """Build the demo bundle in a child process, showing its progress; None if it failed
    or was cancelled (the reason is reported through the context)."""
    out = demo_dir()
    bundle = out / "demo.bundle"
    if (bundle / "manifest.json").exists():
        return bundle
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        context.error(parent, "Demo", f"{out}: cannot create the demo folder ({exc})")
        return None
    dialog = QProgressDialog("Building the built-in demo (about 2 minutes, once)…", "Cancel",
                             0, 100, parent)
    dialog.setWindowTitle("Shopee match explorer")
    dialog.setMinimumDuration(0)
    proc = QProcess()
    proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
    tail: list[str] = []

    def read() -> None:
        text = bytes(proc.readAllStandardOutput().data()).decode("utf-8", "replace")
        for chunk in re.split(r"[\r\n]+", text):
            if chunk.strip():
                tail[:] = [*tail[-20:], chunk.strip()]
            found = _PROGRESS.findall(chunk)
            if found:
                name, pct = found[-1]
                dialog.setLabelText(f"Building the built-in demo: {name}")
                dialog.setValue(int(pct))

    loop = QEventLoop()
    proc.readyReadStandardOutput.connect(read)
    proc.finished.connect(loop.quit)
    dialog.canceled.connect(proc.kill)
    proc.start(sys.executable, ["-m", "precompute", "demo", "--out", str(out)])
    if not proc.waitForStarted(10_000):
        context.error(parent, "Demo", f"could not start {sys.executable}")
        return None
    loop.exec()
    read()
    cancelled = dialog.wasCanceled()  # before close(), which itself emits canceled
    dialog.canceled.disconnect(proc.kill)
    dialog.close()
    if proc.exitStatus() != QProcess.ExitStatus.NormalExit or proc.exitCode() != 0:
        if not cancelled:
            last = next((t for t in reversed(tail) if "error" in t.lower()), tail[-1:] or [""])
            context.error(parent, "Demo", f"building the demo failed: {''.join(last)}")
        return None
    return bundle


def open_window(path: Path | None, context: AppContext,
                parent_for_errors: QWidget | None = None) -> MainWindow | None:
    """A MainWindow over the bundle at path (None: the demo), or None after the error was
    reported through the context (a dialog, or stderr when nobody watches)."""
    demo = path is None
    if demo:
        path = build_demo(context, parent_for_errors)
        if path is None:
            return None
    try:
        bundle = Bundle.open(path, lazy=True)  # each scope checked when first shown
    except BundleError as exc:
        context.error(parent_for_errors, "Cannot open bundle", str(exc))
        return None
    context.settings.add_recent(path)
    window = MainWindow(Session(bundle), path, context)
    pictures = path.parent / "data" / "train_images"  # where `precompute demo` puts them
    if demo and context.settings.image_folder(path) is None and pictures.is_dir():
        window.set_image_folder(pictures)  # unless the analyst chose otherwise before
    return window


def app_context(settings: AppSettings, interactive: bool = True) -> AppContext:
    """The context windows get: these settings, and opening another bundle."""
    context = AppContext(settings, interactive)
    context.open_window = lambda path, parent: open_window(path, context, parent)
    return context


def wait_for_view(window: MainWindow, timeout_s: float = VIEW_TIMEOUT_S) -> str | None:
    """Process events until the window shows a computed view and its thumbnails; an
    error message when the computation failed or timed out, else None."""
    failures: list[str] = []
    window.viewFailed.connect(failures.append)
    end = time.monotonic() + timeout_s
    try:
        while window.view is None and not failures and time.monotonic() < end:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)
        settle = time.monotonic() + 3
        while window.cache.pending() and time.monotonic() < settle:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)
        while window.query_pending() and time.monotonic() < settle:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)
        QCoreApplication.processEvents()
    finally:
        window.viewFailed.disconnect(failures.append)
    if failures:
        return failures[0]
    return None if window.view is not None else "timed out waiting for the first view"


def screenshot(window: MainWindow, png: Path, query: str | None) -> str | None:
    """Render the window at 1600x1000 with `query` selected; an error message or None."""
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    error = wait_for_view(window)
    if error:
        return error
    if query is not None and not window.select_posting(query):
        return f"--query {query}: no such posting in scope {window.scope}"
    error = wait_for_view(window)
    if error:
        return error
    if not window.grab().save(str(png)):
        return f"{png}: could not write the image"
    return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="explorer", description="Shopee match explorer. `explorer evaluate --help` for "
        "the headless numbers.")
    p.add_argument("bundle", nargs="?", type=Path, help="bundle folder (default: the demo)")
    p.add_argument("--screenshot", type=Path, metavar="PNG",
                   help="render the window offscreen at 1600x1000, save it and exit")
    p.add_argument("--query", metavar="POSTING_ID", help="the query to show first")
    p.add_argument("--images", type=Path, metavar="DIR",
                   help="folder of the dataset's pictures: the pair view shows the originals "
                        "instead of the bundle's thumbnails (remembered for the bundle)")
    p.add_argument("--settings", type=Path, metavar="JSON",
                   help="settings to start with (exported by the app or `explorer evaluate "
                        "--json`), the pinned baseline included")
    return p.parse_args(argv)


def run_app(argv: list[str]) -> int:
    args = parse_args(argv)
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if args.screenshot and headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif headless and not os.environ.get("QT_QPA_PLATFORM"):
        print("explorer: error: no display (DISPLAY is not set); use --screenshot PNG, or "
              "`explorer evaluate` for the numbers", file=sys.stderr)
        return 2
    doc = read_settings(args.settings) if args.settings else None  # before any window
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    context = app_context(AppSettings(), interactive=args.screenshot is None)
    window = open_window(args.bundle, context)
    if window is None:
        return 2
    error = None
    try:
        if args.images:
            problem = window.set_image_folder(args.images)
            if problem:
                raise ConfigError(f"--images {problem}")
        if doc is not None:
            window.apply_settings(doc, str(args.settings))
        if args.screenshot:
            error = screenshot(window, args.screenshot, args.query)
    except ConfigError as exc:
        error = str(exc)
    if error or args.screenshot:
        window.close()
    if error:
        print(f"explorer: error: {error}", file=sys.stderr)
        return 2
    if args.screenshot:
        print(f"wrote {args.screenshot}")
        return 0
    window.show()
    if args.query:
        QTimer.singleShot(0, lambda: window.select_posting(args.query))
    return app.exec()
