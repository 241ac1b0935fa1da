"""The training loop shared by image and text: epochs over folds 2-4 with a margin loss,
selection on fold 1 after every epoch, `last.pt` (resume) and `best.pt` (the selected
model, in the format `precompute build` loads).

Seeds are fixed per epoch (seed + epoch for torch and the shuffle), and the learning rate
and margin are functions of the global step and epoch, so a resumed run continues the
same schedule. CUDA runs with float16 autocast and a gradient scaler; CPU in float32."""

from __future__ import annotations

import importlib.metadata
import logging
import math
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from precompute.checkpoints import save_checkpoint
from precompute.errors import InputError, is_out_of_memory
from precompute.training.schedule import lr_factor, margin_at, set_lr
from precompute.training.selection import Selection

log = logging.getLogger(__name__)

STATE_FORMAT = "shopee-explorer-train-state/1"
LAST, BEST = "last.pt", "best.pt"


class Task(Protocol):
    """What the loop needs from a modality. `model` holds every trained parameter
    (backbone, fc/bn head, margin layer `model.margin_fn`)."""

    model: nn.Module
    n_train: int
    skipped: int  # train inputs that could not be read, this epoch

    def param_groups(self, lr: float, head_lr_mult: float) -> list[dict[str, Any]]: ...
    def batches(self, epoch: int, batch_size: int, seed: int
                ) -> Iterator[tuple[Any, torch.Tensor]]: ...
    def loss(self, inputs: Any, labels: torch.Tensor) -> torch.Tensor: ...
    def validate(self) -> Selection: ...
    def save_best(self, path: Path, meta: dict[str, Any]) -> None: ...
    def identity(self) -> dict[str, Any]: ...


