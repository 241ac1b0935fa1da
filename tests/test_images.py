"""load_rgb on awkward files, and the thumbnail blob."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from precompute.images import load_rgb
from precompute.thumbnails import make_thumbnails, read_thumbnail


def noise(h: int, w: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_header(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels and holds no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    p = {name: tmp_path / name for name in (
        "rgb.jpg", "rgb.png", "cmyk.jpg", "palette.png", "rgba.png", "la.png", "grey16.png",
        "bits.png", "cut.jpg", "cut.png", "header.jpg", "garbage.jpg", "exif.jpg")}
    noise(60, 80).save(p["rgb.jpg"], quality=90)
    noise(60, 80).save(p["rgb.png"])
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(p["cmyk.jpg"])  # red in CMYK
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    pal.paste(1, (0, 0, 10, 20))
    pal.save(p["palette.png"], transparency=0)  # right half transparent
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(p["rgba.png"])  # fully transparent
    Image.new("LA", (20, 20), (0, 255)).save(p["la.png"])
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(ramp).save(p["grey16.png"])
    Image.new("1", (20, 20), 1).save(p["bits.png"])
    whole = p["rgb.jpg"].read_bytes()
    p["cut.jpg"].write_bytes(whole[: len(whole) * 2 // 3])
    p["header.jpg"].write_bytes(whole[:300])
    png = p["rgb.png"].read_bytes()
    p["cut.png"].write_bytes(png[: len(png) // 2])
    p["garbage.jpg"].write_bytes(np.random.default_rng(1).bytes(2000))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    noise(60, 80).save(p["exif.jpg"], exif=exif.tobytes())
    return p


def test_every_file_gives_an_image_or_a_reason(files: dict[str, Path], tmp_path: Path) -> None:
    results = {name: load_rgb(path) for name, path in files.items()}
    results["missing.jpg"] = load_rgb(tmp_path / "missing.jpg")
    results["folder"] = load_rgb(tmp_path)
    for name, (img, reason) in results.items():
        assert (img is None) != (reason is None), name
        assert img is None or img.mode == "RGB", name
    assert results["missing.jpg"] == (None, "missing")
    assert results["garbage.jpg"][1].startswith("corrupt: ")
    assert results["folder"][1].startswith("corrupt: ")
    assert results["header.jpg"][0] is None  # nothing decodable after the header
    for name in ("rgb.jpg", "rgb.png", "cut.jpg", "cut.png"):  # truncated: keep what is there
        assert results[name][0].size == (80, 60), name
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # restored after the retry


def test_modes_are_converted_sensibly(files: dict[str, Path]) -> None:
    px = {name: np.asarray(load_rgb(files[name])[0]) for name in (
        "cmyk.jpg", "palette.png", "rgba.png", "la.png", "grey16.png", "bits.png")}
    assert px["cmyk.jpg"][5, 5, 0] > 200 and px["cmyk.jpg"][5, 5, 1:].max() < 60
    assert tuple(px["palette.png"][5, 2]) == (0, 255, 0)
    assert tuple(px["palette.png"][5, 15]) == (255, 255, 255)  # transparent -> white
    assert (px["rgba.png"] == 255).all()
    assert (px["la.png"] == 0).all()  # opaque black
    grey = px["grey16.png"][:, :, 0]
    assert grey[0, 0] == 0 and grey[-1, -1] == 255 and len(np.unique(grey)) > 200  # scaled
    assert (px["bits.png"] == 255).all()


def test_exif_orientation_is_applied(files: dict[str, Path]) -> None:
    assert load_rgb(files["exif.jpg"])[0].size == (60, 80)


def test_huge_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(30000, 30000))
    assert load_rgb(bomb)[1].startswith("too large")
    big_jpg, big_png, mid_png = tmp_path / "big.jpg", tmp_path / "big.png", tmp_path / "mid.png"
    noise(1400, 1600).save(big_jpg)
    noise(1000, 1200).save(big_png)
    noise(800, 1000).save(mid_png)
    img, _ = load_rgb(big_jpg, max_pixels=1_000_000)  # decoded at half scale
    assert img.size == (800, 700)
    assert load_rgb(big_jpg, max_pixels=10_000)[1].startswith("too large")  # even at 1/8
    assert load_rgb(big_png, max_pixels=1_000_000)[1].startswith("too large")
    # Past PIL's own bomb limits: the warning never escapes, a JPEG is still drafted.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500_000)  # warns above, fails above 2x
    filters = list(warnings.filters)
    assert load_rgb(mid_png)[0].size == (1000, 800)  # over the warning limit only
    assert load_rgb(big_jpg, max_pixels=1_000_000)[0].size == (800, 700)  # over the error one
    assert load_rgb(big_png, max_pixels=10**9)[1].startswith("too large")
    assert list(warnings.filters) == filters


def test_thumbnails_round_trip(files: dict[str, Path], tmp_path: Path) -> None:
    wide, small = tmp_path / "wide.jpg", tmp_path / "small.png"
    noise(300, 900).save(wide)
    noise(50, 100).save(small)
    paths = [wide, files["garbage.jpg"], None, small, tmp_path / "missing.jpg", files["rgba.png"]]
    blob, offsets = make_thumbnails(paths, progress=False, workers=2)
    assert offsets.shape == (7,) and offsets.dtype == np.int64 and offsets[0] == 0
    assert (np.diff(offsets) >= 0).all() and offsets[-1] == len(blob)
    sizes = []
    for i in range(len(paths)):
        jpeg = read_thumbnail(memoryview(blob), offsets, i)
        if jpeg is None:
            sizes.append(None)
            continue
        with Image.open(io.BytesIO(jpeg)) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            sizes.append(img.size)
    assert sizes == [(192, 64), None, None, (100, 50), None, (20, 20)]


def test_image_paths_stay_inside_the_folder(tmp_path: Path) -> None:
    from precompute.images import image_paths

    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    noise(8, 8).save(root / "a.png")
    outside = tmp_path / "secret.png"
    noise(8, 8, 1).save(outside)
    (root / "out.png").symlink_to(outside)
    (root / "sub" / "in.png").symlink_to(root / "a.png")
    (root / "loop.png").symlink_to(root / "loop.png")
    names = ["a.png", "sub/in.png", "sub/../a.png", "missing.png", "../secret.png",
             str(outside), "out.png", "", "loop.png", "a\x00.png", None]
    got = image_paths(root, names)
    real = root.resolve()
    assert got.paths[:4] == [real / "a.png", real / "a.png", real / "a.png",
                             real / "missing.png"]  # a missing file is the reader's skip
    assert got.paths[4:] == [None] * 7
    assert sorted(got.rejected) == list(range(4, 11))
    assert all("outside" in got.rejected[r] for r in (4, 5, 6))


def test_load_stored_keeps_the_file_as_stored_and_skips_bombs(tmp_path: Path) -> None:
    from precompute.images import load_stored

    (tmp_path / "bomb.png").write_bytes(png_header(100_000, 100_000))
    img, why = load_stored(tmp_path / "bomb.png")
    assert img is None and why.startswith("too large")
    Image.new("L", (4, 4), 77).save(tmp_path / "grey.png")
    img, why = load_stored(tmp_path / "grey.png")
    assert why is None and img.mode == "L" and img.getpixel((0, 0)) == 77  # not made RGB
