"""Coarse ops over the C++ kernels, each a forward that (when a tape is given) records its backward.

Parameters live in a :class:`~neurodivergent.nn.params.ParameterBuffer`; an op names the tensors it
uses. With ``tape=None`` an op runs inference only and records nothing.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .._backend import core as _core
from .params import ParameterBuffer
from .tape import Tape, Var

ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid")


def _wrap(tape: Optional[Tape], x: np.ndarray) -> Var:
    return tape.var(x) if tape is not None else Var(x, -1)


def linear(tape: Optional[Tape], pb: ParameterBuffer, x: Var, w: str, b: Optional[str]) -> Var:
    """y = x @ W.T + b for x (N, I), W (O, I), b (O,)."""
    W = pb[w]
    B = pb[b] if b is not None else None
    xd = x.data
    y = np.empty((xd.shape[0], W.shape[0]), dtype=xd.dtype)
    _core.linear_forward(y, xd, W, B)
    out = _wrap(tape, y)
    if tape is not None:
        dW = pb.grad_of(w)
        dB = pb.grad_of(b) if b is not None else None

        def backward(dy: np.ndarray):
            dx = np.empty_like(xd)
            _core.linear_backward(dx, dW, dB, dy, xd, W)
            return (dx,)

        tape.record(out, (x,), backward)
    return out


def activation(tape: Optional[Tape], kind: str, x: Var) -> Var:
    xd = x.data
    y = np.empty_like(xd)
    _core.activation_forward(kind, y, xd)
    out = _wrap(tape, y)
    if tape is not None:

        def backward(dy: np.ndarray):
            dx = np.empty_like(dy)
            _core.activation_backward(kind, dx, dy, xd, y)
            return (dx,)

        tape.record(out, (x,), backward)
    return out


def dropout(tape: Optional[Tape], x: Var, p: float, rng: Optional[np.random.Generator]) -> Var:
    """Inverted dropout: in training (a tape and an rng given) zero each value with probability p and
    scale the rest by 1/(1-p); identity at inference."""
    if tape is None or rng is None or p <= 0.0:
        return x
    keep = (rng.random(x.data.shape) >= p).astype(x.data.dtype) / np.asarray(1.0 - p, dtype=x.data.dtype)
    out = tape.var(x.data * keep)
    tape.record(out, (x,), lambda dy: (dy * keep,))
    return out


def reshape(tape: Optional[Tape], x: Var, shape) -> Var:
    """x viewed with another shape (C-order, contiguous); the gradient is reshaped back."""
    out = _wrap(tape, np.ascontiguousarray(x.data).reshape(shape))
    if tape is not None:
        src = x.data.shape
        tape.record(out, (x,), lambda g: (np.ascontiguousarray(g).reshape(src),))
    return out


def swap_last_axes(tape: Optional[Tape], x: Var) -> Var:
    """(A, B, C) -> (A, C, B), contiguous; the gradient is swapped back."""
    out = _wrap(tape, np.ascontiguousarray(x.data.transpose(0, 2, 1)))
    if tape is not None:
        tape.record(out, (x,), lambda g: (np.ascontiguousarray(g.transpose(0, 2, 1)),))
    return out


def batch_norm(tape: Optional[Tape], pb: ParameterBuffer, x: Var, w: str, b: str, running_mean: np.ndarray,
               running_var: np.ndarray, momentum: float = 0.1, eps: float = 1e-5) -> Var:
    """Batch normalisation over the rows of x (N, C), as ``torch.nn.BatchNorm1d``.

    Training (a tape given): normalise with the batch mean and biased variance, then ``gamma * xhat +
    beta`` (parameters ``w``, ``b``); update the running statistics in place with
    ``running = (1 - momentum) * running + momentum * batch`` (the unbiased variance; skipped for a batch
    of one row, whose variance is undefined: that row normalises to 0 and passes no gradient to x).
    Inference (no tape): normalise with the running statistics. Statistics in float64; numpy, not C++."""
    gamma, beta = pb[w], pb[b]
    xd = x.data
    if tape is None:
        inv = 1.0 / np.sqrt(running_var + eps)
        y = ((xd - running_mean) * (inv * gamma) + beta).astype(xd.dtype, copy=False)
        return Var(np.ascontiguousarray(y), -1)
    n = xd.shape[0]
    x64 = xd.astype(np.float64)
    mean = x64.mean(axis=0)
    xc = x64 - mean
    var = (xc * xc).mean(axis=0)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = xc * inv
    y = np.ascontiguousarray((xhat * gamma + beta).astype(xd.dtype))
    if n > 1:
        running_mean *= 1.0 - momentum
        running_mean += momentum * mean
        running_var *= 1.0 - momentum
        running_var += momentum * var * (n / (n - 1))
    out = tape.var(y)
    dgamma, dbeta = pb.grad_of(w), pb.grad_of(b)

    def backward(dy: np.ndarray):
        dy64 = dy.astype(np.float64)
        dgamma[...] += (dy64 * xhat).sum(axis=0).astype(dgamma.dtype)
        dbeta[...] += dy64.sum(axis=0).astype(dbeta.dtype)
        dxhat = dy64 * gamma
        dx = (inv / n) * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
        return (np.ascontiguousarray(dx.astype(xd.dtype)),)

    tape.record(out, (x,), backward)
    return out
