"""float64 numpy references of csrc/losses.cpp (any shape).

loss = sum(w * l(r)) / sum(w), r = pred - target (plain mean when weight is None); 0 when sum(w) == 0.
Elements with w == 0 are excluded entirely. dpred = scale * w * l'(r) / sum(w).
  mse   l = r^2                                       l' = 2r
  mae   l = |r|                                       l' = sign(r) (0 at r == 0)
  huber l = 0.5 r^2 if |r| < delta else delta (|r| - delta / 2)    l' = clip(r, -delta, delta)
"""
import numpy as np

KINDS = ("mse", "mae", "huber")


def _f64(a):
    return np.asarray(a, np.float64)


def pointwise(kind, r, delta=1.0):
    a = np.abs(r)
    if kind == "mse":
        return r * r
    if kind == "mae":
        return a
    if kind == "huber":
        return np.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta))
    raise ValueError(kind)


def pointwise_grad(kind, r, delta=1.0):
    if kind == "mse":
        return 2.0 * r
    if kind == "mae":
        return np.sign(r)
    if kind == "huber":
        return np.where(np.abs(r) < delta, r, delta * np.sign(r))
    raise ValueError(kind)


def forward(kind, pred, target, weight=None, delta=1.0):
    r = _f64(pred) - _f64(target)
    if r.size == 0:
        return 0.0
    if weight is None:
        return float(np.mean(pointwise(kind, r, delta)))
    w = _f64(weight)
    sw = w.sum()
    if sw == 0:
        return 0.0
    keep = w != 0
    return float(np.sum(w[keep] * pointwise(kind, r[keep], delta)) / sw)


def backward(kind, pred, target, weight=None, delta=1.0, scale=1.0):
    r = _f64(pred) - _f64(target)
    if weight is None:
        return scale * pointwise_grad(kind, r, delta) / max(r.size, 1)
    w = _f64(weight)
    sw = w.sum()
    out = np.zeros_like(r)
    if sw == 0:
        return out
    keep = w != 0
    out[keep] = (w[keep] / sw) * (scale * pointwise_grad(kind, r[keep], delta))  # w/sw <= 1: no under/overflow
    return out
