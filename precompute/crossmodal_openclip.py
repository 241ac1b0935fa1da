"""An open_clip / CLIP model used directly as the cross-modal towers (its own image and
text encoders, already in one space): the `open_clip:` spec of `load_towers`.

Spec: `open_clip:MODEL:WEIGHTS`
- MODEL: an open_clip architecture name (`ViT-B-32`, `ViT-B-16-quickgelu`, any name
  `open_clip.list_models()` gives, `open_clip.add_model_config` ones included), or a
  `.json` file: an open_clip model config (`embed_dim`, `vision_cfg`, `text_cfg`) or an
  `open_clip_config.json` as hub repositories carry it (`model_cfg`, `preprocess_cfg`),
  registered with open_clip under the file's stem.
- WEIGHTS (required: random towers would mean nothing): a pretrained tag of MODEL
  (`laion2b_s34b_b79k`, `openai`; from open_clip's cache, downloaded when the hub is
  reachable) or a weights file: `.safetensors`, or a torch file (`.pt`, `.pth`, `.bin`)
  read with `torch.load(weights_only=True)`. Nothing is ever unpickled; a TorchScript
  archive (the original OpenAI `.pt` files) is refused, its tag's hub copy is not.
Example: `open_clip:ViT-B-32:laion2b_s34b_b79k`, `open_clip:ViT-B-32:/models/clip.safetensors`.

The record (kind "open_clip") keeps the architecture's config itself, the tag, the weights
file's path and sha256: `load_openclip_text` rebuilds the text side from it elsewhere
(a config registered only at build time included) and refuses weights that changed."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from precompute.checkpoints import check_fits, read_checkpoint
from precompute.errors import InputError, one_line
from precompute.image_encoders import ImageEncoder, pick_device
from precompute.text_encoders import TextEncoder

PREFIX = "open_clip:"
INSTALL = "pip install shopee-explorer[openclip]"
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


def import_open_clip() -> Any:
    """The open_clip module, or a one-line InputError saying how to install it."""
    try:
        import open_clip
    except ImportError as exc:
        raise InputError(f"open_clip cannot be imported ({one_line(exc)}): {INSTALL}") from None
    return open_clip


def parse_spec(spec: str) -> tuple[str, str]:
    """`MODEL:WEIGHTS` (the part after `open_clip:`) -> (MODEL, WEIGHTS). The split is at
    the first ':' past a Windows drive letter of MODEL; WEIGHTS may hold ':' itself."""
    text = spec.strip()
    start = 2 if len(text) > 2 and text[1] == ":" and text[0].isalpha() else 0
    model, sep, weights = text[start:].partition(":")
    model, weights = text[:start] + model.strip(), weights.strip()
    if not model:
        raise InputError(f"{PREFIX}{spec}: expected {PREFIX}MODEL:PRETRAINED_TAG_OR_WEIGHTS_FILE")
    if not sep or not weights:
        raise InputError(f"{PREFIX}{spec}: name its weights, {PREFIX}{model}:PRETRAINED_TAG "
                         f"or {PREFIX}{model}:WEIGHTS_FILE (random towers would mean nothing)")
    return model, weights


# ---- architecture --------------------------------------------------------------------


def _config_file(path: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(name, model config, preprocessing overrides) of a model config .json."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: open_clip model config not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as JSON ({one_line(exc)})") from None
    preprocess: Any = {}
    if isinstance(obj, dict) and isinstance(obj.get("model_cfg"), dict):
        obj, preprocess = obj["model_cfg"], obj.get("preprocess_cfg") or {}
    if not isinstance(obj, dict) or not all(k in obj for k in CONFIG_KEYS) \
            or not isinstance(preprocess, dict):
        raise InputError(f"{path}: not an open_clip model config (expected "
                         f"{', '.join(CONFIG_KEYS)}, or model_cfg holding them)")
    return path.stem, obj, preprocess


def register(open_clip: Any, name: str, config: dict[str, Any]) -> None:
    """Make open_clip know `name` as `config` (its own registry is the only way into
    `create_model` and `get_tokenizer`): a no-op when it already does."""
    if open_clip.get_model_config(name) == config:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        open_clip.add_model_config(path)  # read now; the vanished file is skipped later
    if open_clip.get_model_config(name) != config:
        raise InputError(f"{name}: open_clip did not register this model config")


def architecture(open_clip: Any, model: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(name, config, preprocessing overrides) of MODEL, registered with open_clip."""
    path = Path(model).expanduser()
    if model.endswith(".json") or path.is_file():
        name, config, preprocess = _config_file(path)
        register(open_clip, name, config)
        return name, config, preprocess
    config = open_clip.get_model_config(model)
    if config is None:
        raise InputError(f"{model}: not an open_clip model (see open_clip.list_models()); "
                         "or pass its model config .json")
    return model, config, {}


