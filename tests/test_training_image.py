"""`precompute train image` on a small demo: the checkpoint is `precompute build`'s image
format and embeds identically when loaded; unreadable images are skipped and counted;
packaged starting weights load into the backbone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from precompute.cli import main
from precompute.errors import InputError
from precompute.image_encoders import FORMAT, encode_images, load_image_encoder
from precompute.training import loop
from precompute.training.data import load_split
from precompute.training.image import image_task

ARCH, SIZE = "resnet10t", 64  # tiny and fast on the CPU


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path]:
    from precompute.demo_data import generate_demo

    out = tmp_path_factory.mktemp("demo")
    csv = generate_demo(out, n_postings=80, seed=0, progress=False)
    return csv, out / "train_images"


def _task(csv: Path, images: Path, **kw):
    torch.manual_seed(0)
    return image_task(load_split(csv), images, ARCH, fc_dim=16, size=SIZE, workers=0, **kw)


def _cfg(out: Path, **kw) -> loop.LoopConfig:
    return loop.LoopConfig(out=out, **({"epochs": 1, "batch_size": 8, "lr": 1e-3,
                                        "progress": False} | kw))


def test_checkpoint_is_builds_format_and_embeds_identically(demo, tmp_path):
    csv, images = demo
    task = _task(csv, images)
    summary = loop.fit(task, _cfg(tmp_path / "run"))
    best = tmp_path / "run" / loop.BEST
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["format"] == FORMAT and ckpt["arch"] == ARCH
    assert ckpt["input_size"] == SIZE and ckpt["embedding_dim"] == 16
    assert ckpt["loss"] == "arcface" and ckpt["margin"] == 0.5
    assert ckpt["data_sha256"] == task.split.sha256 and ckpt["epoch"] == 1
    assert not any(k.startswith("final.") or k.startswith("margin") for k in ckpt["state_dict"])
    enc = load_image_encoder(f"{ARCH}:{best}")
    assert enc.info["kind"] == "explorer-checkpoint" and enc.input_size == SIZE
    rows = task.split.valid_rows
    loaded = encode_images(enc, [task.paths[r] for r in rows], workers=0, progress=False)
    emb, present = task.embed(rows)
    assert present.all() and np.allclose(loaded.emb, emb, atol=1e-5)
    assert summary["history"][-1]["valid_f1"] == pytest.approx(ckpt["valid_f1"])


def test_unreadable_images_are_skipped_and_counted(demo, tmp_path):
    csv, images = demo
    broken = tmp_path / "images"
    broken.mkdir()
    split = load_split(csv)
    names = split.data.table["image"].tolist()
    bad = {names[r] for r in split.train_rows[:3]}
    for name in names:
        target = broken / name
        if name in bad:
            target.write_bytes(b"not a jpeg")
        else:
            shutil.copyfile(images / name, target)
    task = _task(csv, broken)
    summary = loop.fit(task, _cfg(tmp_path / "run", validate_untrained=False))
    assert task.skipped_total == 3
    assert summary["history"][-1]["skipped"] == 3
    assert summary["history"][-1]["samples"] <= len(split.train_rows) - 3


def test_packaged_weights_start_the_backbone(demo):
    csv, images = demo
    task = image_task(load_split(csv), images, "tf_efficientnet_lite0",
                      pretrained="efficientnet_lite0", fc_dim=16, size=SIZE, workers=0)
    assert task.start == "pretrained efficientnet_lite0"
    packaged = load_image_encoder("tf_efficientnet_lite0").module.state_dict()
    mine = task.model.embedder.backbone.state_dict()
    assert all(torch.equal(mine[k], packaged[k]) for k in packaged)


def test_bad_image_arguments(demo, tmp_path):
    csv, images = demo
    with pytest.raises(InputError, match="image folder not found"):
        image_task(load_split(csv), tmp_path / "nowhere", ARCH)
    with pytest.raises(InputError, match="not a timm model"):
        image_task(load_split(csv), images, "no_such_net")


def test_cli_train_image(demo, tmp_path, capsys):
    csv, images = demo
    out = tmp_path / "run"
    assert main(["train", "image", "--csv", str(csv), "--images", str(images), "--model",
                 ARCH, "--size", str(SIZE), "--fc-dim", "16", "--epochs", "1", "--batch", "8",
                 "--loss", "curricular", "--workers", "0", "--out", str(out), "--quiet"]) == 0
    assert torch.load(out / "best.pt", weights_only=True)["loss"] == "curricular"
    assert f"wrote {out / 'best.pt'}" in capsys.readouterr().out
