"""float64 numpy reference of csrc/norm.cpp (layer normalisation over the last dimension, biased variance).

Shapes: x (N,C), weight / bias (C,).
"""
import numpy as np


def forward(x, weight=None, bias=None, eps=1e-5):
    """Returns (y, cache); cache = (xhat, rstd, weight)."""
    x = np.asarray(x, np.float64)
    C = x.shape[-1]
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    b = np.zeros(C) if bias is None else np.asarray(bias, np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * rstd
    return xhat * w + b, (xhat, rstd, w)


def backward(cache, dy):
    """Returns (dx, dweight, dbias)."""
    xhat, rstd, w = cache
    dy = np.asarray(dy, np.float64)
    g = dy * w
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    axes = tuple(range(dy.ndim - 1))
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)
