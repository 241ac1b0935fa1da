"""Image fine-tuning: a timm backbone in the study's embedding net (pool, fc, BatchNorm;
`image_encoders.ImageHead`) and a margin layer. The selected model is written with
`save_image_checkpoint` (`shopee-explorer-image/1`), which `precompute build --image
NAME:CKPT` loads with its input size and preprocessing.

Images are resized whole to a square (no centre crop, as the study did); training adds a
random horizontal flip. An unreadable image is skipped and counted, never fatal."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from torch import nn

from precompute.errors import InputError
from precompute.image_encoders import (
    ALIASES,
    FORMAT,
    PACKAGED,
    ImageEncoder,
    ImageFiles,
    ImageHead,
    encode_images,
    eval_transform,
    feature_channels,
    head_state,
    load_hub,
    load_packaged,
    packaged_weights,
    read_checkpoint,
    save_image_checkpoint,
    usable_cpus,
)
from precompute.images import image_paths
from precompute.training.data import TrainSplit
from precompute.training.heads import margin_layer
from precompute.training.selection import Selection, tuned_f1

SQUASH = {"crop_pct": 1.0, "crop_mode": "squash"}


class ImageNet(nn.Module):
    """`embedder` (backbone, pooling, fc, bn: what the checkpoint holds) + `margin_fn`."""

    def __init__(self, embedder: ImageHead, margin_fn: nn.Module) -> None:
        super().__init__()
        self.embedder, self.margin_fn = embedder, margin_fn


def _load_start(head: ImageHead, name: str, pretrained: str | None) -> str:
    """Load the starting weights into `head`; returns what they were, for the record."""
    if pretrained is None:
        return "random init"
    if pretrained == "hub":
        source = load_hub(name)
    elif ALIASES.get(pretrained, pretrained) == name and name in PACKAGED:
        weights = packaged_weights(name)
        if weights is None:
            raise InputError(f"--pretrained {pretrained}: the package {PACKAGED[name]} is not "
                             "installed")
        source = load_packaged(name, weights)
    else:
        path = Path(pretrained).expanduser()
        obj = read_checkpoint(path)
        if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
            if obj.get("arch") != name:
                raise InputError(f"{path}: a checkpoint of {obj.get('arch')!r}, not {name!r}")
            state = head_state(path, obj.get("state_dict"))
            if state["fc.weight"].shape != head.fc.weight.shape:
                raise InputError(f"{path}: fc is {list(state['fc.weight'].shape)}, --fc-dim "
                                 f"asks for {list(head.fc.weight.shape)}")
            head.load_state_dict(state)
            return f"checkpoint {path.name}"
        state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
        if not isinstance(state, Mapping):
            raise InputError(f"{path}: not a state dict of tensors")
        source_state = {k.removeprefix("module.").removeprefix("backbone."): v
                        for k, v in state.items()}
        return _load_backbone_state(head, path.name, source_state)
    return _load_backbone_state(head, pretrained, source.state_dict())


def _load_backbone_state(head: ImageHead, what: str, state: Mapping[str, Any]) -> str:
    want = head.backbone.state_dict()
    keep = {k: v for k, v in state.items() if k in want}
    missing = sorted(set(want) - set(keep))
    if missing:
        raise InputError(f"{what}: does not fit the backbone: {len(missing)} missing keys "
                         f"({', '.join(missing[:2])}, ...)")
    for k, v in keep.items():
        if not isinstance(v, torch.Tensor) or v.shape != want[k].shape:
            raise InputError(f"{what}: {k} does not fit the backbone")
    head.backbone.load_state_dict(keep)
    return f"pretrained {what}"


@dataclass
class ImageTask:
    split: TrainSplit
    arch: str
    model: ImageNet
    paths: list[Path | None]  # None: no usable image name (skipped like a bad file)
    size: int
    transform: Any
    preprocessing: dict[str, Any]
    start: str
    loss_name: str
    scale: float
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: bool = False
    workers: int = 0
    valid_batch: int = 64
    progress: bool = False
    skipped: int = 0
    bad_rows: set[int] = field(default_factory=set)

    @property
    def n_train(self) -> int:
        return len(self.split.train_rows)

    @property
    def skipped_total(self) -> int:
        return len(self.bad_rows)

    def param_groups(self, lr: float, head_lr_mult: float) -> list[dict[str, Any]]:
        e = self.model.embedder
        head = [*e.fc.parameters(), *e.bn.parameters(), *self.model.margin_fn.parameters()]
        return [{"params": list(e.backbone.parameters()), "lr": lr},
                {"params": head, "lr": lr * head_lr_mult}]

    def batches(self, epoch: int, batch_size: int, seed: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng(seed + epoch)
        order = rng.permutation(self.n_train)
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        files = ImageFiles([self.paths[r] for r in self.split.train_rows], self.transform,
                           self.size)
        loader = torch.utils.data.DataLoader(files, batch_sampler=batches,
                                             num_workers=self.workers,
                                             pin_memory=self.device.type == "cuda")
        flips = torch.Generator().manual_seed(seed + epoch)
        for pos, x, ok, reasons in loader:
            for i in np.flatnonzero(~ok.numpy()):
                row = int(self.split.train_rows[int(pos[i])])
                self.skipped += 1
                if row not in self.bad_rows:
                    self.bad_rows.add(row)
                    print(f"skipped unreadable image: row {row}: {self.paths[row]} "
                          f"({reasons[i]})")
            if int(ok.sum()) < 2:  # BatchNorm needs two rows
                continue
            x, pos = x[ok], pos[ok]
            flip = torch.rand(len(x), generator=flips) < 0.5
            x[flip] = x[flip].flip(-1)
            yield x, torch.from_numpy(self.split.train_labels[pos.numpy()])

    def loss(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = inputs.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        logits = self.model.margin_fn(self.model.embedder(x), labels)
        return nn.functional.cross_entropy(logits, labels)

    def encoder(self) -> ImageEncoder:
        return ImageEncoder(module=self.model.embedder, dim=self.model.embedder.fc.out_features,
                            input_size=self.size, transform=self.transform, info={})

    def embed(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(unit embeddings, present) of table rows, as `precompute build` computes them."""
        out = encode_images(self.encoder(), [self.paths[r] for r in rows],
                            batch_size=self.valid_batch, workers=self.workers,
                            device=self.device, amp=self.amp, progress=self.progress)
        return out.emb, out.present

    def validate(self) -> Selection:
        emb, present = self.embed(self.split.valid_rows)
        return tuned_f1(emb, self.split.valid_groups, present=present)

    def identity(self) -> dict[str, Any]:
        return {"kind": "image", "arch": self.arch, "input_size": self.size,
                "fc_dim": self.model.embedder.fc.out_features,
                "n_classes": self.split.n_classes, "data_sha256": self.split.sha256}

    def save_best(self, path: Path, meta: dict[str, Any]) -> None:
        save_image_checkpoint(path, self.model.embedder, arch=self.arch, input_size=self.size,
                              mean=self.preprocessing["mean"], std=self.preprocessing["std"],
                              loss=self.loss_name, scale=self.scale, start=self.start,
                              data_sha256=self.split.sha256,
                              **{k: self.preprocessing.get(k) for k in
                                 ("crop_pct", "crop_mode", "interpolation")}, **meta)


