"""A Gaussian-process regressor over numpy: Matérn 5/2 (or 3/2, RBF) kernel with one length scale per
input dimension, hyperparameters fitted by maximising the log marginal likelihood.

Model, on targets standardised to zero mean and unit variance::

    k(x, x') = s2 * g(r),   r = sqrt(sum_d ((x_d - x'_d) / l_d)^2)
    Matérn 5/2: g(r) = (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r)
    Matérn 3/2: g(r) = (1 + sqrt(3) r) exp(-sqrt(3) r)           RBF: g(r) = exp(-r^2 / 2)
    y = f(x) + e,   e ~ N(0, noise + alpha)

``alpha`` is a fixed jitter added to the diagonal (as scikit-learn's ``alpha``); ``noise`` is fitted with
the other hyperparameters when ``fit_noise`` (default), else 0. The hyperparameters
``theta = (log s2, log l_1 .. log l_D[, log noise])`` maximise

    log p(y | X, theta) = -1/2 y^T K^-1 y - sum log diag(L) - n/2 log(2 pi),   K = L L^T

with the analytic gradient ``1/2 tr((a a^T - K^-1) dK/dtheta_j)``, ``a = K^-1 y``, by a bounded L-BFGS
started from the previous fit's theta and from random points. The posterior at new inputs is

    mean = k_*^T K^-1 y,   var = s2 - k_*^T K^-1 k_*     (the latent f, without the noise)

returned in the original units of y.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import numpy as np

__all__ = ["GaussianProcess", "Kernel", "lbfgs_minimize"]

SQRT5 = math.sqrt(5.0)
SQRT3 = math.sqrt(3.0)


class Kernel:
    """Kernel names: ``Kernel.Matern52`` (default), ``Kernel.Matern32``, ``Kernel.RBF``."""

    Matern52 = "matern52"
    Matern32 = "matern32"
    RBF = "rbf"
    ALL = ("matern52", "matern32", "rbf")

    @staticmethod
    def coerce(v) -> str:
        name = getattr(v, "value", v)
        if isinstance(name, str) and name.lower().replace("_", "").replace(" ", "") in Kernel.ALL:
            return name.lower().replace("_", "").replace(" ", "")
        raise ValueError(f"kernel must be Kernel.Matern52, Kernel.Matern32 or Kernel.RBF, got {v!r}")


def _shape(kernel: str, r: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """g(r) and h(r) with dk/dlog(l_d) = s2 * h(r) * (dx_d / l_d)^2."""
    if kernel == "matern52":
        e = np.exp(-SQRT5 * r)
        return (1.0 + SQRT5 * r + (5.0 / 3.0) * r * r) * e, (5.0 / 3.0) * (1.0 + SQRT5 * r) * e
    if kernel == "matern32":
        e = np.exp(-SQRT3 * r)
        return (1.0 + SQRT3 * r) * e, 3.0 * e
    g = np.exp(-0.5 * r * r)
    return g, g


def kernel_matrix(kernel: str, A: np.ndarray, B: np.ndarray, s2: float, ls: np.ndarray) -> np.ndarray:
    a, b = A / ls, B / ls
    r2 = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return s2 * _shape(kernel, np.sqrt(np.maximum(r2, 0.0)))[0]


# --------------------------------------------------------------------------- a small bounded L-BFGS
def lbfgs_minimize(fg: Callable[[np.ndarray], Tuple[float, np.ndarray]], x0: np.ndarray,
                   bounds: Optional[np.ndarray] = None, maxiter: int = 100, m: int = 8,
                   gtol: float = 1e-6, ftol: float = 1e-8) -> Tuple[np.ndarray, float]:
    """Minimise ``f`` (``fg(x) -> (f, grad)``) from ``x0`` within ``bounds`` (D, 2): L-BFGS directions,
    projected onto the box, with a backtracking Armijo line search; the memory restarts whenever a
    projected direction is not a descent direction. Returns (x, f(x))."""
    lo = hi = None
    if bounds is not None:
        lo, hi = bounds[:, 0], bounds[:, 1]
        x = np.clip(np.asarray(x0, dtype=np.float64), lo, hi)
    else:
        x = np.asarray(x0, dtype=np.float64).copy()

    def proj(v):
        return v if lo is None else np.clip(v, lo, hi)

    f, g = fg(x)
    if not np.isfinite(f):
        return x, f
    S, Y = [], []
    for _ in range(maxiter):
        # gradient components pushing against an active bound do not count
        pg = proj(x - g) - x
        if np.max(np.abs(pg)) < gtol:
            break
        q = g.copy()
        alphas = []
        for s, y in zip(reversed(S), reversed(Y)):
            a = s @ q / (y @ s)
            alphas.append(a)
            q -= a * y
        if S:
            q *= (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1])
        for (s, y), a in zip(zip(S, Y), reversed(alphas)):
            b = y @ q / (y @ s)
            q += (a - b) * s
        d = -q
        if lo is not None:  # freeze coordinates at a bound that the direction pushes outwards
            d = np.where(((x <= lo) & (d < 0)) | ((x >= hi) & (d > 0)), 0.0, d)
        if not g @ d < 0:
            S, Y = [], []
            d = pg
        t = 1.0
        if not S:
            t = min(1.0, 1.0 / max(1e-12, float(np.max(np.abs(d)))))
        accepted = False
        for _ in range(12):
            xn = proj(x + t * d)
            if np.max(np.abs(xn - x)) < 1e-12:
                break
            fn, gn = fg(xn)
            if np.isfinite(fn) and fn <= f + 1e-4 * (g @ (xn - x)):
                accepted = True
                break
            t *= 0.5
        if not accepted:
            if S:
                S, Y = [], []
                continue
            break
        s, y = xn - x, gn - g
        if s @ y > 1e-12:
            S.append(s)
            Y.append(y)
            if len(S) > m:
                S.pop(0)
                Y.pop(0)
        converged = abs(f - fn) <= ftol * max(1.0, abs(f))
        x, f, g = xn, fn, gn
        if converged:
            break
    return x, float(f)


# --------------------------------------------------------------------------- the regressor
class GaussianProcess:
    """GP regression; ``fit(X, y)`` then ``predict(X)`` -> (mean, std)."""

    def __init__(self, kernel: str = Kernel.Matern52, alpha: float = 1e-6, fit_noise: bool = True,
                 length_scale_bounds: Tuple[float, float] = (1e-2, 2e1),
                 signal_variance_bounds: Tuple[float, float] = (1e-2, 1e4),
                 noise_bounds: Tuple[float, float] = (1e-8, 1.0), n_restarts: int = 2):
        self.kernel = Kernel.coerce(kernel)
        if not (isinstance(alpha, (int, float)) and alpha >= 0 and math.isfinite(alpha)):
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        self.alpha = float(alpha)
        self.fit_noise = bool(fit_noise)
        self.length_scale_bounds = length_scale_bounds
        self.signal_variance_bounds = signal_variance_bounds
        self.noise_bounds = noise_bounds
        self.n_restarts = int(n_restarts)
        self.theta: Optional[np.ndarray] = None
        self.X: Optional[np.ndarray] = None

    # ---------------------------------------------------------------- hyperparameters
    def _bounds(self, D: int) -> np.ndarray:
        b = [np.log(self.signal_variance_bounds)] + [np.log(self.length_scale_bounds)] * D
        if self.fit_noise:
            b.append(np.log(self.noise_bounds))
        return np.array(b, dtype=np.float64)

    def _unpack(self, theta: np.ndarray, D: int):
        s2 = math.exp(theta[0])
        ls = np.exp(theta[1:1 + D])
        noise = math.exp(theta[1 + D]) if self.fit_noise else 0.0
        return s2, ls, noise

    @property
    def signal_variance(self) -> float:
        return math.exp(self.theta[0])

    @property
    def length_scales(self) -> np.ndarray:
        return np.exp(self.theta[1:1 + self.X.shape[1]])

    @property
    def noise(self) -> float:
        return math.exp(self.theta[-1]) if self.fit_noise else 0.0

    def log_marginal_likelihood(self, theta: np.ndarray, X: np.ndarray, y: np.ndarray,
                                grad: bool = True, _sq: Optional[np.ndarray] = None):
        """log p(y | X, theta) (and its gradient in theta) for standardised ``y``."""
        n, D = X.shape
        s2, ls, noise = self._unpack(theta, D)
        sq = _sq if _sq is not None else ((X[:, None, :] - X[None, :, :]) ** 2).reshape(n * n, D)
        inv_l2 = 1.0 / (ls * ls)
        r = np.sqrt(sq @ inv_l2).reshape(n, n)
        g, h = _shape(self.kernel, r)
        Kf = s2 * g
        K = Kf + (noise + self.alpha) * np.eye(n)
        try:
            L = np.linalg.cholesky(K)
        except np.linalg.LinAlgError:
            return (-np.inf, np.zeros_like(theta)) if grad else -np.inf
        Linv = np.linalg.inv(L)
        a = Linv.T @ (Linv @ y)
        lml = -0.5 * y @ a - np.log(np.diag(L)).sum() - 0.5 * n * math.log(2 * math.pi)
        if not grad:
            return lml
        W = np.outer(a, a) - Linv.T @ Linv  # d lml / dK = W / 2
        gr = np.empty_like(theta)
        gr[0] = 0.5 * np.sum(W * Kf)
        gr[1:1 + D] = 0.5 * ((W * h).ravel() @ sq) * s2 * inv_l2
        if self.fit_noise:
            gr[1 + D] = 0.5 * noise * np.trace(W)
        return lml, gr

    # ---------------------------------------------------------------- fit / predict
    def fit(self, X: np.ndarray, y: np.ndarray, *, optimize: bool = True, theta: Optional[np.ndarray] = None,
            rng: Optional[np.random.Generator] = None, n_restarts: Optional[int] = None,
            maxiter: int = 60) -> "GaussianProcess":
        """Condition on (X, y). With ``optimize`` the hyperparameters maximise the marginal likelihood
        (starting from ``theta``, the previous fit's, and ``n_restarts`` random points); otherwise ``theta``
        (or the previous fit's, or the defaults: s2 = 1, l = 0.5, noise = 1e-4) is used as is."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).ravel()
        if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
            raise ValueError(f"X must be (n, D) and y (n,), got {X.shape} and {y.shape}")
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise ValueError("X and y must be finite")
        n, D = X.shape
        self.y_mean = float(y.mean())
        sd = float(y.std())
        self.y_std = sd if sd > 0 else 1.0
        yn = (y - self.y_mean) / self.y_std
        bounds = self._bounds(D)
        default = np.concatenate([[0.0], np.full(D, math.log(0.5))] + ([[math.log(1e-4)]] if self.fit_noise else []))
        start = theta if theta is not None else (self.theta if self.theta is not None and len(self.theta) == len(default)
                                                  else default)
        start = np.clip(np.asarray(start, dtype=np.float64), bounds[:, 0], bounds[:, 1])
        if optimize and n >= 2:
            rng = rng if rng is not None else np.random.default_rng(0)
            k = self.n_restarts if n_restarts is None else int(n_restarts)
            starts = [start] + [rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(k)]

            sq = ((X[:, None, :] - X[None, :, :]) ** 2).reshape(n * n, D)

            def fg(t):
                v, gr = self.log_marginal_likelihood(t, X, yn, _sq=sq)
                return -v, -gr

            best_t, best_f = start, math.inf
            for s in starts:
                t, f = lbfgs_minimize(fg, s, bounds, maxiter=maxiter)
                if f < best_f:
                    best_t, best_f = t, f
            start = best_t
        self.theta = start
        self.X = X
        self._factor(yn)
        return self

    def _factor(self, yn: np.ndarray) -> None:
        n, D = self.X.shape
        s2, ls, noise = self._unpack(self.theta, D)
        K = kernel_matrix(self.kernel, self.X, self.X, s2, ls) + (noise + self.alpha) * np.eye(n)
        jitter = 0.0
        for _ in range(8):
            try:
                self.L = np.linalg.cholesky(K + jitter * np.eye(n))
                break
            except np.linalg.LinAlgError:
                jitter = 1e-10 if jitter == 0 else jitter * 10
        else:
            raise np.linalg.LinAlgError("the kernel matrix is not positive definite even with jitter")
        self.Linv = np.linalg.inv(self.L)
        self.a = self.Linv.T @ (self.Linv @ yn)
        self.yn = yn

    def predict(self, Xs: np.ndarray, return_std: bool = True, normalized: bool = False):
        """Posterior mean (and standard deviation of f) at ``Xs`` (m, D), in the units of y (or of the
        standardised y with ``normalized=True``)."""
        if self.X is None:
            raise RuntimeError("GaussianProcess is not fitted")
        Xs = np.atleast_2d(np.asarray(Xs, dtype=np.float64))
        D = self.X.shape[1]
        s2, ls, _ = self._unpack(self.theta, D)
        Ks = kernel_matrix(self.kernel, Xs, self.X, s2, ls)  # (m, n)
        mu = Ks @ self.a
        scale, shift = (1.0, 0.0) if normalized else (self.y_std, self.y_mean)
        if not return_std:
            return mu * scale + shift
        v = Ks @ self.Linv.T  # (m, n): rows are (L^-1 k_*)^T
        var = np.maximum(s2 - np.einsum("mn,mn->m", v, v), 1e-12)
        return mu * scale + shift, np.sqrt(var) * scale

    def add_observations(self, X: np.ndarray, y: np.ndarray) -> "GaussianProcess":
        """Condition on more points with the same hyperparameters and standardisation (used for the
        'kriging believer' batches)."""
        X = np.vstack([self.X, np.atleast_2d(X)])
        yn = np.concatenate([self.yn, (np.ravel(y) - self.y_mean) / self.y_std])
        self.X = X
        self._factor(yn)
        return self
