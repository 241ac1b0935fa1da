"""The original pictures beside a bundle: names joined under the folder, never outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from explorer.core.bundle import Bundle
from explorer.core.image_folder import ImageFolder


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Bundle:
    return Bundle.open(tiny_bundle)


def _write(folder: Path, name: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8 not decoded here")
    return path


def test_a_posting_maps_to_its_file(bundle, tmp_path):
    name = bundle.items["image"].iloc[3]
    written = _write(tmp_path, name)
    folder = ImageFolder(tmp_path, bundle)
    assert folder.path(3) == written.resolve()
    assert folder.path(4) is None  # not on disk
    assert folder.found() == (1, 50)


def test_names_that_leave_the_folder_are_never_opened(bundle, tmp_path):
    inside = tmp_path / "images"
    inside.mkdir()
    outside = _write(tmp_path, "secret.jpg")
    (inside / "link.jpg").symlink_to(outside)
    items = bundle.items
    for name in ("../secret.jpg", str(outside), "link.jpg", "", "a\x00b.jpg"):
        original = items.at[0, "image"]
        items.at[0, "image"] = name
        try:
            assert ImageFolder(inside, bundle).path(0) is None, name
        finally:
            items.at[0, "image"] = original


def test_a_folder_that_is_not_there(bundle, tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        ImageFolder(tmp_path / "missing", bundle)
    _write(tmp_path, "file.jpg")
    with pytest.raises(ValueError, match=r"file\.jpg: not a folder"):
        ImageFolder(tmp_path / "file.jpg", bundle)


def test_found_counts_a_spread_sample(bundle, tmp_path):
    for name in bundle.items["image"]:
        _write(tmp_path, name)
    found, looked = ImageFolder(tmp_path, bundle).found(sample=10)
    assert found == looked == 10
    os.remove(tmp_path / bundle.items["image"].iloc[0])
    assert ImageFolder(tmp_path, bundle).found(sample=10) == (9, 10)
