"""Test functions with known optima, usable as objectives of ``optimize`` (module-level, so they also
run in worker processes with ``n_jobs > 1``)."""
from __future__ import annotations

import math
from typing import Any, Dict, Sequence

import numpy as np

from .space import HyperparameterSpace

__all__ = ["branin", "branin_space", "BRANIN_MINIMUM", "zdt1", "zdt1_space", "zdt1_front", "hypervolume_2d"]

BRANIN_MINIMUM = 0.39788735772973816  # at (-pi, 12.275), (pi, 2.275) and (9.42478, 2.475)


def branin_space() -> HyperparameterSpace:
    return HyperparameterSpace().add_continuous("x1", -5.0, 10.0).add_continuous("x2", 0.0, 15.0)


def branin(params: Dict[str, Any]) -> float:
    """The Branin-Hoo function on x1 in [-5, 10], x2 in [0, 15]; global minimum 0.397887."""
    x1, x2 = float(params["x1"]), float(params["x2"])
    b, c, r, s, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


def zdt1_space(n: int = 30) -> HyperparameterSpace:
    space = HyperparameterSpace()
    for i in range(n):
        space = space.add_continuous(f"x{i}", 0.0, 1.0)
    return space


def zdt1(params: Dict[str, Any]):
    """ZDT1 (Zitzler, Deb & Thiele 2000): two objectives to minimise over x_i in [0, 1]; the Pareto front
    is f2 = 1 - sqrt(f1), f1 in [0, 1], reached when x_1 .. x_{n-1} = 0."""
    x = np.array([params[f"x{i}"] for i in range(len(params))], dtype=np.float64)
    f1 = x[0]
    g = 1.0 + 9.0 * x[1:].sum() / (len(x) - 1)
    return float(f1), float(g * (1.0 - math.sqrt(f1 / g)))


def zdt1_front(n_points: int = 1001) -> np.ndarray:
    f1 = np.linspace(0.0, 1.0, n_points)
    return np.stack([f1, 1.0 - np.sqrt(f1)], axis=1)


def hypervolume_2d(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Area dominated by ``points`` (both objectives minimised) and bounded by ``reference``."""
    P = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    rx, ry = float(reference[0]), float(reference[1])
    P = P[(P[:, 0] < rx) & (P[:, 1] < ry)]
    if len(P) == 0:
        return 0.0
    P = P[np.lexsort((P[:, 1], P[:, 0]))]
    area, best_y = 0.0, ry
    for x, y in P:
        if y < best_y:
            # the horizontal strip between y and the best y so far, from x to the reference
            area += (rx - x) * (best_y - y)
            best_y = y
    return float(area)
