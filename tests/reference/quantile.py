"""float64 numpy reference of the quantile (pinball) loss kernel (csrc/losses.cpp, train_kernels.h).

pred has shape target.shape + (Q,); weight None or target's shape; tau (Q,) levels, qw (Q,) weights.
  r = target[..., None] - pred,  rho_tau(r) = max(tau r, (tau - 1) r)
  loss  = sum(w * qw * rho) / (sum(w) * sum(qw))          (w = 1 without weights; 0 when sum(w) == 0)
  dpred = scale * w * qw * g / (sum(w) * sum(qw)),  g = -tau (r > 0), 1 - tau (r < 0), 0 (r == 0)
Points with w == 0 are excluded entirely.
"""
import numpy as np


def _f64(a):
    return np.asarray(a, np.float64)


def pinball(r, tau):
    return np.maximum(tau * r, (tau - 1.0) * r)


def pinball_dpred(r, tau):
    return np.where(r > 0, -tau, np.where(r < 0, 1.0 - tau, 0.0))


def _weights(target, weight):
    t = _f64(target)
    return np.ones_like(t) if weight is None else _f64(weight)


def forward(pred, target, weight=None, tau=(0.5,), qw=None):
    p, t = _f64(pred), _f64(target)
    tau = _f64(tau)
    qw = np.ones_like(tau) if qw is None else _f64(qw)
    w = _weights(t, weight)
    if t.size == 0 or w.sum() == 0:
        return 0.0
    keep = w != 0
    r = t[keep][..., None] - p[keep]
    return float(np.sum((w[keep] / w.sum())[..., None] * (qw / qw.sum()) * pinball(r, tau)))


def backward(pred, target, weight=None, tau=(0.5,), qw=None, scale=1.0):
    p, t = _f64(pred), _f64(target)
    tau = _f64(tau)
    qw = np.ones_like(tau) if qw is None else _f64(qw)
    w = _weights(t, weight)
    out = np.zeros_like(p)
    if t.size == 0 or w.sum() == 0:
        return out
    keep = w != 0
    r = t[keep][..., None] - p[keep]
    out[keep] = (w[keep] / w.sum())[..., None] * ((qw / qw.sum()) * scale * pinball_dpred(r, tau))
    return out
