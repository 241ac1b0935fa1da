"""Where encoders write their rows: an array given by the caller (a memory-mapped `.npy`
in the bundle's temporary folder) instead of one they allocate and hold."""

from __future__ import annotations

import numpy as np


def check_sink(out: np.ndarray, n: int, dim: int) -> np.ndarray:
    """`out`, when it can take (n, dim) float32 rows written in place."""
    if out.shape != (n, dim) or out.dtype != np.float32 or not out.flags.writeable:
        raise ValueError(f"output array is {out.dtype}{list(out.shape)}, expected a writable "
                         f"float32[{n}, {dim}]")
    return out
