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
