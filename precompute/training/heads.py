"""Margin layers (ArcFace, CurricularFace) over L2-normalised embeddings and class centres.

Both return scaled logits for cross-entropy. The margin is a plain attribute so that a
schedule can ramp it over epochs (the competition winner did)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LOSSES = ("arcface", "curricular")


class _MarginLayer(nn.Module):
    """Class centres `weight` (n_classes, dim); cosines of normalised rows."""

    def __init__(self, dim: int, n_classes: int, scale: float = 30.0,
                 margin: float = 0.5) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError("a margin loss needs at least 2 classes")
        self.weight = nn.Parameter(torch.empty(n_classes, dim))
        nn.init.xavier_uniform_(self.weight)
        self.scale = float(scale)
        self.margin = float(margin)

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        # float32 even under autocast: cos near +-1 loses the margin in float16
        return F.linear(F.normalize(x.float()), F.normalize(self.weight.float())).clamp(-1, 1)

    def _target_terms(self, cos_t: torch.Tensor) -> torch.Tensor:
        """cos(theta + m), and past theta = pi - m (where it would stop decreasing) the
        usual linear fallback cos(theta) - m sin(m)."""
        m = self.margin
        sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp(min=0.0))
        phi = cos_t * math.cos(m) - sin_t * math.sin(m)
        return torch.where(cos_t > math.cos(math.pi - m), phi, cos_t - math.sin(math.pi - m) * m)


class ArcFace(_MarginLayer):
    """Deng et al. 2019: logit of the true class s·cos(theta + m), others s·cos(theta)."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(x)
        target = self._target_terms(cos.gather(1, labels[:, None]))
        return self.scale * cos.scatter(1, labels[:, None], target)


class CurricularFace(_MarginLayer):
    """Huang et al. 2020: the true class as ArcFace; a negative class harder than the
    margined target (cos_j > cos(theta_y + m)) gets cos_j (t + cos_j), where t is a running
    mean of the target cosine (momentum 0.01), so hard negatives weigh more as training
    goes on."""

    def __init__(self, dim: int, n_classes: int, scale: float = 30.0,
                 margin: float = 0.5) -> None:
        super().__init__(dim, n_classes, scale, margin)
        self.register_buffer("t", torch.zeros(1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(x)
        cos_y = cos.gather(1, labels[:, None])
        sin_y = torch.sqrt((1.0 - cos_y * cos_y).clamp(min=0.0))
        cos_ym = cos_y * math.cos(self.margin) - sin_y * math.sin(self.margin)
        target = self._target_terms(cos_y)
        if self.training:
            with torch.no_grad():
                self.t.mul_(0.99).add_(0.01 * cos_y.mean())
        hard = cos > cos_ym
        cos = torch.where(hard, cos * (self.t + cos), cos)
        return self.scale * cos.scatter(1, labels[:, None], target)


def margin_layer(loss: str, dim: int, n_classes: int, scale: float,
                 margin: float) -> _MarginLayer:
    if loss == "arcface":
        return ArcFace(dim, n_classes, scale, margin)
    if loss == "curricular":
        return CurricularFace(dim, n_classes, scale, margin)
    raise ValueError(f"unknown loss {loss!r} (expected one of {', '.join(LOSSES)})")


class EmbeddingHead(nn.Module):
    """fc + BatchNorm1d to the embedding size (the study's training head)."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, dim)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x))
