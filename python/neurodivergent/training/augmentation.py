"""Data augmentation of training windows (off by default; ``TrainingConfig.with_data_augmentation(True)``).

Each training window is first normalised by its input's statistics (the model's ``scaler``). Because the
per-window scalers are scale-invariant, multiplying a raw window by a constant would change nothing the
model sees; the augmentation therefore works on the **normalised** window, where it does:

* **random scaling**: the input and the target of a window are multiplied together by one factor drawn
  uniformly from ``[1 - scale_range, 1 + scale_range]`` (default [0.9, 1.1]): amplitude variation;
* **jitter**: Gaussian noise with standard deviation ``jitter`` (default 0.01) is added to the input only.
  In the raw units of a window this is ``jitter`` times the window's scale (its standard deviation for
  the ``standard`` scaler), i.e. noise relative to the window's own scale.

Validation windows and forecasts are never augmented. The draws come from their own random stream,
seeded by ``TrainingConfig.seed``, so runs stay bitwise repeatable and switching augmentation on leaves
initialisation, shuffling and dropout unchanged.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .._config import cfg_field, config_class, fraction, nonneg_float


@config_class
class DataAugmentation:
    """Random scaling and jitter of training windows (see the module docstring)."""

    scale_range: float = cfg_field(0.1, fraction, "Windows are scaled by a factor in [1 - r, 1 + r].")
    jitter: float = cfg_field(0.01, nonneg_float, "Std of the Gaussian noise added to the normalised input.")

    def apply(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """Augmented copies of normalised inputs ``x`` (B, L) and targets ``y`` (B, h)."""
        b = x.shape[0]
        if self.scale_range > 0:
            f = rng.uniform(1.0 - self.scale_range, 1.0 + self.scale_range, size=(b, 1)).astype(x.dtype)
            x = x * f
            y = y * f
        if self.jitter > 0:
            x = x + (self.jitter * rng.standard_normal(x.shape)).astype(x.dtype)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)


__all__ = ["DataAugmentation"]
