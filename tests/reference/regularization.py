"""float64 numpy references of gradient clipping and the L1 / L2 penalty gradient
(csrc/train_kernels.cpp, python/neurodivergent/training/regularization.py).

penalty(p) = l1 * sum|p| + 0.5 * l2 * sum p^2;  its gradient l1 * sign(p) + l2 * p (sign(0) = 0).
clip by value: clip(g, lo, hi); clip by norm (torch.nn.utils.clip_grad_norm_): g * min(1, max_norm / (|g| + 1e-6)).
Order: penalties, then clip by value, then clip by norm.
"""
import numpy as np


def penalty(p, l1=0.0, l2=0.0):
    p = np.asarray(p, np.float64)
    return l1 * np.abs(p).sum() + 0.5 * l2 * np.sum(p * p)


def penalty_grad(p, l1=0.0, l2=0.0):
    p = np.asarray(p, np.float64)
    return l1 * np.sign(p) + l2 * p


def clip_value(g, lo, hi):
    return np.clip(np.asarray(g, np.float64), lo, hi)


def clip_norm(g, max_norm):
    g = np.asarray(g, np.float64)
    n = np.sqrt(np.sum(g * g))
    coef = max_norm / (n + 1e-6)
    return g * coef if coef < 1 else g.copy()


def regularize_and_clip(g, p, l1=0.0, l2=0.0, lo_hi=None, max_norm=None):
    g = np.asarray(g, np.float64) + penalty_grad(p, l1, l2)
    if lo_hi is not None:
        g = clip_value(g, *lo_hi)
    if max_norm is not None:
        g = clip_norm(g, max_norm)
    return g
