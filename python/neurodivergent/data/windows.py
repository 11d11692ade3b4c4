"""Lazy window sampling over a CSR-stored panel.

A window is a pair (series s, cutoff t): its input is ``y_s[t - input_size : t]`` and its target
``y_s[t : t + horizon]``. For every series the valid cutoffs form one inclusive range [lo_s, hi_s];
windows are addressed by a flat index k through the cumulative counts, so no window is ever
materialised until a batch gathers it.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


class WindowSampler:
    def __init__(
        self,
        values: np.ndarray,
        offsets: np.ndarray,
        input_size: int,
        horizon: int,
        lo: np.ndarray,
        hi: np.ndarray,
    ):
        self.values = np.asarray(values, dtype=np.float64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.input_size = int(input_size)
        self.horizon = int(horizon)
        lo = np.asarray(lo, dtype=np.int64)
        hi = np.asarray(hi, dtype=np.int64)
        lengths = np.diff(self.offsets)
        if lo.shape != lengths.shape or hi.shape != lengths.shape:
            raise ValueError("lo and hi must have one entry per series")
        if np.any(lo < self.input_size) or np.any((hi >= lo) & (hi + self.horizon > lengths)):
            raise ValueError("cutoff ranges reach outside their series")
        self.lo = lo
        self.counts = np.maximum(hi - lo + 1, 0)
        self.cum = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self._steps = np.arange(-self.input_size, self.horizon, dtype=np.int64)

    @classmethod
    def for_series(
        cls,
        values: np.ndarray,
        offsets: np.ndarray,
        input_size: int,
        horizon: int,
        end: Optional[np.ndarray] = None,
        start: Optional[np.ndarray] = None,
    ) -> "WindowSampler":
        """Windows whose targets lie in ``[start_s, end_s)`` (defaults: whole series)."""
        lengths = np.diff(np.asarray(offsets, dtype=np.int64))
        end = lengths if end is None else np.asarray(end, dtype=np.int64)
        lo = np.full_like(lengths, input_size) if start is None else np.maximum(start, input_size)
        hi = end - horizon
        return cls(values, offsets, input_size, horizon, lo, hi)

    @property
    def n_windows(self) -> int:
        return int(self.cum[-1])

    def __len__(self) -> int:
        return self.n_windows

    def locate(self, k: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Series index and cutoff of flat window indices k."""
        k = np.asarray(k, dtype=np.int64)
        if k.size and (k.min() < 0 or k.max() >= self.n_windows):
            raise IndexError(f"window index out of range [0, {self.n_windows})")
        s = np.searchsorted(self.cum, k, side="right") - 1
        t = self.lo[s] + (k - self.cum[s])
        return s, t

    def gather(self, k: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Input (B, input_size) and target (B, horizon) of windows k, float64."""
        s, t = self.locate(k)
        rows = (self.offsets[s] + t)[:, None] + self._steps[None, :]
        w = self.values[rows]
        return w[:, : self.input_size], w[:, self.input_size :]

    def epoch_order(self, rng: np.random.Generator, shuffle: bool = True) -> np.ndarray:
        n = self.n_windows
        return rng.permutation(n) if shuffle else np.arange(n, dtype=np.int64)
