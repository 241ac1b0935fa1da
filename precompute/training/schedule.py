"""Learning rate (linear warm-up, then cosine decay) and margin ramp, both pure functions
of the global step / epoch so that a resumed run continues exactly where it stopped."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, total: int, warmup: int, floor: float = 0.01) -> float:
    """Multiplier of the base rate at optimiser step `step` (0-based) of `total`: rises
    linearly over `warmup` steps to 1, then decays by a half cosine to `floor`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Each group's rate = its `base_lr` (set when the optimiser is built) x factor."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def margin_at(epoch: int, margin: float, start: float | None, ramp_epochs: int) -> float:
    """Margin used in epoch `epoch` (0-based): from `start` up to `margin` linearly over
    `ramp_epochs` epochs, then `margin`; no ramp when start is None or ramp_epochs <= 0."""
    if start is None or ramp_epochs <= 0 or epoch >= ramp_epochs:
        return margin
    return start + (margin - start) * epoch / ramp_epochs
