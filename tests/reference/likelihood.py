"""float64 numpy references of the likelihood kernels (csrc/likelihood.h), written from the formulas.

raw (N, P) network outputs -> parameters (s: per-point scale, 1 when None):
  gaussian           mu = s r0,            sigma = s softplus(r1)
  student_t          mu = s r0,            sigma = s softplus(r1), nu = 2 + softplus(r2)
  negative_binomial  mu = s softplus(r0),  alpha = softplus(r1) / sqrt(s)
NLL = weighted mean over points. The gradients here are analytic; tests prove them with central finite
differences of ``nll_points`` before comparing them with the C++ kernel.
"""
from __future__ import annotations

import math

import numpy as np

N_PARAMS = {"gaussian": 2, "student_t": 3, "negative_binomial": 2}

_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


def softplus(r):
    r = np.asarray(r, np.float64)
    return np.where(r > 0, r + np.log1p(np.exp(-np.abs(r))), np.log1p(np.exp(np.minimum(r, 0.0))))


def sigmoid(r):
    r = np.asarray(r, np.float64)
    e = np.exp(-np.abs(r))
    return np.where(r >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def log_softplus(r):
    r = np.asarray(r, np.float64)
    return np.where(r < -30, r - 0.5 * np.exp(np.minimum(r, 0.0)), np.log(np.maximum(softplus(r), 1e-300)))


def digamma(x):
    """psi(x) for x > 0: recurrence up to 10, then the asymptotic (Bernoulli) series."""
    x = np.array(x, np.float64, copy=True)
    acc = np.zeros_like(x)
    while True:
        small = x < 10.0
        if not small.any():
            break
        acc[small] -= 1.0 / x[small]
        x[small] += 1.0
    f = 1.0 / (x * x)
    t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132)))))
    return acc + np.log(x) - 0.5 / x + t


def params(kind, raw, scale=None):
    raw = np.asarray(raw, np.float64)
    s = np.ones(raw.shape[0]) if scale is None else np.asarray(scale, np.float64)
    if kind == "gaussian":
        return np.stack([s * raw[:, 0], s * softplus(raw[:, 1])], axis=1)
    if kind == "student_t":
        return np.stack([s * raw[:, 0], s * softplus(raw[:, 1]), 2.0 + softplus(raw[:, 2])], axis=1)
    return np.stack([s * softplus(raw[:, 0]), softplus(raw[:, 1]) / np.sqrt(s)], axis=1)


def nll_points(kind, raw, y, scale=None):
    """Per-point negative log-likelihood (N,)."""
    raw = np.asarray(raw, np.float64)
    y = np.asarray(y, np.float64)
    s = np.ones(raw.shape[0]) if scale is None else np.asarray(scale, np.float64)
    p = params(kind, raw, s)
    if kind == "gaussian":
        z = (y - p[:, 0]) / p[:, 1]
        return np.log(s) + log_softplus(raw[:, 1]) + 0.5 * math.log(2 * math.pi) + 0.5 * z * z
    if kind == "student_t":
        nu = p[:, 2]
        z = (y - p[:, 0]) / p[:, 1]
        c = _lgamma((nu + 1) / 2) - _lgamma(nu / 2) - 0.5 * np.log(nu * math.pi)
        return -c + np.log(s) + log_softplus(raw[:, 1]) + (nu + 1) / 2 * np.log1p(z * z / nu)
    mu, alpha = p[:, 0], p[:, 1]
    k = 1.0 / alpha
    am = alpha * mu
    logp = _lgamma(y + k) - _lgamma(k) - _lgamma(y + 1) - k * np.log1p(am)
    logp = logp + np.where(y > 0, y * (np.log(am) - np.log1p(am)), 0.0)
    return -logp


def nll(kind, raw, y, scale=None, weight=None):
    v = nll_points(kind, raw, y, scale)
    if weight is None:
        return float(v.mean())
    w = np.asarray(weight, np.float64)
    W = w.sum()
    return float((w * np.where(w > 0, v, 0.0)).sum() / W) if W > 0 else 0.0


def grad_points(kind, raw, y, scale=None):
    """d nll_i / d raw_i (N, P), analytic."""
    raw = np.asarray(raw, np.float64)
    y = np.asarray(y, np.float64)
    s = np.ones(raw.shape[0]) if scale is None else np.asarray(scale, np.float64)
    g = np.zeros_like(raw)
    if kind in ("gaussian", "student_t"):
        sp1 = softplus(raw[:, 1])
        z = (y - s * raw[:, 0]) / (s * sp1)
        dls = np.where(raw[:, 1] < -30, 1.0 - 0.5 * np.exp(np.minimum(raw[:, 1], 0.0)), sigmoid(raw[:, 1]) / sp1)
        if kind == "gaussian":
            g[:, 0] = -z / sp1
            g[:, 1] = (1 - z * z) * dls
            return g
        nu = 2.0 + softplus(raw[:, 2])
        q = (nu + 1) / (nu + z * z)
        g[:, 0] = -q * z / sp1
        g[:, 1] = (1 - q * z * z) * dls
        dnu = (-0.5 * digamma((nu + 1) / 2) + 0.5 * digamma(nu / 2) + 0.5 / nu + 0.5 * np.log1p(z * z / nu)
               - 0.5 * q * z * z / nu)
        g[:, 2] = dnu * sigmoid(raw[:, 2])
        return g
    sp0 = softplus(raw[:, 0])
    mu = s * sp0
    alpha = softplus(raw[:, 1]) / np.sqrt(s)
    k = 1.0 / alpha
    am = alpha * mu
    g[:, 0] = -(y - mu) / (1 + am) * sigmoid(raw[:, 0]) / sp0
    dk = np.where(y > 0, digamma(y + k) - digamma(k), 0.0) - np.log1p(am) + (mu - y) / (k + mu)
    g[:, 1] = k * k * dk * sigmoid(raw[:, 1]) / np.sqrt(s)
    return g


def grad(kind, raw, y, scale=None, weight=None, grad_scale=1.0):
    g = grad_points(kind, raw, y, scale)
    n = g.shape[0]
    w = np.ones(n) if weight is None else np.asarray(weight, np.float64)
    W = w.sum()
    if W <= 0:
        return np.zeros_like(g)
    return np.where(w[:, None] > 0, g, 0.0) * (w * grad_scale / W)[:, None]


def finite_difference(kind, raw, y, scale=None, eps=1e-6):
    """Central finite differences of nll_points w.r.t. raw, point by point (N, P); relative steps."""
    raw = np.asarray(raw, np.float64)
    g = np.zeros_like(raw)
    for p in range(raw.shape[1]):
        h = eps * np.maximum(1.0, np.abs(raw[:, p]))
        a, b = raw.copy(), raw.copy()
        a[:, p] += h
        b[:, p] -= h
        g[:, p] = (nll_points(kind, a, y, scale) - nll_points(kind, b, y, scale)) / (2 * h)
    return g
