"""Large output arrays of the recurrent kernels, kept between calls (``take``) and handed out again once
nobody references them; ``release_buffers()`` lets them go.

Why: a fresh array of a few MiB or more costs more to obtain than a kernel spends writing it. numpy maps
arrays of 4 MiB and more with transparent huge pages, which the OS zeroes (2 MiB at a time) on first
touch, and below glibc's mmap threshold ``np.zeros`` memsets recycled heap memory. At B = 256, H = 64
that was 25-35% of a GRU forward call (bench/RESULTS.md, "GRU fourth pass"). A training loop asks for the
same shapes every step, so reusing them removes the cost.

Safety: the pool's list holds each array's byte buffer ``raw``; every array handed out is a view of it,
and every numpy view keeps its base alive. An entry is free exactly when the pool's list is its only
owner, i.e. when ``sys.getrefcount`` of the entry equals that of an array referenced by a list alone
(calibrated at import). So an array a caller still holds (an earlier call's ``y``, a cache, a view of
either, a gradient) is never written again; the tests hold views and check that their contents survive.

Bounds: arrays under ``min_bytes`` (1 MiB) are not pooled (malloc recycles most of those cheaply), except with
``take(..., small=True)`` from ``small_bytes`` (128 KiB, glibc's initial mmap threshold) on: then the array is the
front of a pooled ``min_bytes`` buffer of its kind (one slot serves every shape of that kind). Fresh arrays of a
few hundred KiB were not recycled cheaply in a training step's pattern of allocations: the LSTM forward's y and
cell at B=32 T=96 H=64 (768 KiB each) paid page faults on every call (20-24% of the forward), the Transformer's
GELU(z) / GELU'(z) ~2 ms of a 19 ms step (bench/RESULTS.md, seventh session). The pool holds
at most ``max_bytes`` (2 GiB): to make room it first drops free entries, beyond that fresh arrays are
simply not kept. The training loop empties the pool at the end of every run (training/trainer.py), so a
finished ``fit`` keeps no memory; ``neurodivergent.nn.functional.release_buffers()`` does it by hand.
"""
from __future__ import annotations

import math
import sys
import threading
from typing import Dict, List, Tuple

import numpy as np

__all__ = ["release_buffers"]


def aligned(shape: tuple, dtype, zero: bool) -> Tuple[np.ndarray, int, np.ndarray]:
    """(raw, off, a): a fresh array ``a`` of ``shape`` starting on a 64-byte boundary (whole cache lines per
    SIMD tile), the view raw[off:] of the byte array ``raw`` (its .base)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = (np.zeros if zero else np.empty)(nbytes + 64, np.uint8)
    off = -raw.ctypes.data % 64
    return raw, off, raw[off:off + nbytes].view(dtype).reshape(shape)


def _refcount(holder: list, i: int) -> int:
    return sys.getrefcount(holder[i])


class BufferPool:
    """See the module docstring."""

    def __init__(self, min_bytes: int, max_bytes: int, small_bytes: int = 128 << 10) -> None:
        self.min_bytes, self.max_bytes, self.small_bytes = min_bytes, max_bytes, small_bytes
        self.slots: Dict[tuple, List[np.ndarray]] = {}  # (kind, shape, dtype) -> raw byte arrays
        self.offs: Dict[tuple, List[int]] = {}  # the same keys -> where the aligned array starts in each
        self.held = 0
        self.lock = threading.Lock()  # the check "free" and the hand-out are one step for concurrent callers
        probe = [np.empty(1)]
        self.free_count = _refcount(probe, 0)  # the count of an array referenced by a pool list only

    def _is_free(self, raws: list, i: int) -> bool:
        return _refcount(raws, i) == self.free_count

    def take(self, kind: str, shape: tuple, dtype, zero: bool = False, align: bool = False,
             small: bool = False) -> np.ndarray:
        """An array of ``shape`` to be overwritten (zeros when ``zero`` and fresh; a reused one holds what
        its last user wrote). Pooled arrays start on a 64-byte boundary, unpooled ones when ``align``.
        ``small``: pooled from ``small_bytes`` on instead of ``min_bytes`` (see the module docstring)."""
        dtype = np.dtype(dtype)
        n = math.prod(shape)
        nbytes = n * dtype.itemsize
        if small and self.small_bytes <= nbytes < self.min_bytes:
            m = -(-self.min_bytes // dtype.itemsize)
            return self.take(kind + ".small", (m,), dtype, zero)[:n].reshape(shape)
        if nbytes < self.min_bytes or not hasattr(sys, "getrefcount"):
            if align:
                return aligned(shape, dtype, zero)[2]
            return (np.zeros if zero else np.empty)(shape, dtype)
        key = (kind, tuple(shape), dtype.str)
        with self.lock:
            raws = self.slots.setdefault(key, [])
            for i in range(len(raws)):
                if self._is_free(raws, i):
                    off = self.offs[key][i]
                    return raws[i][off:off + nbytes].view(dtype).reshape(shape)
            need = nbytes + 64
            if self.held + need > self.max_bytes:
                self._drop_free(self.held + need - self.max_bytes)
            raw, off, a = aligned(shape, dtype, zero)
            if self.held + need <= self.max_bytes:
                self.slots.setdefault(key, []).append(raw)
                self.offs.setdefault(key, []).append(off)
                self.held += need
            return a

    def _drop_free(self, want: int) -> None:
        for key in list(self.slots):
            raws, offs = self.slots[key], self.offs[key]
            i = 0
            while i < len(raws) and want > 0:
                if self._is_free(raws, i):
                    n = raws[i].nbytes
                    del raws[i], offs[i]
                    self.held -= n
                    want -= n
                else:
                    i += 1
            if not raws:
                del self.slots[key], self.offs[key]

    def release(self) -> None:
        with self.lock:
            self.slots.clear()
            self.offs.clear()
            self.held = 0


POOL = BufferPool(min_bytes=1 << 20, max_bytes=2 << 30)


def release_buffers() -> None:
    """Let go of the arrays the recurrent kernels (``lstm_forward`` / ``lstm_backward``, ``gru_forward`` /
    ``gru_backward``) keep for reuse between calls (up to 2 GiB; see :mod:`neurodivergent.nn._buffers`).
    Their memory returns once no earlier result references it; results already returned stay valid."""
    POOL.release()
