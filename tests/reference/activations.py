"""float64 numpy references of csrc/activations.cpp (elementwise, any shape).

gelu is the exact form x * Phi(x) with Phi(x) = 0.5 * erfc(-x / sqrt(2)) (PyTorch's default).
Backward: relu/gelu take x, tanh/sigmoid take y = f(x). relu'(0) = 0.
"""
import math

import numpy as np

KINDS = ("relu", "gelu", "tanh", "sigmoid")

_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _f64(a):
    return np.asarray(a, np.float64)


def relu(x):
    x = _f64(x)
    return np.where(x > 0, x, 0.0)


def relu_backward(dy, x):
    return np.where(_f64(x) > 0, _f64(dy), 0.0)


def _phi(x):
    return 0.5 * _erfc(-x * _SQRT1_2)


def gelu(x):
    x = _f64(x)
    cdf = _phi(x)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(cdf == 0, 0.0, x * cdf)


def gelu_backward(dy, x):
    x = _f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        pdf = np.exp(-0.5 * x * x) * _INV_SQRT_2PI
        return _f64(dy) * (_phi(x) + np.where(pdf == 0, 0.0, x * pdf))


def tanh(x):
    return np.tanh(_f64(x))


def tanh_backward(dy, y):
    y = _f64(y)
    return _f64(dy) * (1.0 - y * y)


def sigmoid(x):
    x = _f64(x)
    e = np.exp(-np.abs(x))
    s = 1.0 / (1.0 + e)
    return np.where(x >= 0, s, e * s)


def sigmoid_backward(dy, y):
    y = _f64(y)
    return _f64(dy) * (y * (1.0 - y))


def forward(kind, x):
    return {"relu": relu, "gelu": gelu, "tanh": tanh, "sigmoid": sigmoid}[kind](x)


def backward(kind, dy, x, y):
    if kind == "relu":
        return relu_backward(dy, x)
    if kind == "gelu":
        return gelu_backward(dy, x)
    if kind == "tanh":
        return tanh_backward(dy, y)
    if kind == "sigmoid":
        return sigmoid_backward(dy, y)
    raise ValueError(kind)
