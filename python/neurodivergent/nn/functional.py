"""Numpy functional API over the C++ kernels (``neurodivergent._core``).

Plain functions that allocate their outputs and can be used without any of our models. Arrays may be
float32 or float64 (all arrays of one call must share the dtype: a mix raises TypeError naming the
argument); integer, bool, float16 or complex arrays raise TypeError; non-contiguous inputs are copied
to C order. Shapes use N rows, I input features, O output features.

Gradient conventions (as the kernels): parameter gradients accumulate (``+=``) into the arrays you
pass, activation gradients are returned fresh.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .._backend import core as _core

__all__ = [
    "LinearGrads",
    "gemm",
    "linear_forward",
    "linear_backward",
    "ACTIVATIONS",
    "activation_forward",
    "activation_backward",
    "relu",
    "gelu",
    "tanh",
    "sigmoid",
    "relu_backward",
    "gelu_backward",
    "tanh_backward",
    "sigmoid_backward",
    "LOSSES",
    "loss_forward",
    "loss_backward",
    "mse_loss",
    "mse_loss_backward",
    "mae_loss",
    "mae_loss_backward",
    "huber_loss",
    "huber_loss_backward",
    "adam_step",
    "sum_squares",
    "scale_inplace",
]

ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid")
LOSSES = ("mse", "mae", "huber")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# ----------------------------------------------------------------------------------- coercion helpers
def _input(x, name: str) -> np.ndarray:
    """A C-contiguous float32/float64 array (copied only when needed)."""
    a = np.asarray(x)
    if a.dtype not in _FLOATS:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a)


def _inputs(**arrays) -> tuple:
    """Coerce several arrays; None passes through; all non-None must share the first one's dtype."""
    out = []
    first_name, first = None, None
    for name, x in arrays.items():
        if x is None:
            out.append(None)
            continue
        a = _input(x, name)
        if first is None:
            first_name, first = name, a
        elif a.dtype != first.dtype:
            raise TypeError(
                f"{name} has dtype {a.dtype} but {first_name} has dtype {first.dtype}; "
                "all arrays must share one dtype (float32 or float64)"
            )
        out.append(a)
    return tuple(out)


def _kind(kind, valid, what: str) -> str:
    if not isinstance(kind, str):
        raise TypeError(f"{what} kind must be a str, got {type(kind).__name__}")
    if kind not in valid:
        raise ValueError(f"unknown {what} kind {kind!r}; valid: {', '.join(map(repr, valid))}")
    return kind


# ----------------------------------------------------------------------------------- gemm / linear
def gemm(a, b, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0, beta: float = 0.0, c=None):
    """C (M,N) = alpha * op(a) @ op(b) + beta * C, row-major; op(a) is a (M,K) or a.T for a stored (K,M).

    With ``c=None`` a new array is returned (beta then multiplies zeros). With ``c`` given (C-contiguous,
    writable, same dtype) the result is written into it and it is returned.
    """
    a, b = _inputs(a=a, b=b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"a and b must be 2-D, got shapes {a.shape} and {b.shape}")
    m = a.shape[1] if trans_a else a.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    if c is None:
        c = np.zeros((m, n), a.dtype) if beta != 0 else np.empty((m, n), a.dtype)
    _core.gemm(a, b, c, bool(trans_a), bool(trans_b), float(alpha), float(beta))
    return c


def linear_forward(x, w, b=None) -> np.ndarray:
    """y (N,O) = x (N,I) @ w.T + b, with w (O,I) in PyTorch layout and b (O,) or None."""
    x, w, b = _inputs(x=x, w=w, b=b)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (N, I), got shape {x.shape}")
    if w.ndim != 2:
        raise ValueError(f"w must be 2-D (O, I), got shape {w.shape}")
    y = np.empty((x.shape[0], w.shape[0]), x.dtype)
    _core.linear_forward(y, x, w, b)
    return y


class LinearGrads(NamedTuple):
    """Gradients of y = x @ w.T + b: dx (N,I) or None, dw (O,I), db (O,) or None."""

    dx: Optional[np.ndarray]
    dw: np.ndarray
    db: Optional[np.ndarray]


