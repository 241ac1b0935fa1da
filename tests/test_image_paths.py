"""Image names never lead outside --images (issue 9): absolute names, `..` and symbolic
links pointing out are skipped and recorded, in every reader of pictures (perceptual hash,
thumbnails, neural image encoders, training); links that stay inside are followed."""

from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_table
from PIL import Image

from explorer.core.bundle import Bundle
from precompute.build import BuildOptions, build

N_GOOD = 8


def picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (6, 6, 3), np.uint8)).resize((48, 48))


@pytest.fixture
def layout(tmp_path: Path) -> dict:
    """An image folder, a secret picture beside it, and names that try to reach it."""
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    for i in range(N_GOOD):
        picture(i).save(images / f"good_{i}.png")
    secret = tmp_path / "secret.png"
    picture(99).save(secret)
    (images / "link_out.png").symlink_to(secret)
    (images / "sub" / "link_in.png").symlink_to(images / "good_1.png")
    names = {
        "dotdot": "../secret.png",
        "absolute": str(secret),
        "link_out": "link_out.png",
        "sub_dotdot": "sub/../../secret.png",
        "link_in": "sub/link_in.png",  # stays inside: followed
        "inside_dotdot": "sub/../good_2.png",  # stays inside: allowed
    }
    return {"images": images, "secret": secret, "names": names}


def table_with(names: dict[str, str]) -> pd.DataFrame:
    n = N_GOOD + len(names)
    df = synthetic_table(n_groups=20).drop(columns="image_phash").head(n).reset_index(drop=True)
    df["label_group"] = [1000 + i // 2 for i in range(n)]  # pairs: 7 groups, 5 folds
    df["image"] = [f"good_{i}.png" for i in range(N_GOOD)] + list(names.values())
    return df


def phash_of(path: Path) -> str:
    with Image.open(path) as im:
        return str(imagehash.phash(im))


def test_phash_and_thumbnails_never_read_outside_the_folder(layout, tmp_path):
    images, names = layout["images"], layout["names"]
    df = table_with(names)
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    b = Bundle.open(build(BuildOptions(csv=csv, out=tmp_path / "b.bundle", images=images,
                                       k=5, progress=False)))
    row = {key: N_GOOD + i for i, key in enumerate(names)}
    outside = sorted(row[k] for k in ("dotdot", "absolute", "link_out", "sub_dotdot"))
    hexes = b.items["image_phash"]
    for r in outside:
        assert hexes.iloc[r] == "", (r, df["image"].iloc[r])
        assert b.thumbnail(r) is None
    assert phash_of(layout["secret"]) not in set(hexes)
    # names that stay inside are read, through the link too
    assert hexes.iloc[row["link_in"]] == phash_of(images / "good_1.png")
    assert hexes.iloc[row["inside_dotdot"]] == phash_of(images / "good_2.png")
    assert b.thumbnail(row["link_in"]) is not None
    for i in range(N_GOOD):
        assert hexes.iloc[i] == phash_of(images / f"good_{i}.png")
    skipped = b.manifest.modality("phash").params["skipped"]
    assert [s["row"] for s in skipped] == outside
    assert all("outside" in s["reason"] for s in skipped)
    assert np.flatnonzero(~b.present("phash")).tolist() == outside
    idx = np.asarray(b.knn("all", "phash")[0])
    others = np.delete(idx, outside, axis=0)
    assert not np.isin(others, outside).any()


def test_neural_image_encoder_never_reads_outside_the_folder(layout, tmp_path):
    from precompute.demo import IMAGE_MODEL

    images, names = layout["images"], layout["names"]
    csv = tmp_path / "t.csv"
    table_with(names).to_csv(csv, index=False)
    b = Bundle.open(build(BuildOptions(
        csv=csv, out=tmp_path / "b.bundle", images=images, text=("tfidf",),
        image=(IMAGE_MODEL,), k=5, progress=False, workers=0, thumbnails=False)))
    row = {key: N_GOOD + i for i, key in enumerate(names)}
    outside = sorted(row[k] for k in ("dotdot", "absolute", "link_out", "sub_dotdot"))
    skipped = b.manifest.modality("effnet").params["skipped"]
    assert [s["row"] for s in skipped] == outside
    assert all("outside" in s["reason"] for s in skipped)
    assert np.flatnonzero(~b.present("effnet")).tolist() == outside


def test_training_never_reads_outside_the_folder(layout, tmp_path):
    pytest.importorskip("timm")
    from precompute.training.data import load_split
    from precompute.training.image import image_task

    images, names = layout["images"], layout["names"]
    df = table_with(names)
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    task = image_task(load_split(csv), images, "resnet10t", fc_dim=8, size=32, workers=0)
    row = {key: N_GOOD + i for i, key in enumerate(names)}
    for key in ("dotdot", "absolute", "link_out", "sub_dotdot"):
        assert task.paths[row[key]] is None, key
    assert task.paths[row["link_in"]] == (images / "good_1.png").resolve()
    assert task.paths[0] == (images / "good_0.png").resolve()
