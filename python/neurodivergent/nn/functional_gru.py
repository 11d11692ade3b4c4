"""GRU kernels as numpy functions (see neurodivergent.nn.functional).

One GRU layer over a whole sequence, PyTorch's ``torch.nn.GRU`` formulas, gate order and weight layout
(weights are interchangeable with ``weight_ih_l0`` / ``weight_hh_l0`` / ``bias_ih_l0`` / ``bias_hh_l0``)::

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Shapes: B batch, T steps, I input features, H hidden units, G = 3H (rows r, z, n):
x (B, T, I), w_ih (G, I), w_hh (G, H), b_ih (G,), b_hh (G,), h0 (B, H), y (B, T, H).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .._backend import core as _core
from ._buffers import POOL as _POOL  # reused output arrays (nn/_buffers.py)

__all__ = ["GRUCache", "GRUOutput", "GRUGrads", "gru_forward", "gru_backward", "gru_cache_gates"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class GRUCache(NamedTuple):
    """What gru_backward needs: the inputs (references, not copies) and the forward's activations.

    gates (B, T, 32 * ceil(H / 8)) holds, per step, r, z, n and W_hn h_{t-1} + b_hn in blocks of 8 units
    ([r(8) z(8) n(8) hn(8)]; see ``gru_cache_gates``). y is the same array as the forward's ``y``: do not
    modify either in place before the backward pass.
    """

    x: np.ndarray
    w_ih: np.ndarray
    w_hh: np.ndarray
    h0: Optional[np.ndarray]
    y: np.ndarray
    gates: np.ndarray


class GRUOutput(NamedTuple):
    """y (B, T, H): h_t for every step; h (B, H): the final state (a copy of y[:, -1]); the cache."""

    y: np.ndarray
    h: np.ndarray
    cache: GRUCache


class GRUGrads(NamedTuple):
    """dx (B, T, I) or None (need_dx=False), dh0 (B, H), dw_ih (G, I), dw_hh (G, H), db_ih (G,), db_hh (G,)."""

    dx: Optional[np.ndarray]
    dh0: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db_ih: np.ndarray
    db_hh: np.ndarray


def _inputs(**arrays) -> tuple:
    # Same coercion as nn.functional._inputs (imported lazily there to avoid an import cycle).
    from .functional import _inputs as coerce

    return coerce(**arrays)


def _need_ndim(a: np.ndarray, name: str, ndim: int, dims: str) -> None:
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {dims}, got shape {a.shape}")


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0=None, *, naive: bool = False) -> GRUOutput:
    """One GRU layer over the sequence x (B, T, I), from h0 (B, H) (zeros when None).

    Returns GRUOutput(y (B, T, H), h (B, H), cache). float32 or float64 (one dtype for all arrays; a mix
    raises TypeError naming the argument); wrong shapes raise ValueError naming the argument. B, T, I and
    H must be at least 1. ``naive=True`` runs the plain-loop reference kernel (tests, benchmarks).

    Cost: one (B*T, I) x (I, 3H) GEMM, then T steps of a (B, H) x (H, 3H) product with the gate
    non-linearities fused (threads split the batch).
    """
    x, w_ih, w_hh, b_ih, b_hh, h0 = _inputs(x=x, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, h0=h0)
    if b_ih is None or b_hh is None:
        raise TypeError(f"{'b_ih' if b_ih is None else 'b_hh'} must be an array of shape (3H,), got None")
    _need_ndim(x, "x", 3, "(B, T, I)")
    _need_ndim(w_hh, "w_hh", 2, "(3H, H)")
    B, T, _ = x.shape
    H = w_hh.shape[1]
    y = _POOL.take("gru.y", (B, T, H), x.dtype)
    # the fast kernels write the padding units of the cache (H % 8 != 0) too, the naive one leaves them:
    # fresh arrays then start from zeros (finite values, as gru.h requires)
    gates = _POOL.take("gru.gates", (B, T, _core.gru_cache_width(max(H, 1))), x.dtype,  # H < 1: rejected below
                       zero=H % 8 != 0, align=True)
    _core.gru_forward(y, gates, x, w_ih, w_hh, b_ih, b_hh, h0, bool(naive))
    return GRUOutput(y, y[:, -1].copy(), GRUCache(x, w_ih, w_hh, h0, y, gates))



def gru_cache_gates(cache: GRUCache) -> np.ndarray:
    """The cached activations as an array (B, T, 4, H): r, z, n and W_hn h_{t-1} + b_hn per step."""
    g = cache.gates
    B, T, cw = g.shape
    H = cache.w_hh.shape[1]
    return g.reshape(B, T, cw // 32, 4, 8).transpose(0, 1, 3, 2, 4).reshape(B, T, 4, -1)[..., :H]


def _accumulator(a, name: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A parameter-gradient array to accumulate into: fresh zeros, or the caller's array used in place."""
    if a is None:
        return np.zeros(shape, dtype)
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray (it is accumulated into in place), got {type(a).__name__}")
    if a.dtype not in _FLOATS:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but the forward pass ran in {dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (it is accumulated into in place)")
    if not a.flags.writeable:
        raise ValueError(f"{name} is read-only; it is accumulated into in place")
    return a


def gru_backward(cache: GRUCache, dy, dh=None, *, need_dx: bool = True, dw_ih=None, dw_hh=None, db_ih=None,
                 db_hh=None, naive: bool = False) -> GRUGrads:
    """Backward of gru_forward.

    dy (B, T, H): gradient w.r.t. every y_t, or None (no gradient through the per-step outputs, e.g. an
    encoder read only through its final state). dh (B, H): gradient w.r.t. the final state h, added to
    what flows from dy[:, -1]; None means zero.

    Returns GRUGrads: dx (B, T, I) (None when ``need_dx`` is false: the dx GEMM is skipped), dh0 (B, H)
    (fresh arrays), and the parameter gradients, which are ACCUMULATED (+=) into ``dw_ih`` (3H, I),
    ``dw_hh`` (3H, H), ``db_ih`` (3H,), ``db_hh`` (3H,) when given (C-contiguous, writable, the forward's
    dtype, e.g. views into a flat gradient buffer), else into fresh zeros. Calling backward twice with
    the same arguments doubles the parameter gradients and returns the same dx / dh0.
    """
    if not isinstance(cache, GRUCache):
        raise TypeError(f"cache must be the GRUCache of gru_forward's result, got {type(cache).__name__}")
    x, w_ih, w_hh, h0, y, gates = cache
    x, dy, dh = _inputs(x=x, dy=dy, dh=dh)
    if dy is not None:
        _need_ndim(dy, "dy", 3, "(B, T, H)")
    if dh is not None:
        _need_ndim(dh, "dh", 2, "(B, H)")
    B, T, I = x.shape
    G, H = w_hh.shape
    dt = x.dtype
    dw_ih = _accumulator(dw_ih, "dw_ih", (G, I), dt)
    dw_hh = _accumulator(dw_hh, "dw_hh", (G, H), dt)
    db_ih = _accumulator(db_ih, "db_ih", (G,), dt)
    db_hh = _accumulator(db_hh, "db_hh", (G,), dt)
    dx = _POOL.take("gru.dx", (B, T, I), dt) if need_dx else None
    dh0 = np.empty((B, H), dt)
    _core.gru_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dy, dh, x, w_ih, w_hh, h0, y, gates, bool(naive))
    return GRUGrads(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)