@dataclass
class LoopConfig:
    out: Path
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-4
    head_lr_mult: float = 10.0
    weight_decay: float = 1e-4
    warmup: float = 0.1  # fraction of all steps
    loss: str = "arcface"
    margin: float = 0.5
    margin_start: float | None = None
    margin_ramp_epochs: int = 0
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: bool = False
    progress: bool = True
    resume: bool = False
    validate_untrained: bool = True
    max_minutes: float | None = None  # no epoch is started that would end past this

    def record(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"], d["device"] = str(self.out), str(self.device)
        return d


def versions() -> dict[str, str]:
    out = {}
    for dist in ("torch", "timm", "transformers", "sentence-transformers", "shopee-explorer"):
        with suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def _autocast(cfg: LoopConfig) -> AbstractContextManager:
    if cfg.amp and cfg.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


def oom_error(cfg: LoopConfig) -> InputError:
    half = max(1, cfg.batch_size // 2)
    return InputError(f"out of memory on {cfg.device} at batch size {cfg.batch_size}; "
                      f"try --batch {half}")


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    # the last partial batch is dropped when it has one row (BatchNorm needs two)
    full, rest = divmod(n_train, batch_size)
    return full + (rest >= 2)


def _load_state(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: cannot be read to resume ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise InputError(f"{path}: not a training state ({STATE_FORMAT})")
    differs = sorted(k for k, v in identity.items() if state["identity"].get(k) != v)
    if differs:
        k = differs[0]
        raise InputError(f"{path}: was trained with {k}={state['identity'].get(k)!r}, not "
                         f"{identity[k]!r}; use another --out to start afresh")
    return state


def fit(task: Task, cfg: LoopConfig) -> dict[str, Any]:
    """Train, select on fold 1, and return the run's summary (history, best epoch)."""
    started = time.perf_counter()
    cfg.out.mkdir(parents=True, exist_ok=True)
    last_path, best_path = cfg.out / LAST, cfg.out / BEST
    model = task.model.to(cfg.device)
    groups = task.param_groups(cfg.lr, cfg.head_lr_mult)
    for g in groups:
        g["base_lr"] = g["lr"]
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and cfg.device.type == "cuda")
    per_epoch = steps_per_epoch(task.n_train, cfg.batch_size)
    total = per_epoch * cfg.epochs
    warmup = math.ceil(cfg.warmup * total)
    identity = task.identity() | {"loss": cfg.loss, "batch_size": cfg.batch_size,
                                  "seed": cfg.seed}
    start_epoch, step = 0, 0
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    if last_path.exists():
        if not cfg.resume:
            raise InputError(f"{last_path}: a run is already there; pass --resume to continue "
                             "it, or choose another --out")
        state = _load_state(last_path, identity)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, step = int(state["epoch"]), int(state["step"])
        history, best = list(state["history"]), state["best"]
        log.info("resuming after epoch %d (step %d)", start_epoch, step)
    elif cfg.validate_untrained:
        model.eval()
        t1 = time.perf_counter()
        sel = task.validate()
        history.append({"epoch": 0, "valid_f1": sel.f1, "threshold": sel.threshold,
                        "valid_s": round(time.perf_counter() - t1, 2)})
        log.info("untrained: fold-1 F1 %.4f at threshold %.3f", sel.f1, sel.threshold)
    stopped = None
    for epoch in range(start_epoch, cfg.epochs):
        stopped = _over_budget(history, cfg.max_minutes)
        if stopped:
            log.info("stopping before epoch %d: %s", epoch + 1, stopped)
            break
        margin = margin_at(epoch, cfg.margin, cfg.margin_start, cfg.margin_ramp_epochs)
        model.margin_fn.margin = margin
        torch.manual_seed(cfg.seed + epoch)
        model.train()
        task.skipped = 0
        loss_sum, seen, t0 = 0.0, 0, time.perf_counter()
        bar = tqdm(total=task.n_train, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="sample",
                   disable=not cfg.progress)
        with bar:
            for inputs, labels in task.batches(epoch, cfg.batch_size, cfg.seed):
                set_lr(optimizer, lr_factor(step, total, warmup))
                try:
                    with _autocast(cfg):
                        loss = task.loss(inputs, labels.to(cfg.device))
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                except (RuntimeError, MemoryError) as exc:
                    if is_out_of_memory(exc):
                        raise oom_error(cfg) from None
                    raise
                optimizer.zero_grad(set_to_none=True)
                step += 1
                n = len(labels)
                loss_sum += float(loss.detach()) * n
                seen += n
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                bar.update(n)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", samples_s=f"{rate:.1f}")
        train_s = time.perf_counter() - t0
        model.eval()
        t1 = time.perf_counter()
        sel = task.validate()
        row = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1), "margin": margin,
               "lr_last": optimizer.param_groups[0]["lr"], "samples": seen,
               "train_s": round(train_s, 2), "samples_per_s": round(seen / train_s, 2),
               "valid_s": round(time.perf_counter() - t1, 2), "skipped": task.skipped,
               "valid_f1": sel.f1, "threshold": sel.threshold, "step": step}
        history.append(row)
        log.info("epoch %d: loss %.4f, %.1f samples/s, fold-1 F1 %.4f (threshold %.3f)",
                 epoch + 1, row["loss"], row["samples_per_s"], sel.f1, sel.threshold)
        if task.skipped:
            log.warning("epoch %d: %d unreadable train inputs skipped", epoch + 1, task.skipped)
        if best is None or sel.f1 > best["valid_f1"]:
            best = {"epoch": epoch + 1, "valid_f1": sel.f1, "threshold": sel.threshold}
            task.save_best(best_path, {"epoch": epoch + 1, "valid_f1": sel.f1,
                                       "valid_threshold": sel.threshold, "margin": margin,
                                       "versions": versions(), "train": cfg.record()})
        save_checkpoint({"format": STATE_FORMAT, "identity": identity, "epoch": epoch + 1,
                         "step": step, "model": model.state_dict(),
                         "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                         "history": history, "best": best}, last_path)
    return {"history": history, "best": best, "out": str(cfg.out), "steps": step,
            "steps_total": total, "wall_s": round(time.perf_counter() - started, 1),
            "stopped": stopped}


def _over_budget(history: list[dict[str, Any]], max_minutes: float | None) -> str | None:
    """Why the next epoch is not started: the time spent so far (train + validation of
    the epochs in `history`, a resumed run's included) plus the last epoch's time would
    pass `max_minutes`."""
    epochs = [h for h in history if h["epoch"] > 0]
    if max_minutes is None or not epochs:
        return None
    spent = sum(h.get("train_s", 0.0) + h.get("valid_s", 0.0) for h in history)
    last = epochs[-1]["train_s"] + epochs[-1]["valid_s"]
    if spent + last <= max_minutes * 60:
        return None
    return (f"{spent / 60:.1f} min spent, an epoch takes {last / 60:.1f} min, the limit is "
            f"{max_minutes:g} min")
