"""What persists between sessions (QSettings): window layout, recent bundles, and the last
settings, pictures folder and label-audit marks of each bundle. Stored values are
validated on the way back in: a stale or hand-edited entry is ignored, never trusted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from explorer.core.config import ConfigError
from explorer.core.state import SettingsDoc, check_marks, parse_settings

MAX_RECENT = 8
ORGANISATION, APPLICATION = "shopee-explorer", "explorer"


def default_store() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION,
                     APPLICATION)


def _key(bundle: Path) -> str:
    return "bundles/" + hashlib.sha1(str(Path(bundle).resolve()).encode()).hexdigest()[:16]


class AppSettings:
    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else default_store()

    # -- recent bundles -----------------------------------------------------------------
    def recent(self) -> list[str]:
        value = self.store.value("recent", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [str(p) for p in items if isinstance(p, str) and p][:MAX_RECENT]

    def add_recent(self, bundle: Path) -> None:
        path = str(Path(bundle).resolve())
        items = [path, *[p for p in self.recent() if p != path]][:MAX_RECENT]
        self.store.setValue("recent", items)

    # -- per-bundle state -----------------------------------------------------------------
    def save_state(self, bundle: Path, doc: SettingsDoc) -> None:
        self.store.setValue(_key(bundle), doc.to_json())

    def load_state(self, bundle: Path, scopes: tuple[str, ...], modalities: set[str]
                   ) -> SettingsDoc | None:
        """The settings last used on this bundle, when they still fit it (else None)."""
        raw = self.store.value(_key(bundle))
        if not isinstance(raw, str):
            return None
        try:
            doc = parse_settings(json.loads(raw, parse_constant=float), "stored settings")
            doc.check(scopes, modalities, "stored settings")
        except (ValueError, RecursionError, ConfigError):  # stale or hand-edited: ignored
            return None
        return doc if doc.scope is not None else None

    # -- the dataset's original pictures, per bundle ---------------------------------------
    def image_folder(self, bundle: Path) -> str | None:
        """The folder chosen for the bundle; "" when the analyst chose thumbnails only,
        None when nothing was ever chosen."""
        value = self.store.value("images/" + _key(bundle).split("/", 1)[1])
        return value if isinstance(value, str) else None

    def save_image_folder(self, bundle: Path, folder: Path | None) -> None:
        key = "images/" + _key(bundle).split("/", 1)[1]
        self.store.setValue(key, "" if folder is None else str(Path(folder).resolve()))

    # -- the label audit's marks, per bundle -----------------------------------------------
    def marks(self, bundle: Path) -> dict[str, str]:
        """posting_id -> mark as last left on the bundle ({} when none, or stale)."""
        raw = self.store.value("marks/" + _key(bundle).split("/", 1)[1])
        if not isinstance(raw, str):
            return {}
        try:
            marks = json.loads(raw)
            check_marks(marks, "stored marks")
        except (ValueError, RecursionError, ConfigError):  # hand-edited: ignored
            return {}
        return dict(marks)

    def save_marks(self, bundle: Path, marks: dict[str, str]) -> None:
        self.store.setValue("marks/" + _key(bundle).split("/", 1)[1],
                            json.dumps(marks, separators=(",", ":")))

    # -- window -------------------------------------------------------------------------
    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.store.setValue("window/geometry", geometry)
        self.store.setValue("window/state", state)

    def window(self) -> tuple[QByteArray | None, QByteArray | None]:
        g, s = self.store.value("window/geometry"), self.store.value("window/state")
        return (g if isinstance(g, QByteArray) else None,
                s if isinstance(s, QByteArray) else None)
