"""pyproject lists packages by hand (to ship resources/ as explorer.resources): every
package in the tree must be listed, and the resources must be found."""

from __future__ import annotations

import tomllib
from pathlib import Path

from explorer.core.units import load_units

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for top in ("explorer", "precompute") for p in (ROOT / top).rglob("__init__.py")}
    assert found | {"explorer.resources"} == listed


def test_resources_load():
    assert "volume" in load_units()
