"""What the analyst is looking at, in one Qt-free object, and the one reader / writer of
the settings document.

`ViewerState` holds the scope, the matching configuration, the pinned baseline, the
current query, the original-pictures folder and the label-audit marks (posting_id ->
mark, explorer.core.audit_marks; per bundle, across scopes). Widgets are views of it: they call
`update` when the analyst moves something and repaint when it tells them (listeners get
the names of the fields that changed). Every value is checked against the bundle's
scopes and modalities on the way in, so no widget can hold a state the engine refuses.

The settings document is the JSON the app exports, `explorer --settings` and `explorer
evaluate --settings` read, and the app stores per bundle:
`{"bundle", "scope", "config", "pinned"}`; a bare configuration object (`--json`'s
`config`, or `MatchConfig.to_dict()`) is accepted too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.core.audit_marks import LABEL_ERROR, MARKS
from explorer.core.config import ConfigError, MatchConfig
from explorer.core.image_folder import ImageFolder

FIELDS = ("scope", "config", "pinned", "query", "images", "marks")
MAX_SETTINGS_BYTES = 1 << 20  # a settings document is a few hundred bytes


@dataclass(frozen=True)
class SettingsDoc:
    """The settings document. `scope` is None when the document names none."""

    config: MatchConfig
    scope: str | None = None
    pinned: MatchConfig | None = None
    bundle: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "scope": self.scope, "config": self.config.to_dict(),
                "pinned": self.pinned.to_dict() if self.pinned else None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def check(self, scopes: Iterable[str], modalities: Iterable[str], where: str) -> None:
        """Refuse a document this bundle cannot show (ConfigError naming `where`)."""
        scopes, mods = tuple(scopes), set(modalities)
        if self.scope is not None and self.scope not in scopes:
            raise ConfigError(f"{where}: scope {self.scope!r} is not in this bundle "
                              f"({', '.join(scopes)})")
        for name, cfg in (("config", self.config), ("pinned", self.pinned)):
            missing = sorted(set(cfg.modalities) - mods) if cfg is not None else []
            if missing:
                raise ConfigError(f"{where}: {name} uses modalities this bundle lacks "
                                  f"({', '.join(missing)})")


def parse_settings(data: Any, where: str) -> SettingsDoc:
    """A settings document from parsed JSON; ConfigError (one line, naming `where`) for
    anything else."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: not a settings document (a JSON object is expected, "
                          f"not {type(data).__name__})")
    if "config" not in data and "mode" in data:
        data = {"config": data}  # a bare configuration
    config = data.get("config")
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: not a settings document (no 'config' object)")
    pinned, scope, bundle = data.get("pinned"), data.get("scope"), data.get("bundle")
    if pinned is not None and not isinstance(pinned, dict):
        raise ConfigError(f"{where}: 'pinned' must be a configuration object or null")
    if scope is not None and not isinstance(scope, str):
        raise ConfigError(f"{where}: 'scope' must be a string or null")
    parsed = {}
    for name, value in (("config", config), ("pinned", pinned)):
        try:
            parsed[name] = MatchConfig.from_dict(value) if value else None
        except ConfigError as exc:
            raise ConfigError(f"{where}: {name}: {exc}") from None
    return SettingsDoc(parsed["config"], scope, parsed["pinned"],
                       bundle if isinstance(bundle, str) else None)


