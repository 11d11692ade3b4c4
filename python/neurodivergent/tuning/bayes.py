"""Bayesian optimisation with a Gaussian process surrogate.

1. ``n_initial_points`` (default 10) points drawn at random from the space are evaluated (one batch).
2. Until ``n_calls`` (default 50) trials are done: a Gaussian process (:mod:`.gp`; Matérn 5/2 by default)
   is fitted to the completed trials — inputs encoded in [0, 1] (continuous dimensions linearly, or
   in log space with ``log_scale``; discrete values by their rank; categorical values one-hot), values
   standardised — with its hyperparameters maximising the marginal likelihood (one random restart
   besides the previous optimum at the first round and every tenth, a short warm-started refit every
   third round, the previous hyperparameters in between); the next point maximises the
   acquisition function over ``n_candidates`` random points plus points near the best trials so far,
   the three best of them refined by L-BFGS over the continuous and discrete coordinates, then rounded
   to the space (a point already evaluated is never proposed again).
3. With ``with_batch_size(q)`` each round proposes ``q`` points (after each one the GP pretends that
   its value is the posterior mean — the "kriging believer" — and proposes the next); the batch runs in
   parallel with ``n_jobs > 1``. The batch size, not ``n_jobs``, decides the proposals, so results do
   not depend on ``n_jobs``.

Failed trials (the objective raised or returned NaN) are left out of the GP. The initial points are
distinct; a space without continuous dimensions stops early, ``stopped_reason == "space_exhausted"``,
once every point has been evaluated.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np

from .acquisition import AcquisitionFunction, ExpectedImprovement
from .base import Search, Session, _int
from .gp import GaussianProcess, Kernel, lbfgs_minimize
from .space import Categorical, Continuous, Discrete

__all__ = ["BayesianOptimization"]


def _key(params: Dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


class BayesianOptimization(Search):
    """Gaussian-process Bayesian optimisation (see the module docstring)."""

    method = "BayesianOptimization"
    _run_state = ("results", "gp")

    def __init__(self) -> None:
        super().__init__()
        self.acquisition_function = ExpectedImprovement()
        self.n_initial_points = 10
        self.n_calls = 50
        self.kernel = Kernel.Matern52
        self.alpha = 1e-6
        self.batch_size = 1
        self.n_candidates = 1000
        self.gp: Optional[GaussianProcess] = None

    # ---------------------------------------------------------------- builders
    def with_acquisition_function(self, acquisition: Any) -> "BayesianOptimization":
        return self._with(acquisition_function=AcquisitionFunction.coerce(acquisition))

    def with_n_initial_points(self, n: int) -> "BayesianOptimization":
        """Random points evaluated before the GP takes over (default 10)."""
        return self._with(n_initial_points=_int("n_initial_points", n, 1))

    def with_n_calls(self, n: int) -> "BayesianOptimization":
        """Total trials, the initial points included (default 50)."""
        return self._with(n_calls=_int("n_calls", n, 1))

    def with_gaussian_process_kernel(self, kernel: Any) -> "BayesianOptimization":
        return self._with(kernel=Kernel.coerce(kernel))

    def with_alpha(self, alpha: float) -> "BayesianOptimization":
        """Jitter added to the diagonal of the kernel matrix (default 1e-6; the noise is fitted on top)."""
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        return self._with(alpha=float(alpha))

    def with_batch_size(self, q: int) -> "BayesianOptimization":
        """Points proposed per GP fit (default 1); use q > 1 to evaluate them in parallel with n_jobs."""
        return self._with(batch_size=_int("batch_size", q, 1))

    def with_n_candidates(self, n: int) -> "BayesianOptimization":
        """Random points scored by the acquisition function per proposal (default 1000)."""
        return self._with(n_candidates=_int("n_candidates", n, 10))

    def _expected_trials(self) -> Optional[int]:
        return self.n_calls

    # ---------------------------------------------------------------- the loop
    def _search(self, session: Session) -> None:
        space = self.parameter_space
        rng = session.rng
        finite = None if any(isinstance(d, Continuous) for d in space) else space.grid_size()
        n0 = min(self.n_initial_points, self.n_calls, finite or self.n_calls)
        initial, seen = [], set()
        for _ in range(n0):  # distinct random points (a few redraws, then a repeat is accepted)
            for _attempt in range(100):
                p = space.sample(rng)
                if _key(p) not in seen:
                    break
            seen.add(_key(p))
            initial.append(p)
        session.evaluate(initial)
        self.gp = None
        rounds = 0
        while not session.stopped and len(session.trials) < self.n_calls:
            if finite is not None and len({_key(t.params) for t in session.trials}) >= finite:
                session.results.stopped_reason = "space_exhausted"  # every point has been evaluated
                break
            q = min(self.batch_size, self.n_calls - len(session.trials))
            batch = self._propose(session, q, rounds)
            rounds += 1
            session.evaluate([p for p in batch if p is not None])

    def _propose(self, session: Session, q: int, rounds: int) -> List[Dict[str, Any]]:
        space = self.parameter_space
        rng = session.rng
        done = [t for t in session.trials if t.ok]
        seen = {_key(t.params) for t in session.trials}
        if len(done) < 2:
            if not any(isinstance(d, Continuous) for d in space):
                rest = [p for p in space.grid() if _key(p) not in seen]
                return [rest[i] for i in rng.permutation(len(rest))[:q]]
            return [space.sample(rng) for _ in range(q)]
        X = np.array([space.encode(t.params) for t in done])
        y = np.array([t.value for t in done], dtype=np.float64)
        fresh = self.gp is None
        if fresh:
            self.gp = GaussianProcess(kernel=self.kernel, alpha=self.alpha)
        gp = self.gp
        if fresh or rounds % 10 == 0:  # random restarts now and then,
            gp.fit(X, y, rng=rng, n_restarts=1, maxiter=40)
        elif rounds % 3 == 0:  # a short warm-started refit every third round,
            gp.fit(X, y, rng=rng, n_restarts=0, maxiter=15)
        else:  # otherwise the same hyperparameters, conditioned on the new points
            gp.fit(X, y, optimize=False)
        out: List[Dict[str, Any]] = []
        for j in range(q):
            p = self._maximise(gp, rng, seen, X, y)
            if p is None:  # nothing left that was not evaluated
                break
            out.append(p)
            seen.add(_key(p))
            if j + 1 < q:  # kriging believer
                x = space.encode(p)
                gp.add_observations(x[None, :], gp.predict(x[None, :], return_std=False))
        return out

    # ---------------------------------------------------------------- acquisition maximisation
    def _random_features(self, rng: np.random.Generator, m: int) -> np.ndarray:
        space = self.parameter_space
        F = np.zeros((m, space.n_features))
        for d, s in zip(space, space.feature_slices()):
            if isinstance(d, Categorical):
                F[np.arange(m), s.start + rng.integers(d.size, size=m)] = 1.0
            elif isinstance(d, Discrete):
                F[:, s.start] = 0.0 if d.size == 1 else rng.integers(d.size, size=m) / (d.size - 1)
            else:
                F[:, s.start] = rng.random(m)
        return F

    def _numeric_mask(self) -> np.ndarray:
        space = self.parameter_space
        mask = np.zeros(space.n_features, dtype=bool)
        for d, s in zip(space, space.feature_slices()):
            if not isinstance(d, Categorical):
                mask[s.start] = True
        return mask

    def _score(self, gp: GaussianProcess, F: np.ndarray) -> np.ndarray:
        mu, sd = gp.predict(F, normalized=True)
        best = float(np.min(gp.yn))
        return self.acquisition_function(mu, sd, best)

    def _maximise(self, gp: GaussianProcess, rng: np.random.Generator, seen: set, X: np.ndarray,
                  y: np.ndarray) -> Dict[str, Any]:
        space = self.parameter_space
        mask = self._numeric_mask()
        cand = [self._random_features(rng, self.n_candidates)]
        if mask.any():  # local candidates around the best trials so far
            order = np.argsort(y, kind="stable")[:3]
            for i in order:
                loc = np.repeat(X[i][None, :], 100, axis=0)
                loc[:, mask] = np.clip(loc[:, mask] + rng.normal(0.0, 0.05, (100, int(mask.sum()))), 0.0, 1.0)
                cand.append(loc)
        F = np.vstack(cand)
        a = self._score(gp, F)
        top = np.argsort(-a, kind="stable")[:3]
        refined = []
        if mask.any():
            idx = np.flatnonzero(mask)
            k = len(idx)
            h = 1e-6
            bounds = np.tile([0.0, 1.0], (k, 1))
            for i in top:
                base = F[i].copy()

                def fg(z, base=base):
                    P = np.repeat(base[None, :], k + 1, axis=0)
                    P[:, idx] = z
                    P[np.arange(1, k + 1), idx] += np.where(z + h <= 1.0, h, -h)
                    v = -self._score(gp, P)
                    step = np.where(z + h <= 1.0, h, -h)
                    return float(v[0]), (v[1:] - v[0]) / step

                z, _ = lbfgs_minimize(fg, base[idx], bounds, maxiter=15)
                x = base.copy()
                x[idx] = z
                refined.append(x)
        pool = np.vstack([F[top]] + ([np.array(refined)] if refined else []))
        # round to the space and score the points that can really be evaluated
        params = [space.decode(x) for x in pool]
        P = np.array([space.encode(p) for p in params])
        s = self._score(gp, P)
        for i in np.argsort(-s, kind="stable"):
            if _key(params[i]) not in seen:
                return params[i]
        for i in np.argsort(-a, kind="stable"):  # every refined point was seen already: next best candidate
            p = space.decode(F[i])
            if _key(p) not in seen:
                return p
        if any(isinstance(d, Continuous) for d in space):
            return space.sample(rng)
        rest = [p for p in space.grid() if _key(p) not in seen]  # a small finite space: any point left
        return rest[0] if rest else None

    # ---------------------------------------------------------------- plots
    def plot_convergence(self, path: str) -> None:
        """PNG of each trial's value and the best so far against the trial number."""
        plt = _pyplot()
        res = self._require_results()
        fig, ax = plt.subplots(figsize=(7, 4))
        xs = [t.number + 1 for t in res.trials if t.ok]
        ax.plot(xs, [t.value for t in res.trials if t.ok], "o", color="0.6", ms=4, label="trial value")
        ax.plot(range(1, len(res) + 1), res.best_so_far(), "-", color="C0", lw=2, label="best so far")
        if self.n_initial_points < len(res):
            ax.axvline(self.n_initial_points + 0.5, color="C1", ls="--", lw=1, label="end of random start")
        ax.set_xlabel("trial")
        ax.set_ylabel(", ".join(res.objective_names))
        ax.set_title(f"{self.method}: convergence")
        ax.legend()
        _save(fig, path, plt)

    def plot_partial_dependence(self, path: str, n_points: int = 40, n_samples: int = 200) -> None:
        """PNG with one panel per dimension: the GP's mean prediction as that dimension varies, averaged
        over ``n_samples`` random values of the other dimensions, with the trials' values as dots."""
        plt = _pyplot()
        res = self._require_results()
        gp = self.gp
        if gp is None:
            raise RuntimeError("plot_partial_dependence needs a fitted Gaussian process: run more trials than "
                               "n_initial_points (with at least two completed)")
        space = self.parameter_space
        rng = np.random.default_rng(self.seed)
        base = self._random_features(rng, n_samples)
        nd = len(space)
        cols = min(3, nd)
        rows = int(math.ceil(nd / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
        done = [t for t in res.trials if t.ok]
        for k, (d, s) in enumerate(zip(space, space.feature_slices())):
            ax = axes[k // cols][k % cols]
            if isinstance(d, Categorical):
                means = []
                for j in range(d.size):
                    F = base.copy()
                    F[:, s] = 0.0
                    F[:, s.start + j] = 1.0
                    means.append(float(np.mean(gp.predict(F, return_std=False))))
                ax.bar([str(v) for v in d.values], means, color="C0", alpha=0.7)
                ax.plot([str(t.params[d.name]) for t in done], [t.value for t in done], "o", color="0.3", ms=3)
            else:
                us = np.linspace(0.0, 1.0, n_points)
                vals = [d.from_unit(u) for u in us]
                means = []
                for u in us:
                    F = base.copy()
                    F[:, s.start] = u
                    means.append(float(np.mean(gp.predict(F, return_std=False))))
                ax.plot(vals, means, "-", color="C0")
                ax.plot([t.params[d.name] for t in done], [t.value for t in done], "o", color="0.3", ms=3)
                if isinstance(d, Continuous) and d.log_scale:
                    ax.set_xscale("log")
            ax.set_xlabel(d.name)
            ax.set_ylabel("partial dependence")
        for k in range(nd, rows * cols):
            axes[k // cols][k % cols].axis("off")
        fig.suptitle(f"{self.method}: partial dependence (GP mean)")
        _save(fig, path, plt)

    def _require_results(self):
        if self.results is None or not len(self.results):
            raise RuntimeError("no results to plot: run fit(data) or optimize(objective) first")
        return self.results


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install neurodivergent[plot]") from exc
    return plt


def _save(fig, path: str, plt) -> None:
    import io

    from ..checkpointing.atomic import atomic_write_bytes

    buf = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
