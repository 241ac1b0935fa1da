"""Shared fixtures: small synthetic Shopee-format datasets and bundles built from them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# GUI tests never open windows on a desktop and work with no display at all
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# every open checks everything (tests tamper with files in place within a clock tick);
# tests/test_check_stamps.py turns the stamps on in a folder of its own
os.environ["EXPLORER_CHECK_STAMPS"] = "off"

REAL_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "shopee" / "train.csv"

WORDS = ("sepatu", "tas", "kaos", "botol", "minyak", "sabun", "lampu", "kabel", "buku", "jam",
         "madu", "kopi", "teh", "susu", "beras", "gula", "celana", "topi", "payung", "piring")
COLOURS = ("merah", "biru", "hitam", "putih", "hijau", "kuning", "pink", "abu")


def synthetic_table(n_groups: int = 60, seed: int = 0) -> pd.DataFrame:
    """Shopee-like rows: groups of 2..6 postings whose titles share product words and
    whose phashes are near each other; some groups are near-duplicates of another group
    that differ only in pack size (250ml vs 500ml)."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        size = int(rng.choice([2, 2, 2, 3, 4, 6]))
        words = rng.choice(WORDS, 3, replace=False)
        colour = COLOURS[g % len(COLOURS)]
        amount = f"{[250, 500, 1000][g % 3]}ml"
        base_hash = int(rng.integers(0, 2**63))
        for i in range(size):
            noise = rng.choice(["", "[COD] ", "PROMO ", "Original "])
            brand = f" brand{g}" if i % 3 == 0 else ""
            title = f"{noise}{' '.join(words)} {colour} {amount}{brand}"
            if i % 2:
                title = title.upper()
            flip = 0
            for b in rng.choice(64, int(rng.integers(0, 6)), replace=False):
                flip |= 1 << int(b)
            rows.append({
                "posting_id": f"train_{g}_{i}", "image": f"{g}_{i}.jpg",
                "image_phash": f"{(base_hash ^ flip) & (2**64 - 1):016x}", "title": title,
                "label_group": 1000 + g,
            })
    return pd.DataFrame(rows)


@pytest.fixture
def make_csv(tmp_path: Path):
    def make(df: pd.DataFrame | None = None, name: str = "train.csv") -> Path:
        path = tmp_path / name
        (synthetic_table() if df is None else df).to_csv(path, index=False)
        return path
    return make


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A TF-IDF + phash bundle over 60 synthetic groups (about 200 postings)."""
    from precompute.build import BuildOptions, build

    root = tmp_path_factory.mktemp("tiny")
    csv = root / "train.csv"
    synthetic_table().to_csv(csv, index=False)
    return build(BuildOptions(csv=csv, out=root / "tiny.bundle", k=20, progress=False))


@pytest.fixture(scope="session")
def real_csv() -> Path:
    if not REAL_CSV.exists() or os.environ.get("EXPLORER_NO_REAL_DATA"):
        pytest.skip(f"real Shopee table not found at {REAL_CSV}")
    return REAL_CSV


@pytest.fixture(scope="session")
def mislabelled(tmp_path_factory) -> Path:
    """The synthetic table with label errors to audit: group 1004 relabelled 1003 (two
    products under one label) and posting train_5_0 moved to group 1006; TF-IDF + phash."""
    from precompute.build import BuildOptions, build

    root = tmp_path_factory.mktemp("mislabelled")
    table = synthetic_table()
    table.loc[table["label_group"] == 1004, "label_group"] = 1003
    table.loc[table["posting_id"] == "train_5_0", "label_group"] = 1006
    table.to_csv(root / "train.csv", index=False)
    return build(BuildOptions(csv=root / "train.csv", out=root / "mis.bundle", k=20,
                              progress=False))


DEMO_POSTINGS = 120  # a small demo: every modality kind, about 15 s to build on 2 cores


@pytest.fixture(scope="session")
def demo_bundle(tmp_path_factory) -> Path:
    """The built-in demo at a small size: EfficientNet-Lite0 and MiniLM (packaged weights,
    CPU), TF-IDF, phash, the effnet+minilm fusion and thumbnails."""
    from precompute.demo import build_demo

    out = tmp_path_factory.mktemp("demo")
    return build_demo(out, n_postings=DEMO_POSTINGS, progress=False, k=20, workers=0)


def pytest_addoption(parser) -> None:
    parser.addoption("--run-slow", action="store_true",
                     help="also run tests marked slow (the full demo build, ...)")


def pytest_collection_modifyitems(config, items) -> None:
    if config.getoption("--run-slow") or os.environ.get("EXPLORER_RUN_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow (or set EXPLORER_RUN_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def offline_hub():
    """A hub lookup here would hang for ~50 s: make every one fail at once (modules that
    load models use it: `pytestmark = pytest.mark.usefixtures("offline_hub")`)."""
    import huggingface_hub

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    """A private, valid copy of the tiny bundle, to damage."""
    import shutil

    from explorer.core.bundle import Bundle

    dst = tmp_path / "copy.bundle"
    shutil.copytree(tiny_bundle, dst)
    Bundle.open(dst)  # the pristine copy is valid
    return dst


@pytest.fixture
def settings(tmp_path: Path):
    """The app's settings in a file of the test's own (never the user's)."""
    from PySide6.QtCore import QSettings

    from explorer.gui.settings import AppSettings

    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