def read_settings(path: str | Path) -> SettingsDoc:
    """Read a settings document from a file; ConfigError naming the file otherwise."""
    path = Path(path)
    try:
        if not path.is_file():  # a folder, a FIFO or a device would block or mislead
            what = "does not exist" if not path.exists() else "is not a regular file"
            raise ConfigError(f"{path}: {what}")
        if path.stat().st_size > MAX_SETTINGS_BYTES:
            raise ConfigError(f"{path}: too large for a settings document")
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text, parse_constant=_no_constant)
    except _NotANumber as exc:
        raise ConfigError(f"{path}: {exc} (only finite numbers are allowed)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:  # "[[[[..." nested deeper than the parser's stack
        raise ConfigError(f"{path}: not a settings document (nested too deeply)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return parse_settings(data, str(path))


class _NotANumber(ValueError):
    pass


def _no_constant(name: str) -> Any:
    # json accepts NaN / Infinity by default; a number a file gives must be a number
    raise _NotANumber(f"{name} is not a number")


class ViewerState:
    """The one state of a viewer over a bundle (see the module docstring). Not
    thread-safe: the GUI thread owns it; the worker gets immutable copies of its values."""

    def __init__(self, scopes: Iterable[str], modalities: Iterable[str], scope: str,
                 config: MatchConfig, pinned: MatchConfig | None = None) -> None:
        self.scopes = tuple(scopes)
        self.modalities = tuple(modalities)
        self.scope = scope
        self.config = config
        self.pinned: MatchConfig | None = pinned
        self.query: int | None = None          # scope-local row of the current query
        self.images: ImageFolder | None = None  # the original pictures, when chosen
        # posting_id -> mark; replaced by update(marks=...), never changed in place
        self.marks: dict[str, str] = {}
        self._listeners: list[Callable[[frozenset[str]], None]] = []
        self.document().check(self.scopes, self.modalities, "initial state")

    def subscribe(self, listener: Callable[[frozenset[str]], None]) -> None:
        """Call `listener(changed_field_names)` after every update that changes something."""
        self._listeners.append(listener)

    def update(self, **changes: Any) -> frozenset[str]:
        """Set fields; validate them together first (ConfigError, nothing changed), then
        notify. A new scope clears the query. Returns the names that changed."""
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise TypeError(f"ViewerState has no field {sorted(unknown)[0]!r}")
        scope = changes.get("scope", self.scope)
        if "config" in changes or "pinned" in changes or "scope" in changes:
            SettingsDoc(changes.get("config", self.config), scope,
                        changes.get("pinned", self.pinned)).check(
                self.scopes, self.modalities, "settings")
        if "marks" in changes:
            check_marks(changes["marks"], "marks")
        if scope != self.scope and "query" not in changes:
            changes["query"] = None
        changed = frozenset(k for k, v in changes.items() if getattr(self, k) != v
                            or (k == "images" and getattr(self, k) is not v))
        for k in changed:
            setattr(self, k, changes[k])
        if changed:
            for listener in list(self._listeners):
                listener(changed)
        return changed

    def document(self, bundle: str | None = None) -> SettingsDoc:
        return SettingsDoc(self.config, self.scope, self.pinned, bundle)

    def apply(self, doc: SettingsDoc, where: str) -> frozenset[str]:
        """Take a settings document: its scope (when it names one), config and pinned."""
        doc.check(self.scopes, self.modalities, where)
        return self.update(config=doc.config, pinned=doc.pinned,
                           **({"scope": doc.scope} if doc.scope is not None else {}))


# -- label-audit marks ------------------------------------------------------------------
def check_marks(marks: Any, where: str) -> None:
    """Refuse anything but posting_id -> one of audit_marks.MARKS (ConfigError)."""
    if not isinstance(marks, Mapping):
        raise ConfigError(f"{where}: marks must map posting ids to marks")
    for pid, mark in marks.items():
        if not isinstance(pid, str) or not pid or mark not in MARKS:
            raise ConfigError(f"{where}: {str(pid)[:40]!r} -> {str(mark)[:40]!r} is not a "
                              f"posting id and one of {', '.join(MARKS)}")


def remarked(marks: Mapping[str, str], ids: Iterable[str], mark: str | None
             ) -> dict[str, str]:
    """A copy of `marks` with every posting of `ids` marked `mark` (None: unmarked)."""
    out = dict(marks)
    for pid in ids:
        if mark is None:
            out.pop(pid, None)
        else:
            out[pid] = mark
    return out


def mark_of(marks: Mapping[str, str], ids: Iterable[str]) -> str:
    """What a finding's postings carry: their one mark, "" when none is marked, "mixed"
    when they differ (some marked, or marked differently)."""
    seen = {marks.get(pid, "") for pid in ids}
    return seen.pop() if len(seen) == 1 else "mixed"


def label_errors(marks: Mapping[str, str]) -> frozenset[str]:
    """The postings marked as label errors (what the metrics leave out)."""
    return frozenset(pid for pid, mark in marks.items() if mark == LABEL_ERROR)