def image_task(split: TrainSplit, images: Path, model_name: str, *,
               pretrained: str | None = None, loss: str = "arcface", margin: float = 0.5,
               scale: float = 30.0, fc_dim: int = 512, size: int | None = None,
               device: torch.device | None = None, amp: bool = False,
               workers: int | None = None, progress: bool = False) -> ImageTask:
    images = Path(images)
    if not images.is_dir():
        raise InputError(f"{images}: image folder not found")
    name = ALIASES.get(model_name, model_name)
    if not timm.is_model(name):
        raise InputError(f"{model_name}: not a timm model (see timm.list_models())")
    if size is not None and size <= 0:
        raise InputError(f"--size {size}: not a positive pixel size")
    backbone = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
    in_features = feature_channels(backbone)
    head = ImageHead(backbone, in_features, fc_dim)
    start = _load_start(head, name, pretrained)
    size = size or int(timm.data.resolve_data_config({}, model=backbone)["input_size"][-1])
    transform, cfg = eval_transform(backbone, size, SQUASH)
    net = ImageNet(head, margin_layer(loss, fc_dim, split.n_classes, scale, margin))
    paths = image_paths(images, split.data.table["image"]).paths  # None: outside the folder
    return ImageTask(split, name, net, paths, size, transform,
                     {k: cfg.get(k) for k in ("mean", "std", "crop_pct", "crop_mode",
                                              "interpolation")},
                     start, loss, scale, device or torch.device("cpu"), amp,
                     workers=min(4, usable_cpus()) if workers is None else workers,
                     progress=progress)
