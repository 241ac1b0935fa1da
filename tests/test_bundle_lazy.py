"""`Bundle.open(lazy=True)` (the app): the manifest and items are checked at once, each
scope's arrays and each modality's embeddings when first used; nothing unchecked ever
reaches a caller, and a scope never shown is never read."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from explorer.core.bundle import Bundle, BundleError
from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine


def _copy(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy.bundle"
    shutil.copytree(src, out)
    return out


def test_only_the_scope_in_use_is_read(tiny_bundle):
    b = Bundle.open(tiny_bundle, lazy=True)
    assert not any(rel.startswith("scopes/") for rel in b._cache)
    Engine(b, "fold0")
    read = {rel.split("/")[1] for rel in b._cache if rel.startswith("scopes/")}
    assert read == {"fold0"}


def test_a_damaged_scope_fails_when_used_not_before(tiny_bundle, tmp_path):
    out = _copy(tiny_bundle, tmp_path)
    cand = out / "scopes" / "fold3" / "graph.cand.npy"
    arr = np.load(cand)
    arr[0, 1] = arr[0, 2]  # a repeated candidate: recall above 1 if it were used
    np.save(cand, arr)
    with pytest.raises(BundleError, match="fold3"):
        Bundle.open(out)  # the full check (explorer evaluate) refuses it at once
    b = Bundle.open(out, lazy=True)
    cfg = MatchConfig("single", ("tfidf",), (0.5,))
    assert Engine(b, "fold0").evaluate(cfg).metrics is not None
    with pytest.raises(BundleError, match=r"graph\.cand\.npy"):
        Engine(b, "fold3")
    with pytest.raises(BundleError, match="fold3"):
        b.knn("fold3", "tfidf")


def test_damaged_embeddings_fail_when_a_space_is_built(tiny_bundle, tmp_path):
    out = _copy(tiny_bundle, tmp_path)
    bits = out / "modalities" / "phash" / "bits.npy"
    np.save(bits, np.zeros((3, 8), np.uint8))  # wrong number of rows
    b = Bundle.open(out, lazy=True)
    engine = Engine(b, "fold0")
    engine.evaluate(MatchConfig("single", ("phash",), (0.5,)))  # stage 0: the graph only
    with pytest.raises(BundleError, match=r"bits\.npy"):  # INB needs the embeddings
        engine.evaluate(MatchConfig("single", ("phash",), (0.5,), inb=(InbStage(0.6),)))


def test_lazy_and_full_give_the_same_numbers(tiny_bundle):
    cfg = MatchConfig("sum", ("tfidf", "phash"), (0.5,), inb=(InbStage(0.6),))
    lazy = Engine(Bundle.open(tiny_bundle, lazy=True), "fold1").evaluate(cfg)
    full = Engine(Bundle.open(tiny_bundle), "fold1").evaluate(cfg)
    np.testing.assert_array_equal(lazy.pred, full.pred)
    np.testing.assert_array_equal(lazy.f1, full.f1)
