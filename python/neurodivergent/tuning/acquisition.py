"""Acquisition functions for minimisation. Each maps the posterior mean ``mu`` and standard deviation
``sigma`` of candidate points, and the best (lowest) value observed, ``best``, to a score that is
larger for more promising points (Φ and φ are the standard normal cdf and pdf)::

    ExpectedImprovement(xi):       z = (best - mu - xi) / sigma,  EI = (best - mu - xi) Φ(z) + sigma φ(z)
    ProbabilityOfImprovement(xi):  PI = Φ((best - mu - xi) / sigma)
    LowerConfidenceBound(kappa):   LCB = mu - kappa sigma,  score = -LCB

Bayesian optimisation evaluates them on the standardised objective (zero mean, unit variance over the
trials so far), so ``xi`` and ``kappa`` do not depend on the objective's units.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["AcquisitionFunction", "ExpectedImprovement", "ProbabilityOfImprovement", "LowerConfidenceBound",
           "norm_cdf", "norm_pdf"]

_erf = np.frompyfunc(math.erf, 1, 1)
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def norm_cdf(z):
    """Standard normal cdf through ``math.erf`` (elementwise)."""
    z = np.asarray(z, dtype=np.float64)
    return 0.5 * (1.0 + _erf(z / _SQRT2).astype(np.float64))


def norm_pdf(z):
    z = np.asarray(z, dtype=np.float64)
    return _INV_SQRT_2PI * np.exp(-0.5 * z * z)


def _check(name: str, v, low: float = 0.0) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low:
        raise ValueError(f"{name} must be a finite number >= {low:g}, got {v!r}")
    return float(v)


class ExpectedImprovement:
    """E[max(best - xi - f(x), 0)] under the posterior; ``xi >= 0`` trades exploitation for exploration."""

    def __init__(self, xi: float = 0.01):
        self.xi = _check("xi", xi)

    def __call__(self, mu, sigma, best: float) -> np.ndarray:
        mu, sigma = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
        imp = best - mu - self.xi
        s = np.where(sigma > 0, sigma, 1.0)
        z = imp / s
        ei = imp * norm_cdf(z) + sigma * norm_pdf(z)
        return np.where(sigma > 0, np.maximum(ei, 0.0), np.maximum(imp, 0.0))

    def __repr__(self) -> str:
        return f"ExpectedImprovement(xi={self.xi:g})"


class ProbabilityOfImprovement:
    """P(f(x) < best - xi) under the posterior."""

    def __init__(self, xi: float = 0.01):
        self.xi = _check("xi", xi)

    def __call__(self, mu, sigma, best: float) -> np.ndarray:
        mu, sigma = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
        imp = best - mu - self.xi
        z = imp / np.where(sigma > 0, sigma, 1.0)
        return np.where(sigma > 0, norm_cdf(z), (imp > 0).astype(np.float64))

    def __repr__(self) -> str:
        return f"ProbabilityOfImprovement(xi={self.xi:g})"


class LowerConfidenceBound:
    """Minus the lower confidence bound ``mu - kappa sigma`` (so that larger is better)."""

    def __init__(self, kappa: float = 1.96):
        self.kappa = _check("kappa", kappa)

    def bound(self, mu, sigma) -> np.ndarray:
        return np.asarray(mu, dtype=np.float64) - self.kappa * np.asarray(sigma, dtype=np.float64)

    def __call__(self, mu, sigma, best: float = 0.0) -> np.ndarray:
        return -self.bound(mu, sigma)

    def __repr__(self) -> str:
        return f"LowerConfidenceBound(kappa={self.kappa:g})"


class AcquisitionFunction:
    """``AcquisitionFunction.ExpectedImprovement`` (default), ``.ProbabilityOfImprovement``,
    ``.LowerConfidenceBound``; pass the class for its defaults or an instance, e.g.
    ``AcquisitionFunction.LowerConfidenceBound(kappa=2.5)``."""

    ExpectedImprovement = ExpectedImprovement
    ProbabilityOfImprovement = ProbabilityOfImprovement
    LowerConfidenceBound = LowerConfidenceBound
    _NAMES = {"ei": ExpectedImprovement, "expectedimprovement": ExpectedImprovement,
              "pi": ProbabilityOfImprovement, "probabilityofimprovement": ProbabilityOfImprovement,
              "lcb": LowerConfidenceBound, "lowerconfidencebound": LowerConfidenceBound}

    @classmethod
    def coerce(cls, v):
        if isinstance(v, (ExpectedImprovement, ProbabilityOfImprovement, LowerConfidenceBound)):
            return v
        if v in (ExpectedImprovement, ProbabilityOfImprovement, LowerConfidenceBound):
            return v()
        if isinstance(v, str) and v.lower().replace("_", "") in cls._NAMES:
            return cls._NAMES[v.lower().replace("_", "")]()
        raise ValueError("acquisition_function must be AcquisitionFunction.ExpectedImprovement, "
                         f".ProbabilityOfImprovement or .LowerConfidenceBound (or 'ei' / 'pi' / 'lcb'), got {v!r}")