def linear_backward(dy, x, w, *, need_dx: bool = True, has_bias: bool = True, dw=None, db=None) -> LinearGrads:
    """Backward of y = x @ w.T + b for dy (N,O), x (N,I), w (O,I).

    dx = dy @ w (fresh array, or None when ``need_dx`` is false); dw += dy.T @ x; db += dy.sum(0).
    ``dw`` / ``db`` given (C-contiguous, writable, same dtype) are accumulated into in place; otherwise
    fresh zeros are accumulated into. ``db`` is None when ``has_bias`` is false and no ``db`` is given.
    """
    dy, x, w = _inputs(dy=dy, x=x, w=w)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (N, I), got shape {x.shape}")
    if w.ndim != 2:
        raise ValueError(f"w must be 2-D (O, I), got shape {w.shape}")
    if dw is None:
        dw = np.zeros(w.shape, x.dtype)
    if db is None and has_bias:
        db = np.zeros((w.shape[0],), x.dtype)
    dx = np.empty(x.shape, x.dtype) if need_dx else None
    _core.linear_backward(dx, dw, db, dy, x, w)
    return LinearGrads(dx, dw, db)


# ----------------------------------------------------------------------------------- activations
def activation_forward(kind: str, x) -> np.ndarray:
    """y = f(x), elementwise, any shape. kind: 'relu', 'gelu' (exact form x * Phi(x) = 0.5 x erfc(-x/sqrt2),
    not the tanh approximation; float32 evaluates Phi with a vectorised exp times polynomial, within 4 ulps),
    'tanh', 'sigmoid' (1 / (1 + exp(-x)), computed without overflow)."""
    _kind(kind, ACTIVATIONS, "activation")
    (x,) = _inputs(x=x)
    y = np.empty_like(x)
    _core.activation_forward(kind, y, x)
    return y


def activation_backward(kind: str, dy, x=None, y=None) -> np.ndarray:
    """dx = dy * f'(.), elementwise. relu (f' = [x > 0], so relu'(0) = 0) and gelu (Phi(x) + x phi(x))
    need x; tanh (1 - y^2) and sigmoid (y (1 - y)) need y = f(x)."""
    _kind(kind, ACTIVATIONS, "activation")
    dy, x, y = _inputs(dy=dy, x=x, y=y)
    dx = np.empty_like(dy)
    _core.activation_backward(kind, dx, dy, x, y)
    return dx


def relu(x) -> np.ndarray:
    """max(x, 0) (NaN stays NaN)."""
    return activation_forward("relu", x)


def gelu(x) -> np.ndarray:
    """x * Phi(x), the exact (erf) GELU."""
    return activation_forward("gelu", x)


def tanh(x) -> np.ndarray:
    """tanh(x)."""
    return activation_forward("tanh", x)


def sigmoid(x) -> np.ndarray:
    """1 / (1 + exp(-x)), finite for any x."""
    return activation_forward("sigmoid", x)


def relu_backward(dy, x) -> np.ndarray:
    """dy * [x > 0]."""
    return activation_backward("relu", dy, x=x)


def gelu_backward(dy, x) -> np.ndarray:
    """dy * (Phi(x) + x phi(x))."""
    return activation_backward("gelu", dy, x=x)


def tanh_backward(dy, y) -> np.ndarray:
    """dy * (1 - y^2) where y = tanh(x)."""
    return activation_backward("tanh", dy, y=y)


def sigmoid_backward(dy, y) -> np.ndarray:
    """dy * y * (1 - y) where y = sigmoid(x)."""
    return activation_backward("sigmoid", dy, y=y)


# ----------------------------------------------------------------------------------- losses
def loss_forward(kind: str, pred, target, weight=None, delta: float = 1.0) -> float:
    """sum(w * l(pred - target)) / sum(w), accumulated in double; the plain mean when weight is None.

    pred, target and weight share one shape. Weights must be finite and >= 0 (ValueError otherwise);
    elements with weight 0 are excluded entirely (NaN there is ignored), so a weight can be a mask;
    sum(w) == 0 gives 0.0. l: mse r^2, mae |r|, huber 0.5 r^2 if |r| < delta else delta (|r| - delta/2).
    """
    _kind(kind, LOSSES, "loss")
    pred, target, weight = _inputs(pred=pred, target=target, weight=weight)
    return float(_core.loss_forward(kind, pred, target, weight, float(delta)))


