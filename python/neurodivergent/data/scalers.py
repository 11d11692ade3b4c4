"""Per-window scalers. Statistics come from the INPUT part of each window only (never the target), so
no information leaks from the future; the same statistics scale the target and un-scale forecasts.

============  =================================  =========================================
name          location                           scale
============  =================================  =========================================
identity      0                                  1
standard      mean of the input window           standard deviation (population)
robust        median of the input window         median absolute deviation from the median
minmax        minimum of the input window        max - min
============  =================================  =========================================

A scale that is zero or tiny (below ``1e-8 * max(1, |location|)``, e.g. a constant window) is replaced
by 1, so constant windows neither divide by zero nor blow up their targets.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

SCALERS = ("identity", "standard", "robust", "minmax")


def window_stats(x: np.ndarray, kind: str) -> Tuple[np.ndarray, np.ndarray]:
    """Location and scale, each (B, 1) float64, of the rows of ``x`` (B, L)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (windows, steps), got shape {x.shape}")
    b = x.shape[0]
    if kind == "identity":
        return np.zeros((b, 1)), np.ones((b, 1))
    if kind == "standard":
        loc = x.mean(axis=1, keepdims=True)
        scale = x.std(axis=1, keepdims=True)
    elif kind == "robust":
        loc = np.median(x, axis=1, keepdims=True)
        scale = np.median(np.abs(x - loc), axis=1, keepdims=True)
    elif kind == "minmax":
        loc = x.min(axis=1, keepdims=True)
        scale = x.max(axis=1, keepdims=True) - loc
    else:
        raise ValueError(f"unknown scaler {kind!r}; choose one of {', '.join(SCALERS)}")
    tiny = 1e-8 * np.maximum(1.0, np.abs(loc))
    scale = np.where(scale > tiny, scale, 1.0)
    return loc, scale


def scale(x: np.ndarray, loc: np.ndarray, sc: np.ndarray, dtype=np.float32) -> np.ndarray:
    return ((np.asarray(x, dtype=np.float64) - loc) / sc).astype(dtype, copy=False)


def unscale(z: np.ndarray, loc: np.ndarray, sc: np.ndarray) -> np.ndarray:
    return np.asarray(z, dtype=np.float64) * sc + loc
