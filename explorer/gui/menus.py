"""The main window's menus, keyboard shortcuts and file dialogs (open, exports, settings).
Exports are written by explorer.core.export; the settings document is read and written
by explorer.core.state (what `explorer evaluate --settings` reads); the label audit's
marks by explorer.core.audit_marks (what `explorer evaluate --exclude-marked` reads).
Other bundles open through the window's application context, so this module never
imports the app."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from explorer.core.audit_marks import marks_table, read_marks, write_marks
from explorer.core.config import ConfigError
from explorer.core.export import FRAMES, write_csv, write_text
from explorer.core.state import read_settings

if TYPE_CHECKING:
    from explorer.gui.main_window import MainWindow

SHORTCUTS = (
    ("Next query", "Ctrl+Down"), ("Previous query", "Ctrl+Up"), ("Find", "Ctrl+F"),
    ("Find pictures by words", "Ctrl+Shift+F"),
    ("Toggle Min2", "Ctrl+M"), ("Next mode", "Ctrl+]"), ("Previous mode", "Ctrl+["),
    ("Pin current settings", "Ctrl+P"), ("Open bundle", "Ctrl+O"),
)


def _act(w: MainWindow, menu, text: str, slot, keys: str | None = None) -> QAction:
    act = QAction(text, w)
    if keys:
        act.setShortcut(QKeySequence(keys))
    act.triggered.connect(slot)
    menu.addAction(act)
    return act


def install(w: MainWindow) -> None:
    bar = w.menuBar()
    file = bar.addMenu("&File")
    _act(w, file, "&Open bundle…", lambda: open_dialog(w), "Ctrl+O")
    w.recent_menu = file.addMenu("Open &recent")
    w.recent_menu.aboutToShow.connect(lambda: _fill_recent(w))
    _act(w, file, "Open the built-in &demo", lambda: open_bundle(w, None))
    _act(w, file, "Original &pictures folder…", lambda: image_folder_dialog(w))
    _act(w, file, "&Thumbnails only", lambda: w.set_image_folder(None))
    file.addSeparator()
    _act(w, file, "&Load settings…", lambda: load_settings_dialog(w))
    _act(w, file, "Export &settings (JSON)…", lambda: export_dialog(w, "settings"))
    _act(w, file, "Export &predictions (CSV)…", lambda: export_dialog(w, "predictions"))
    _act(w, file, "Export per-query &metrics (CSV)…", lambda: export_dialog(w, "metrics"))
    _act(w, file, "Export &error pairs (CSV)…", lambda: export_dialog(w, "errors"))
    _act(w, file, "Export &confused groups (CSV)…", lambda: export_dialog(w, "confused"))
    _act(w, file, "Export &audit marks (CSV)…", lambda: export_dialog(w, "marks"))
    _act(w, file, "&Import audit marks…", lambda: import_marks_dialog(w))
    file.addSeparator()
    _act(w, file, "&Quit", w.close, "Ctrl+Q")

    nav = bar.addMenu("&Query")
    _act(w, nav, "&Next query", lambda: w.step_query(1), "Ctrl+Down")
    _act(w, nav, "&Previous query", lambda: w.step_query(-1), "Ctrl+Up")
    _act(w, nav, "&Find…", lambda: (w.search.setFocus(), w.search.selectAll()), "Ctrl+F")
    _act(w, nav, "Find &pictures by words…", w.find_pictures, "Ctrl+Shift+F")
    near = _act(w, nav, "Show &near misses", w.set_near_misses)
    near.setCheckable(True)
    near.setChecked(w.show_near_misses)

    match = bar.addMenu("&Matching")
    _act(w, match, "Toggle &Min2", w.controls.toggle_min2, "Ctrl+M")
    _act(w, match, "&Next mode", lambda: w.controls.cycle_mode(1), "Ctrl+]")
    _act(w, match, "&Previous mode", lambda: w.controls.cycle_mode(-1), "Ctrl+[")
    match.addSeparator()
    _act(w, match, "&Pin current settings as baseline", w.pin, "Ctrl+P")
    _act(w, match, "&Unpin", w.unpin)

    help_menu = bar.addMenu("&Help")
    _act(w, help_menu, "&Keyboard shortcuts", lambda: QMessageBox.information(
        w, "Keyboard shortcuts", "\n".join(f"{k:<14} {t}" for t, k in SHORTCUTS)))


def _fill_recent(w: MainWindow) -> None:
    w.recent_menu.clear()
    for path in w.settings.recent():
        w.recent_menu.addAction(path, lambda p=path: open_bundle(w, Path(p)))
    if w.recent_menu.isEmpty():
        w.recent_menu.addAction("(none)").setEnabled(False)


def open_dialog(w: MainWindow) -> None:
    folder = QFileDialog.getExistingDirectory(w, "Open an index bundle", str(w.bundle_path.parent))
    if folder:
        open_bundle(w, Path(folder))


def image_folder_dialog(w: MainWindow) -> None:
    """Pick the folder of the dataset's pictures (the `image` column's files)."""
    start = str(w.images.root if w.images is not None else w.bundle_path.parent)
    folder = QFileDialog.getExistingDirectory(w, "Folder of the original pictures", start)
    if folder:
        error = w.set_image_folder(Path(folder))
        if error:
            w.context.warning(w, "Original pictures", error)


def open_bundle(w: MainWindow, path: Path | None) -> None:
    """Replace the window by one over another bundle (None: the built-in demo)."""
    new = w.context.open_window(path, w)
    if new is not None:
        new.show()
        w.close()


def export(w: MainWindow, kind: str, path: Path) -> Path:
    """Write the current settings / predictions / per-query metrics (kind) to path."""
    if kind == "settings":
        return write_text(w.document().to_json(), path)
    if kind == "marks":  # every scope's: marks are per bundle
        if not w.marks:
            raise ValueError("no posting is marked (the Audit tab marks them)")
        return write_marks(marks_table(w.marks, w.session.bundle.items), path)
    if w.view is None:
        raise ValueError("nothing computed yet")
    snap = w.view.snapshot
    return write_csv(FRAMES[kind](snap.engine, snap.evaluation), path)


def export_dialog(w: MainWindow, kind: str) -> None:
    suffix = "json" if kind == "settings" else "csv"
    name = "audit-marks" if kind == "marks" else f"{w.scope}-{kind}"  # marks: every scope
    default = w.bundle_path.parent / f"{w.bundle_path.stem}-{name}.{suffix}"
    name, _ = QFileDialog.getSaveFileName(w, f"Export {kind}", str(default),
                                          f"{suffix.upper()} (*.{suffix})")
    if not name:
        return
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)  # all error pairs: a second
    try:
        out = export(w, kind, Path(name))
    except (OSError, ValueError) as exc:
        out, error = None, f"{name}: {exc}"
    finally:
        QApplication.restoreOverrideCursor()
    if out is None:
        w.context.error(w, "Export failed", error)
        return
    w.statusBar().showMessage(f"wrote {out}", 6000)


def import_marks(w: MainWindow, path: Path) -> str:
    """Add the marks of a marks file (theirs win); what was read, in words. ConfigError
    naming the file (and the line) when it is not a marks file."""
    marks = read_marks(path)
    w.add_marks(marks)
    known = int(w.session.bundle.items["posting_id"].isin(list(marks)).sum())
    extra = f" ({len(marks) - known} not in this bundle)" if known < len(marks) else ""
    return f"{len(marks)} audit marks read from {path}{extra}"


def import_marks_dialog(w: MainWindow) -> None:
    name, _ = QFileDialog.getOpenFileName(w, "Import audit marks", str(w.bundle_path.parent),
                                          "CSV (*.csv);;All files (*)")
    if not name:
        return
    try:
        said = import_marks(w, Path(name))
    except ConfigError as exc:
        w.context.error(w, "Cannot import audit marks", str(exc))
        return
    w.statusBar().showMessage(said, 6000)


def load_settings(w: MainWindow, path: Path) -> None:
    """Apply a settings document (ours, or `explorer evaluate --json` output);
    ConfigError naming the file when it cannot be read or does not fit the bundle."""
    w.apply_settings(read_settings(path), str(path))


def load_settings_dialog(w: MainWindow) -> None:
    name, _ = QFileDialog.getOpenFileName(w, "Load settings", str(w.bundle_path.parent),
                                          "JSON (*.json)")
    if name:
        try:
            load_settings(w, Path(name))
        except ConfigError as exc:
            w.context.error(w, "Cannot load settings", str(exc))