def loss_backward(kind: str, pred, target, weight=None, delta: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """dpred = scale * d(loss)/d(pred) = scale * w * l'(r) / sum(w) (1/n without weights).

    l': mse 2r, mae sign(r) with 0 at r == 0, huber clip(r, -delta, delta). Zero when sum(w) == 0.
    """
    _kind(kind, LOSSES, "loss")
    pred, target, weight = _inputs(pred=pred, target=target, weight=weight)
    dpred = np.empty_like(pred)
    _core.loss_backward(kind, dpred, pred, target, weight, float(delta), float(scale))
    return dpred


def mse_loss(pred, target, weight=None) -> float:
    """mean of w (pred - target)^2 (weighted mean when weight is given)."""
    return loss_forward("mse", pred, target, weight)


def mse_loss_backward(pred, target, weight=None, scale: float = 1.0) -> np.ndarray:
    """scale * 2 w (pred - target) / sum(w)."""
    return loss_backward("mse", pred, target, weight, 1.0, scale)


def mae_loss(pred, target, weight=None) -> float:
    """mean of w |pred - target| (weighted mean when weight is given)."""
    return loss_forward("mae", pred, target, weight)


def mae_loss_backward(pred, target, weight=None, scale: float = 1.0) -> np.ndarray:
    """scale * w sign(pred - target) / sum(w); the gradient at pred == target is 0."""
    return loss_backward("mae", pred, target, weight, 1.0, scale)


def huber_loss(pred, target, weight=None, delta: float = 1.0) -> float:
    """mean of w huber_delta(pred - target), PyTorch's HuberLoss (delta > 0)."""
    return loss_forward("huber", pred, target, weight, delta)


def huber_loss_backward(pred, target, weight=None, delta: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """scale * w clip(pred - target, -delta, delta) / sum(w)."""
    return loss_backward("huber", pred, target, weight, delta, scale)


# ----------------------------------------------------------------------------------- optimizer
def _inplace(a, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray (it is updated in place), got {type(a).__name__}")
    if a.dtype not in _FLOATS:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (it is updated in place)")
    return a


def adam_step(param, grad, m, v, step: int, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
              eps: float = 1e-8, weight_decay: float = 0.0, decoupled: bool = False) -> None:
    """One Adam (decoupled=False) or AdamW (decoupled=True) step in place, exactly torch.optim.Adam/AdamW:

        g = grad + wd * param                  (weight_decay != 0 and not decoupled)
        param *= 1 - lr * wd                   (decoupled)
        m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
        param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)

    param, m, v: C-contiguous arrays of one shape (updated in place); grad: same shape; step >= 1.
    """
    param = _inplace(param, "param")
    m = _inplace(m, "m")
    v = _inplace(v, "v")
    (grad,) = _inputs(grad=grad)
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        if a.dtype != param.dtype:
            raise TypeError(f"{name} has dtype {a.dtype} but param has dtype {param.dtype}; all arrays must share one dtype")
        if a.shape != param.shape:
            raise ValueError(f"{name} must have the same shape as param {param.shape}, got {a.shape}")
    _core.adam_step(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), step, lr, beta1, beta2,
                    eps, weight_decay, bool(decoupled))


def sum_squares(x) -> float:
    """sum(x**2) accumulated in double (bitwise identical for any thread count)."""
    (x,) = _inputs(x=x)
    return float(_core.sum_squares(x))


def scale_inplace(x, s: float) -> None:
    """x *= s in place (x: C-contiguous float32/float64 array)."""
    _core.scale_inplace(_inplace(x, "x"), s)


# Recurrent kernels live in their own modules and are re-exported here.
from .functional_gru import *  # noqa: E402,F401,F403
from .functional_gru import __all__ as _gru_all  # noqa: E402
from .functional_lstm import *  # noqa: E402,F401,F403
from .functional_lstm import __all__ as _lstm_all  # noqa: E402
from .functional_attention import *  # noqa: E402,F401,F403
from .functional_attention import __all__ as _attention_all  # noqa: E402
from .functional_likelihood import *  # noqa: E402,F401,F403
from .functional_likelihood import __all__ as _likelihood_all  # noqa: E402
from ._buffers import release_buffers  # noqa: E402,F401

__all__ = list(__all__) + ["release_buffers"] + list(_lstm_all) + list(_gru_all) + list(_attention_all) + list(_likelihood_all)
