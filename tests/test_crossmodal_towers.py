"""Cross-modal towers of kind "open_clip": a tiny randomly initialised open_clip model
(a config registered here, so nothing downloads) saved to a weights file and loaded by
spec; rows checked against the model run by hand, the text side rebuilt from the record,
and every refusal one line."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from precompute.crossmodal_towers import load_towers, text_tower_from_record
from precompute.errors import InputError

NAME = "explorer-test-tiny-clip"
# a two-layer ViT and a two-layer text transformer of width 32: about 1.6 M parameters,
# nearly all of them the 49,408-token embedding open_clip's tokenizer needs
TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16,
                       "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                     "layers": 2}}
TITLES = ["tas ransel wanita hitam", "sepatu lari pria", "tas ransel wanita hitam",
          "kaos polos", ""]


def _tiny_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model, _, _ = open_clip.create_model_and_transforms(NAME)
    return model.eval()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """The tiny architecture registered with open_clip, and a random model of it saved as
    safetensors and as a torch file."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("openclip")
    config = folder / f"{NAME}.json"
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)
    model = _tiny_model(seed=1)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "tiny.safetensors")
    torch.save(state, folder / "tiny.pt")
    return {"folder": folder, "config": config, "safetensors": folder / "tiny.safetensors",
            "pt": folder / "tiny.pt"}


@pytest.fixture
def pictures(tmp_path) -> list[Path | None]:
    rng = np.random.default_rng(0)
    paths: list[Path | None] = []
    for i, size in enumerate([(40, 30), (64, 64), (33, 50)]):
        path = tmp_path / f"p{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    return [paths[0], broken, paths[1], None, paths[2]]


def _reference_texts(model: torch.nn.Module, titles: list[str]) -> np.ndarray:
    tokens = open_clip.get_tokenizer(NAME)(titles)
    with torch.no_grad():
        return torch.nn.functional.normalize(model.encode_text(tokens), dim=1).numpy()


def test_open_clip_towers_give_the_models_own_unit_rows(tiny, pictures):
    towers = load_towers(f"open_clip:{NAME}:{tiny['safetensors']}", device="cpu")
    model = _tiny_model(seed=1)  # the same random weights, run by hand
    assert towers.dim == 16 and towers.arrays == {}

    texts = towers.encode_texts(TITLES)
    assert texts.shape == (5, 16) and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(texts, _reference_texts(model, TITLES), atol=1e-5)
    assert np.array_equal(texts[0], texts[2])  # the same title twice, the same row
    assert not np.allclose(texts[0], texts[1])

    out = towers.encode_images(pictures, workers=0)
    assert out.emb.shape == (5, 16)
    assert out.present.tolist() == [True, False, True, False, True]
    assert [row for row, _ in out.skipped] == [1, 3]
    assert not out.emb[[1, 3]].any()
    np.testing.assert_allclose(np.linalg.norm(out.emb[out.present], axis=1), 1, atol=1e-6)
    _, _, transform = open_clip.create_model_and_transforms(NAME)
    x = torch.stack([transform(Image.open(p).convert("RGB")) for p in pictures if p and
                     p.name != "broken.jpg"])
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model.encode_image(x), dim=1).numpy()
    np.testing.assert_allclose(out.emb[out.present], ref, atol=1e-5)

    record = json.loads(json.dumps(towers.record))  # what a manifest keeps
    assert record["kind"] == "open_clip" and record["model"] == NAME
    assert record["model_cfg"] == TINY and record["pretrained"] is None
    assert record["weights_sha256"] == hashlib.sha256(
        tiny["safetensors"].read_bytes()).hexdigest()
    again = text_tower_from_record(record, {}, device="cpu")
    assert np.array_equal(again(TITLES), texts)


def test_the_record_rebuilds_a_config_registered_only_at_build_time(tiny, monkeypatch):
    towers = load_towers(f"open_clip:{NAME}:{tiny['pt']}", device="cpu")
    expected = towers.encode_texts(TITLES)
    # another process (the app's text child) never called add_model_config
    monkeypatch.delitem(open_clip.factory._MODEL_CONFIGS, NAME)
    assert open_clip.get_model_config(NAME) is None
    assert np.array_equal(text_tower_from_record(towers.record, {}, device="cpu")(TITLES),
                          expected)


def test_a_config_json_names_the_architecture(tiny, tmp_path):
    # as a hub repository's open_clip_config.json: model_cfg plus preprocessing
    config = tmp_path / "hub-tiny.json"
    config.write_text(json.dumps({"model_cfg": TINY,
                                  "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}}))
    towers = load_towers(f"open_clip:{config}:{tiny['safetensors']}", device="cpu")
    assert towers.record["model"] == "hub-tiny"
    np.testing.assert_allclose(towers.encode_texts(TITLES),
                               _reference_texts(_tiny_model(seed=1), TITLES), atol=1e-5)


class Payload:  # a Python object in a weights file: never unpickled
    pass


@pytest.mark.parametrize("spec, message", [
    (f"open_clip:{NAME}", "name its weights"),
    ("open_clip:", "expected open_clip:MODEL:"),
    ("open_clip:no-such-model:w.safetensors", "not an open_clip model"),
    (f"open_clip:{NAME}:missing/w.safetensors", "no such weights file"),
    (f"open_clip:{NAME}:not_a_tag", "nor a pretrained tag"),
    ("open_clip:/nowhere/cfg.json:w.pt", "model config not found"),
])
def test_bad_specs_are_one_line(tiny, spec, message):
    with pytest.raises(InputError, match=message) as err:
        load_towers(spec)
    assert "\n" not in str(err.value)


def test_unsafe_or_unfitting_weights_are_refused(tiny, tmp_path):
    pickled = tmp_path / "object.pt"
    torch.save({"state_dict": Payload()}, pickled)
    with pytest.raises(InputError, match="refused, it holds Python objects"):
        load_towers(f"open_clip:{NAME}:{pickled}")
    other = {k: v for k, v in torch.load(tiny["pt"], weights_only=True).items()
             if not k.startswith("visual.transformer.resblocks.1.")}
    torch.save(other, tmp_path / "short.pt")
    with pytest.raises(InputError, match="does not fit open_clip") as err:
        load_towers(f"open_clip:{NAME}:{tmp_path / 'short.pt'}")
    assert "missing" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot be read as safetensors"):
        load_towers(f"open_clip:{NAME}:{tmp_path / 'junk.safetensors'}")


def test_the_record_refuses_changed_or_missing_weights(tiny, tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(tiny["safetensors"].read_bytes())
    record = load_towers(f"open_clip:{NAME}:{weights}", device="cpu").record
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in _tiny_model(seed=2).state_dict().items()}, weights)
    with pytest.raises(InputError, match="sha256 differs"):
        text_tower_from_record(record, {})
    weights.unlink()
    with pytest.raises(InputError, match="weights the bundle's text tower was built with are "
                       "missing"):
        text_tower_from_record(record, {})


def test_without_open_clip_the_spec_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import open_clip -> ImportError
    with pytest.raises(InputError, match=r"pip install shopee-explorer\[openclip\]") as err:
        load_towers("open_clip:ViT-B-32:laion2b_s34b_b79k")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match=r"pip install shopee-explorer\[openclip\]"):
        text_tower_from_record({"kind": "open_clip", "model": "ViT-B-32", "model_cfg": TINY,
                                "weights_sha256": "0" * 64}, {})
