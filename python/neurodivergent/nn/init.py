"""Seeded parameter initialisation (PyTorch's defaults, so behaviour matches users' expectations)."""
from __future__ import annotations

import math

import numpy as np


def linear_init(rng: np.random.Generator, w: np.ndarray, b: np.ndarray | None) -> None:
    """torch.nn.Linear's default: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    (kaiming_uniform with a = sqrt(5) reduces to this bound for W)."""
    fan_in = w.shape[1]
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    w[...] = rng.uniform(-bound, bound, size=w.shape)
    if b is not None:
        b[...] = rng.uniform(-bound, bound, size=b.shape)


def uniform(rng: np.random.Generator, a: np.ndarray, bound: float) -> None:
    a[...] = rng.uniform(-bound, bound, size=a.shape)
