"""Ray actors that fail on purpose (tests/test_ray_build.py): a shard that raises, and a
worker process that dies. Shipped to the actors by value (cloudpickle), since the
workers cannot import the tests folder."""

from __future__ import annotations

import os

import numpy as np

from precompute.ray_embed import Embedder

BAD_ROW = 150


class FailingShard(Embedder):
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if BAD_ROW in batch["row"]:
            raise ValueError(f"shard holding row {BAD_ROW} is broken")
        return super().__call__(batch)


class DyingWorker(Embedder):
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if BAD_ROW in batch["row"]:
            os._exit(3)  # the worker process vanishes mid-shard
        return super().__call__(batch)
