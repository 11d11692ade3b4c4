"""LSTM kernels as numpy functions (see neurodivergent.nn.functional).

One LSTM layer over a whole sequence, PyTorch / cuDNN conventions (weights interchangeable with
``torch.nn.LSTM``'s ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``). Shapes use B batch,
T steps, I input features, H hidden units and G = 4H gates in the order i, f, g, o::

    i, f, g, o = sig, sig, tanh, sig  of  x_t @ w_ih.T + b_ih + h_{t-1} @ w_hh.T + b_hh
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)          y[:, t] = h_t

Multi-layer stacks are built by feeding one layer's ``y`` to the next layer's ``x``.
Gradient conventions (as every kernel): parameter gradients accumulate (``+=``) into the arrays you pass
(fresh zeros otherwise), activation gradients (dx, dh0, dc0) are returned fresh.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .._backend import core as _core
from ._buffers import POOL as _POOL

__all__ = ["LSTMCache", "LSTMOutput", "LSTMGrads", "lstm_forward", "lstm_backward"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

def _coerce(x, name: str, dtype=None, first: str = "x") -> Optional[np.ndarray]:
    """A C-contiguous float32/float64 array (copied only when needed); None passes through."""
    if x is None:
        return None
    a = np.asarray(x)
    if a.dtype not in _FLOATS:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("="))
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but {first} has dtype {dtype}; all arrays must share one dtype "
                        "(float32 or float64)")
    return np.ascontiguousarray(a)


def _grad_buffer(a, name: str, shape, dtype, first: str = "x") -> np.ndarray:
    """A caller-provided gradient array to accumulate into in place, or fresh zeros."""
    if a is None:
        return np.zeros(shape, dtype)
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray (it is accumulated into in place), got {type(a).__name__}")
    if a.dtype not in _FLOATS:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but {first} has dtype {dtype}; all arrays must share one dtype")
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (it is accumulated into in place)")
    if not a.flags.writeable:
        raise ValueError(f"{name} is read-only; it is accumulated into in place")
    return a


class LSTMCache(NamedTuple):
    """What ``lstm_backward`` needs: the inputs, weights and initial states of the forward call, its
    output ``y`` (B,T,H), the activated gates (B,T,4H) (i, f, g, o) and the cell states (B,T,H).

    ``y`` is the array returned as ``LSTMOutput.y`` (not a copy): do not modify it in place before the
    backward pass."""

    x: np.ndarray
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray
    h0: Optional[np.ndarray]
    c0: Optional[np.ndarray]
    y: np.ndarray
    gates: np.ndarray
    cell: np.ndarray


class LSTMOutput(NamedTuple):
    """y (B,T,H) all hidden states; h (B,H) and c (B,H) the final states; cache for the backward."""

    y: np.ndarray
    h: np.ndarray
    c: np.ndarray
    cache: LSTMCache


class LSTMGrads(NamedTuple):
    """dx (B,T,I) or None, dh0 (B,H), dc0 (B,H), dw_ih (4H,I), dw_hh (4H,H), db_ih (4H,), db_hh (4H,)."""

    dx: Optional[np.ndarray]
    dh0: np.ndarray
    dc0: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db_ih: np.ndarray
    db_hh: np.ndarray


def lstm_forward(x, w_ih, w_hh, b_ih, b_hh, h0=None, c0=None, *, naive: bool = False) -> LSTMOutput:
    """One LSTM layer over a sequence.

    x (B,T,I); w_ih (4H,I); w_hh (4H,H); b_ih, b_hh (4H,); h0, c0 (B,H) or None (zeros).
    Returns ``LSTMOutput(y (B,T,H), h (B,H), c (B,H), cache)``. float32 or float64 (one dtype for all);
    ``naive=True`` runs the scalar reference kernel (for tests and benchmarks).
    """
    x = _coerce(x, "x")
    if x is None:
        raise TypeError("x must be an array, got None")
    dt = x.dtype
    w_ih, w_hh, b_ih, b_hh = (_coerce(a, n, dt) for a, n in ((w_ih, "w_ih"), (w_hh, "w_hh"), (b_ih, "b_ih"),
                                                             (b_hh, "b_hh")))
    for a, n in ((w_ih, "w_ih"), (w_hh, "w_hh"), (b_ih, "b_ih"), (b_hh, "b_hh")):
        if a is None:
            raise TypeError(f"{n} must be an array, got None")
    h0, c0 = _coerce(h0, "h0", dt), _coerce(c0, "c0", dt)
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D (B, T, I), got shape {x.shape}")
    if w_hh.ndim != 2:
        raise ValueError(f"w_hh must be 2-D (4*H, H), got shape {w_hh.shape}")
    B, T = x.shape[0], x.shape[1]
    H = w_hh.shape[1]
    # reused between calls once unreferenced (nn/_buffers.py: saves the OS's page zeroing; small=True: arrays from
    # 128 KiB up); every element is written by the kernel
    y = _POOL.take("lstm.y", (B, T, H), dt, small=True)
    gates = _POOL.take("lstm.gates", (B, T, 4 * H), dt, small=True)
    cell = _POOL.take("lstm.cell", (B, T, H), dt, small=True)
    _core.lstm_forward(y, gates, cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0, bool(naive))
    cache = LSTMCache(x, w_ih, w_hh, b_ih, b_hh, h0, c0, y, gates, cell)
    return LSTMOutput(y, y[:, -1].copy(), cell[:, -1].copy(), cache)


def lstm_backward(cache: LSTMCache, dy, dh=None, dc=None, *, need_dx: bool = True, dw_ih=None, dw_hh=None,
                  db_ih=None, db_hh=None, naive: bool = False) -> LSTMGrads:
    """Backward of ``lstm_forward``.

    dy (B,T,H): gradient w.r.t. every step's output, or None (no gradient through ``y``, e.g. an encoder
    whose only consumer is its final state); dh, dc (B,H): gradients w.r.t. the FINAL h and c, or None.
    They add up (the last step's h receives dy[:, -1] + dh).

    Returns ``LSTMGrads``: dx (B,T,I) (None when ``need_dx`` is false: the dx GEMM is skipped), dh0 and
    dc0 (B,H) (gradients w.r.t. h0 and c0, also when those were None, i.e. zeros), and the parameter
    gradients. ``dw_ih``, ``dw_hh``, ``db_ih``, ``db_hh`` given (C-contiguous, writable, right shape and
    dtype, e.g. views into a flat gradient buffer) are accumulated into in place and returned; otherwise
    fresh zeros are accumulated into. Calling backward twice on one cache accumulates twice.
    """
    if not isinstance(cache, LSTMCache):
        raise TypeError(f"cache must be the LSTMCache of lstm_forward's output, got {type(cache).__name__}")
    x = cache.x
    dt = x.dtype
    B, T, I = x.shape
    H = cache.w_hh.shape[1]
    G = 4 * H
    dy, dh, dc = _coerce(dy, "dy", dt), _coerce(dh, "dh", dt), _coerce(dc, "dc", dt)
    dw_ih = _grad_buffer(dw_ih, "dw_ih", (G, I), dt)
    dw_hh = _grad_buffer(dw_hh, "dw_hh", (G, H), dt)
    db_ih = _grad_buffer(db_ih, "db_ih", (G,), dt)
    db_hh = _grad_buffer(db_hh, "db_hh", (G,), dt)
    dx = _POOL.take("lstm.dx", (B, T, I), dt) if need_dx else None
    dh0 = np.empty((B, H), dt)
    dc0 = np.empty((B, H), dt)
    _core.lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, dh, dc, x, cache.w_ih, cache.w_hh, cache.h0,
                        cache.c0, cache.y, cache.gates, cache.cell, bool(naive))
    return LSTMGrads(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)
