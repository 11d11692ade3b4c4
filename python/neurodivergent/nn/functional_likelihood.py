"""Likelihood kernels as numpy functions (see neurodivergent.nn.functional).

A probabilistic model emits, per point, ``P`` raw (unconstrained) values; a likelihood maps them to the
parameters of a distribution, with an optional per-point ``scale`` s (1 when None; ``softplus(r) =
log(1 + e^r)``):

=====================  =========================  ===========================================  ===
likelihood             location                   shape                                        P
=====================  =========================  ===========================================  ===
``gaussian``           mu = s r0                  sigma = s softplus(r1)                       2
``student_t``          mu = s r0                  sigma = s softplus(r1), nu = 2 + softplus(r2)  3
``negative_binomial``  mu = s softplus(r0)        alpha = softplus(r1) / sqrt(s)               2
=====================  =========================  ===========================================  ===

so every parameter is valid for any raw value (sigma > 0, nu > 2 so the variance exists, mu >= 0 and
alpha > 0 for counts). The negative binomial has mean mu and variance mu + alpha mu^2; its scaling is the
DeepAR paper's. The NLL is the weighted mean over points, ``sum_i w_i nll_i / sum_i w_i`` (plain mean
without weights; weight-0 points are left out, all-zero weights give 0). Negative-binomial targets must be
non-negative integers: anything else raises ``ValueError`` naming the first offending index.

Sampling is repeatable: point i of a call draws from its own random stream derived from ``(seed, i)``,
so the same seed gives the same draws whatever the thread count.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .._backend import core as _core

__all__ = ["LIKELIHOODS", "likelihood_n_params", "nll_forward", "nll_backward", "nll_value_and_grad",
           "likelihood_params", "likelihood_sample", "digamma"]

LIKELIHOODS = ("gaussian", "student_t", "negative_binomial")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _kind(kind) -> str:
    k = getattr(kind, "kind", kind)  # a Likelihood member carries its kernel name
    if not isinstance(k, str) or k not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)} (or a Likelihood), got {kind!r}")
    return k


def _arr(x, name: str, dtype=None) -> Optional[np.ndarray]:
    if x is None:
        return None
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    if dtype is None:
        dtype = a.dtype if a.dtype in _FLOATS else np.dtype(np.float64)
    return np.ascontiguousarray(a, dtype=dtype)


def likelihood_n_params(kind) -> int:
    """Raw values per point: 2 (gaussian, negative_binomial) or 3 (student_t)."""
    return 3 if _kind(kind) == "student_t" else 2


def _prep(kind, raw, y, scale, weight):
    k = _kind(kind)
    r = _arr(raw, "raw")
    p = likelihood_n_params(k)
    if r.ndim == 1 and r.shape[0] == p:
        r = r.reshape(1, p)
    if r.ndim != 2 or r.shape[1] != p:
        raise ValueError(f"raw must have shape (N, {p}) for the {k} likelihood, got {r.shape}")
    n = r.shape[0]
    yy = _arr(y, "y", r.dtype).reshape(-1)
    if yy.shape != (n,):
        raise ValueError(f"y must hold N = {n} values (one per row of raw), got shape {np.shape(y)}")
    s = _arr(scale, "scale", r.dtype)
    if s is not None:
        s = np.broadcast_to(s.reshape(-1) if s.size != 1 else s.reshape(()), (n,)).copy()
    w = _arr(weight, "weight", r.dtype)
    if w is not None:
        w = w.reshape(-1)
        if w.shape != (n,):
            raise ValueError(f"weight must hold N = {n} values, got shape {np.shape(weight)}")
    return k, r, yy, s, w


def nll_forward(kind, raw, y, scale=None, weight=None, *, per_point: bool = False):
    """Weighted mean NLL of ``y`` (N,) under raw outputs ``raw`` (N, P); with ``per_point=True`` returns
    ``(mean, nll (N,))``."""
    k, r, yy, s, w = _prep(kind, raw, y, scale, weight)
    out = np.empty(r.shape[0], r.dtype) if per_point else None
    v = float(_core.likelihood_nll_forward(k, out, r, yy, s, w))
    return (v, out) if per_point else v


def nll_backward(kind, raw, y, scale=None, weight=None, grad_scale: float = 1.0) -> np.ndarray:
    """``grad_scale * d(mean NLL)/d(raw)`` (N, P), raw's dtype."""
    k, r, yy, s, w = _prep(kind, raw, y, scale, weight)
    d = np.empty_like(r)
    _core.likelihood_nll_backward(k, d, r, yy, s, w, float(grad_scale))
    return d


def nll_value_and_grad(kind, raw, y, scale=None, weight=None) -> Tuple[float, np.ndarray]:
    """``(mean NLL, d/d raw)`` in one call pair."""
    k, r, yy, s, w = _prep(kind, raw, y, scale, weight)
    v = float(_core.likelihood_nll_forward(k, None, r, yy, s, w))
    d = np.empty_like(r)
    _core.likelihood_nll_backward(k, d, r, yy, s, w, 1.0)
    return v, d


def likelihood_params(kind, raw, scale=None) -> np.ndarray:
    """Distribution parameters (N, P) from raw outputs: (mu, sigma), (mu, sigma, nu) or (mu, alpha)."""
    k, r, _, s, _ = _prep(kind, raw, np.zeros(np.shape(raw)[0] if np.ndim(raw) == 2 else 1), scale, None)
    out = np.empty_like(r)
    _core.likelihood_params(k, out, r, s)
    return out


def likelihood_sample(kind, params, seed: int) -> np.ndarray:
    """One draw per row of ``params`` (N, P) (distribution parameters, as from :func:`likelihood_params`).
    ``seed`` is a non-negative int; row i uses the random stream ``(seed, i)``."""
    k = _kind(kind)
    p = _arr(params, "params")
    if p.ndim != 2 or p.shape[1] != likelihood_n_params(k):
        raise ValueError(f"params must have shape (N, {likelihood_n_params(k)}) for the {k} likelihood, got {p.shape}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    out = np.empty(p.shape[0], p.dtype)
    _core.likelihood_sample(k, out, p, int(seed) & ((1 << 63) - 1))
    return out


def digamma(x: float) -> float:
    """psi(x) for x > 0 (the C++ implementation the gradients use)."""
    return float(_core.digamma(float(x)))