# ---- weights -------------------------------------------------------------------------


def resolve_weights(open_clip: Any, name: str, weights: str) -> tuple[Path, str | None,
                                                                     dict[str, Any]]:
    """(weights file, pretrained tag or None, the tag's settings) for WEIGHTS."""
    path = Path(weights).expanduser()
    if path.is_file():
        return path, None, {}
    tags = open_clip.list_pretrained_tags_by_model(name)
    looks_like_file = any(c in weights for c in "/\\") or \
        path.suffix in (".safetensors", *TORCH_SUFFIXES)
    if looks_like_file or weights not in tags:
        known = f" (its tags: {', '.join(tags[:6])}{', ...' if len(tags) > 6 else ''})" \
            if tags else ""
        raise InputError(f"{weights}: no such weights file, nor a pretrained tag of open_clip "
                         f"{name}{known}")
    cfg = open_clip.get_pretrained_cfg(name, weights)
    try:
        found = open_clip.download_pretrained(cfg)
    except Exception as exc:
        raise InputError(f"open_clip {name}:{weights}: weights not in the cache and could not be "
                         f"downloaded ({one_line(exc)}); pass a weights file instead") from None
    if not found or not Path(found).is_file():
        raise InputError(f"open_clip {name}:{weights}: no weights file for this tag")
    return Path(found), weights, cfg


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a weights file, tensors only: safetensors, or a torch file read
    with weights_only (a `state_dict` entry and DDP's `module.` prefix unwrapped)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path), device="cpu")
        except Exception as exc:
            raise InputError(f"{path}: cannot be read as safetensors ({one_line(exc)})") \
                from None
    else:
        state = read_checkpoint(path)
        for key in ("state_dict", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputError(f"{path}: not a state dict of tensors")
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _fit(model: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    """Load `state` strictly, after open_clip's own small reconciliations (a scalar or 1-d
    logit scale, the position ids newer transformers no longer keep)."""
    state = dict(state)
    for key in ("logit_scale", "logit_bias"):
        own = getattr(model, key, None)
        if key in state and isinstance(own, torch.Tensor) and state[key].numel() == own.numel():
            state[key] = state[key].reshape(own.shape)
    state.pop("text.transformer.embeddings.position_ids", None)
    check_fits(path, f"open_clip {name}", model.state_dict(), state,
               ignore=frozenset({"text.transformer.embeddings.position_ids"}))
    model.load_state_dict(state, strict=False)


@contextmanager
def _quiet_root_log() -> Iterator[None]:
    """open_clip logs 'initialized randomly' on the root logger before our weights go in."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def build_model(open_clip: Any, name: str, config: dict[str, Any], preprocess: dict[str, Any],
                weights: Path, *, quick_gelu: bool) -> tuple[nn.Module, Callable, Any]:
    """(model in eval mode on the CPU, fp32, with the weights; its evaluation transform;
    its tokenizer)."""
    register(open_clip, name, config)
    overrides = {f"image_{k}": preprocess.get(k)
                 for k in ("mean", "std", "interpolation", "resize_mode")}
    if overrides["image_mean"] is not None:
        overrides["image_mean"] = tuple(overrides["image_mean"])
    if overrides["image_std"] is not None:
        overrides["image_std"] = tuple(overrides["image_std"])
    try:
        with _quiet_root_log():
            # no base tower weights either (pretrained_text for hub text towers): the full
            # weights replace them all
            model, _, transform = open_clip.create_model_and_transforms(
                name, pretrained=None, precision="fp32", device="cpu",
                force_quick_gelu=quick_gelu, pretrained_image=False, pretrained_text=False,
                **overrides)
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:
        raise InputError(f"open_clip {name}: could not be built ({one_line(exc)})") from None
    _fit(model, read_weights(weights), weights, name)
    return model.eval(), transform, tokenizer


# ---- the towers ----------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class _ImageSide(nn.Module):
    """`encode_image` as a module's forward, as `encode_images` drives an image model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)


def _text_encoder(model: nn.Module, tokenizer: Any, dim: int, info: dict[str, Any]
                  ) -> TextEncoder:
    def embed(texts: list[str]) -> torch.Tensor:
        tokens = tokenizer(texts).to(next(model.parameters()).device)
        return model.encode_text(tokens)

    return TextEncoder(module=model, dim=dim, info=info, embed=embed)


def _square(size: Any) -> int:
    sizes = tuple(size) if isinstance(size, list | tuple) else (size, size)
    if len(set(sizes)) != 1:
        raise InputError(f"open_clip input size {list(sizes)}: only square inputs are supported")
    return int(sizes[0])


@dataclass
class OpenClip:
    """A loaded open_clip model as the two encoders `encode_images` / `encode_texts` drive
    (unit rows of `dim`, already in one space), and what its record keeps."""

    name: str
    config: dict[str, Any]
    quick_gelu: bool
    tag: str | None
    weights: Path
    image: ImageEncoder
    text: TextEncoder
    info: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.config["embed_dim"])

    def record(self) -> dict[str, Any]:
        """JSON: the architecture's config itself (it may have been registered only in
        this process), the tag, the weights file's path and sha256."""
        return {"model": self.name, "model_cfg": self.config, "quick_gelu": self.quick_gelu,
                "pretrained": self.tag, "weights": str(self.weights.resolve()),
                "weights_sha256": file_sha256(self.weights), "dim": self.dim}


def load_openclip(spec: str, *, device: str | None = None,
                  image_size: int | None = None) -> OpenClip:
    """The model of `MODEL:WEIGHTS` (the spec after `open_clip:`); one-line InputError
    when open_clip, the architecture or the weights are missing or do not fit."""
    open_clip = import_open_clip()
    model_arg, weights_arg = parse_spec(spec)
    dev = pick_device(device)[0]  # a missing CUDA is said before any model loads
    name, config, preprocess = architecture(open_clip, model_arg)
    weights, tag, tag_cfg = resolve_weights(open_clip, name, weights_arg)
    preprocess = {**{k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode")
                     if k in tag_cfg}, **preprocess}
    quick_gelu = bool(config.get("quick_gelu") or tag_cfg.get("quick_gelu"))
    model, transform, tokenizer = build_model(open_clip, name, config, preprocess, weights,
                                              quick_gelu=quick_gelu)
    size = _square(model.visual.image_size)
    if image_size is not None and image_size != size:
        raise InputError(f"image size {image_size}: open_clip {name} takes {size} px pictures")
    dim = int(config["embed_dim"])
    model.to(dev)
    info = {"open_clip": getattr(open_clip, "__version__", None), "model": name,
            "pretrained": tag, "weights": weights.name, "input_size": size, "dim": dim}
    image = ImageEncoder(module=_ImageSide(model), dim=dim, input_size=size,
                         transform=transform, info=info)
    return OpenClip(name, config, quick_gelu, tag, weights, image,
                    _text_encoder(model, tokenizer, dim, info), info)


def _recorded_weights(open_clip: Any, record: dict[str, Any]) -> Path:
    """The weights file a record names, checked against its sha256; a tag's file is fetched
    again (open_clip's cache) when the recorded path has gone."""
    path, sha, tag = Path(str(record.get("weights"))), record.get("weights_sha256"), \
        record.get("pretrained")
    if not path.is_file() and isinstance(tag, str):
        path = resolve_weights(open_clip, record["model"], tag)[0]
    if not path.is_file():
        raise InputError(f"{path}: the open_clip weights the bundle's text tower was built "
                         "with are missing")
    if file_sha256(path) != sha:
        raise InputError(f"{path}: sha256 differs from the bundle's record: these are not the "
                         "weights its cross-modal rows were made with")
    return path


def load_openclip_text(record: dict[str, Any], *, device: str | None = None) -> TextEncoder:
    """The text encoder of an open_clip record (`OpenClip.record()`), for titles as the
    towers' own text encoder embeds them."""
    name, config = record.get("model"), record.get("model_cfg")
    if not isinstance(name, str) or not isinstance(config, dict) \
            or not isinstance(record.get("weights_sha256"), str):
        raise InputError("the bundle's open_clip record lacks its model, config or weights")
    open_clip = import_open_clip()
    weights = _recorded_weights(open_clip, record)
    model, _, tokenizer = build_model(open_clip, name, config, {}, weights,
                                      quick_gelu=bool(record.get("quick_gelu")))
    model.visual = None  # the text child never sees a picture: free the image tower
    model.to(pick_device(device)[0])
    return _text_encoder(model, tokenizer, int(config["embed_dim"]), {"model": name})
