"""Multi-objective search with NSGA-II (Deb, Pratap, Agarwal & Meyarivan, 2002).

Each point of the space is a vector of genes in [0, 1] (see :mod:`.space`: continuous dimensions
linearly or in log space, discrete values by rank, categorical values by ``floor(u * k)``). Generation 0
is ``population_size`` random points; then, per generation:

* parents are picked by binary tournaments on (non-domination rank, then larger crowding distance);
* each pair is recombined by simulated binary crossover (probability ``crossover_probability``,
  distribution index ``crossover_eta``, default 0.9 and 15; each gene recombined with probability 1/2)
  and every gene mutated
  with probability ``mutation_probability`` (default 1 / number of genes) by polynomial mutation
  (distribution index ``mutation_eta``, default 10; clipped to the bounds);
* the children are evaluated (one batch: in parallel with ``n_jobs > 1``), parents and children are
  sorted into non-dominated fronts and the next population is filled front by front, the last front
  cut by crowding distance.

A child whose decoded parameters were already evaluated reuses that result (no second trial) and does
not take a second place in the population. The result, a :class:`~.results.ParetoFront`, holds the
non-dominated trials among *every* completed trial of the search (not only the final population: a
configuration that was evaluated and is not dominated is never thrown away).

Objectives have a name, a direction and a weight. The weights do not steer the search (NSGA-II is
weight-free); they choose the compromise returned by ``fit`` and ``ParetoFront.best()``: the front
member with the largest weighted sum of objective values normalised to [0, 1] over the front.
"""
from __future__ import annotations

import enum
import math
import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .base import METRICS, Search, Session, _int
from .results import BestConfiguration, ParetoFront, SearchResults, Trial

__all__ = ["MultiObjectiveOptimization", "Direction", "Algorithm", "non_dominated_sort", "pareto_mask",
           "crowding_distance",
           "sbx_crossover", "polynomial_mutation"]

FORECAST_OBJECTIVES = ("accuracy", "training_time", "model_size") + METRICS


class Direction(str, enum.Enum):
    Minimize = "min"
    Maximize = "max"

    @classmethod
    def coerce(cls, v: Any) -> "Direction":
        if isinstance(v, Direction):
            return v
        if isinstance(v, str):
            for d in cls:
                if v.lower() in (d.value, d.name.lower()):
                    return d
        raise ValueError(f"direction must be Direction.Minimize or Direction.Maximize, got {v!r}")


class Algorithm(str, enum.Enum):
    NSGA2 = "nsga2"


# --------------------------------------------------------------------------- the NSGA-II operators
def non_dominated_sort(F: np.ndarray) -> np.ndarray:
    """Front index (0 = non-dominated) of each row of F (n, m), every objective minimised."""
    F = np.asarray(F, dtype=np.float64)
    n = len(F)
    le = np.all(F[:, None, :] <= F[None, :, :], axis=2)
    lt = np.any(F[:, None, :] < F[None, :, :], axis=2)
    dom = le & lt  # dom[i, j]: i dominates j
    count = dom.sum(axis=0)
    rank = np.full(n, -1, dtype=np.int64)
    front = np.flatnonzero(count == 0)
    r = 0
    while front.size:
        rank[front] = r
        count = count - dom[front].sum(axis=0)
        count[rank >= 0] = -1
        front = np.flatnonzero(count == 0)
        r += 1
    return rank


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """True for the rows of F (n, m) that no other row dominates (every objective minimised); rows are
    visited in lexicographic order, so each is compared with the current front only."""
    F = np.asarray(F, dtype=np.float64)
    order = np.lexsort(F.T[::-1])
    keep = np.zeros(len(F), dtype=bool)
    front = np.empty((0, F.shape[1]))
    for i in order:
        f = F[i]
        if len(front) and np.any(np.all(front <= f, axis=1) & np.any(front < f, axis=1)):
            continue
        keep[i] = True
        front = np.vstack([front, f])
    return keep


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """Crowding distance of each row of one front F (n, m): the sum over objectives of the normalised
    gap between its two neighbours; the extremes of every objective get infinity."""
    F = np.asarray(F, dtype=np.float64)
    n, m = F.shape
    d = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(F[:, j], kind="stable")
        v = F[order, j]
        span = v[-1] - v[0]
        d[order[0]] = d[order[-1]] = np.inf
        if span > 0:
            d[order[1:-1]] += (v[2:] - v[:-2]) / span
    return d


def sbx_crossover(p1: np.ndarray, p2: np.ndarray, eta: float, prob: float,
                  rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Simulated binary crossover of parent rows (n, D) within [0, 1] (Deb & Agrawal 1995, bounded form)."""
    c1, c2 = p1.copy(), p2.copy()
    n, D = p1.shape
    do_pair = rng.random(n) < prob
    do_gene = (rng.random((n, D)) < 0.5) & do_pair[:, None] & (np.abs(p1 - p2) > 1e-14)
    u = rng.random((n, D))
    swap = rng.random((n, D)) < 0.5
    y1, y2 = np.minimum(p1, p2), np.maximum(p1, p2)
    dy = np.where(do_gene, y2 - y1, 1.0)
    e1 = 1.0 / (eta + 1.0)

    def betaq(beta):
        alpha = 2.0 - beta ** -(eta + 1.0)
        return np.where(u <= 1.0 / alpha, (u * alpha) ** e1, (1.0 / np.maximum(2.0 - u * alpha, 1e-300)) ** e1)

    b1 = betaq(1.0 + 2.0 * y1 / dy)
    b2 = betaq(1.0 + 2.0 * (1.0 - y2) / dy)
    k1 = np.clip(0.5 * ((y1 + y2) - b1 * (y2 - y1)), 0.0, 1.0)
    k2 = np.clip(0.5 * ((y1 + y2) + b2 * (y2 - y1)), 0.0, 1.0)
    a, b = np.where(swap, k2, k1), np.where(swap, k1, k2)
    c1 = np.where(do_gene, a, c1)
    c2 = np.where(do_gene, b, c2)
    return c1, c2


def polynomial_mutation(x: np.ndarray, eta: float, prob: float, rng: np.random.Generator) -> np.ndarray:
    """Polynomial mutation (Deb & Goyal 1996) of rows (n, D) within [0, 1]: each gene, with probability
    ``prob``, moves by ``delta = (2u)^(1/(eta+1)) - 1`` (u < 1/2) or ``1 - (2(1-u))^(1/(eta+1))``
    (u >= 1/2), u uniform, and is clipped to [0, 1] (so the bounds themselves can be reached)."""
    mask = rng.random(x.shape) < prob
    u = rng.random(x.shape)
    p = 1.0 / (eta + 1.0)
    dq = np.where(u < 0.5, (2.0 * u) ** p - 1.0, 1.0 - (2.0 * (1.0 - u)) ** p)
    return np.where(mask, np.clip(x + dq, 0.0, 1.0), x)


# --------------------------------------------------------------------------- the search
class _Objective:
    def __init__(self, name: str, weight: float, direction: Direction):
        self.name, self.weight, self.direction = name, weight, direction

    def __repr__(self) -> str:
        return f"Objective({self.name!r}, weight={self.weight:g}, direction={self.direction.name})"


class _ForecastObjectives:
    """The named objectives of a forecasting trial, from one cross-validation (picklable)."""

    returns_extra = True

    def __init__(self, inner, names: Sequence[str]):
        self.inner = inner
        self.names = list(names)

    def __call__(self, params):
        score, extra = self.inner(params)
        main = self.inner.metrics[0]
        extra = {main: score, **extra}
        vals = {"accuracy": -score, **extra}
        return tuple(float(vals[n]) for n in self.names), extra


class MultiObjectiveOptimization(Search):
    """NSGA-II over the space (see the module docstring).

    ``add_objective(name, weight=1.0, direction=Direction.Minimize)`` declares the objectives in order.
    For forecasting (``optimize(data)`` / ``fit(data)``) the names are ``"accuracy"`` (minus the
    cross-validated error of the scoring metric: larger is better), ``"training_time"`` (seconds to
    cross-validate the trial), ``"model_size"`` (trainable parameters) or a metric name (``"mae"``,
    ``"rmse"``, ...: its cross-validated mean). For a plain function (``optimize(objective)``) the names
    are free and ``objective(params)`` returns one number per objective, in the order added."""

    method = "MultiObjectiveOptimization"
    _run_state = ("results", "pareto_front")

    def __init__(self) -> None:
        super().__init__()
        self.objectives: Tuple[_Objective, ...] = ()
        self.algorithm = Algorithm.NSGA2
        self.population_size = 50
        self.generations = 100
        self.crossover_probability = 0.9
        self.crossover_eta = 15.0
        self.mutation_eta = 10.0
        self.mutation_probability: Optional[float] = None
        self.pareto_front: Optional[ParetoFront] = None

    # ---------------------------------------------------------------- builders
    def add_objective(self, name: str, weight: float = 1.0, direction: Any = Direction.Minimize):
        if not isinstance(name, str) or not name:
            raise TypeError(f"an objective name must be a non-empty str, got {name!r}")
        if any(o.name == name for o in self.objectives):
            raise ValueError(f"objective {name!r} is defined twice")
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"objective {name!r}: weight must be a finite number >= 0, got {weight!r}")
        return self._with(objectives=self.objectives + (_Objective(name, float(weight), Direction.coerce(direction)),))

    def with_algorithm(self, algorithm: Any):
        if algorithm not in (Algorithm.NSGA2, "nsga2", "NSGA2"):
            raise ValueError(f"algorithm must be Algorithm.NSGA2, got {algorithm!r}")
        return self._with(algorithm=Algorithm.NSGA2)

    def with_population_size(self, n: int):
        return self._with(population_size=_int("population_size", n, 4))

    def with_generations(self, n: int):
        """Generations after the random initial population (default 100)."""
        return self._with(generations=_int("generations", n, 0))

    def _prob(self, name: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        return float(v)

    def _eta(self, name: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        return float(v)

    def with_crossover_probability(self, p: float):
        return self._with(crossover_probability=self._prob("crossover_probability", p))

    def with_crossover_eta(self, eta: float):
        return self._with(crossover_eta=self._eta("crossover_eta", eta))

    def with_mutation_eta(self, eta: float):
        return self._with(mutation_eta=self._eta("mutation_eta", eta))

    def with_mutation_probability(self, p: Optional[float]):
        """Per-gene mutation probability (None: 1 / number of genes)."""
        return self._with(mutation_probability=None if p is None else self._prob("mutation_probability", p))

    def _expected_trials(self) -> Optional[int]:
        return self.population_size * (self.generations + 1)

    def _check_ready(self) -> None:
        super()._check_ready()
        if len(self.objectives) < 1:
            raise ValueError("add at least one objective with add_objective(name, weight=..., direction=...)")

    # ---------------------------------------------------------------- entry points
    def optimize(self, target: Any) -> ParetoFront:  # type: ignore[override]
        """``optimize(data)`` for forecasting models or ``optimize(objective)`` for a plain function
        returning one value per objective. Returns the Pareto front (also ``self.pareto_front``); every
        trial is in ``self.results``."""
        from ..data.frame import TimeSeriesDataFrame

        names = [o.name for o in self.objectives]
        if isinstance(target, TimeSeriesDataFrame):
            evaluator = self._forecast_evaluator(target)
        elif callable(target):
            self._check_ready()
            evaluator = target
        else:
            raise TypeError(f"optimize needs a TimeSeriesDataFrame or a callable, got {type(target).__name__}")
        self._execute(evaluator, len(names), names)
        return self.pareto_front

    def fit(self, data: Any) -> BestConfiguration:
        """Run on forecasting ``data`` and return the front member with the best weighted compromise."""
        evaluator = self._forecast_evaluator(data)
        self._execute(evaluator, len(self.objectives), [o.name for o in self.objectives])
        best = self.pareto_front.best()
        cls, mcfg, tcfg = evaluator.inner.build(best.params)
        score = float(best.extra[evaluator.inner.metrics[0]])
        return BestConfiguration(best.params, score, cls, mcfg, tcfg, best)

    def _forecast_evaluator(self, data: Any) -> _ForecastObjectives:
        self._check_ready()
        names = [o.name for o in self.objectives]
        bad = [n for n in names if n not in FORECAST_OBJECTIVES]
        if bad:
            raise ValueError(f"unknown forecasting objective(s) {bad}: use {', '.join(FORECAST_OBJECTIVES)}")
        metrics = [self.scoring_metric] + [n for n in names if n in METRICS and n != self.scoring_metric]
        inner = self._forecast_objective(data, metrics)
        return _ForecastObjectives(inner, names)

    # ---------------------------------------------------------------- the algorithm
    def _search(self, session: Session) -> None:
        space = self.parameter_space
        rng = session.rng
        N, D = self.population_size, len(space)
        signs = np.array([1.0 if o.direction == Direction.Minimize else -1.0 for o in self.objectives])
        pm = self.mutation_probability if self.mutation_probability is not None else 1.0 / D
        cache: Dict[str, Trial] = {}

        def evaluate(genes: np.ndarray) -> List[Optional[Trial]]:
            params = [space.from_unit(g) for g in genes]
            keys = [space.key(p) for p in params]
            todo, seen = [], set()
            for k, p in zip(keys, params):
                if k not in cache and k not in seen:
                    todo.append(p)
                    seen.add(k)
            for t in session.evaluate(todo):
                cache[space.key(t.params)] = t
            return [cache.get(k) for k in keys]

        def costs(trials: List[Optional[Trial]]) -> np.ndarray:
            F = np.full((len(trials), len(signs)), np.inf)
            for i, t in enumerate(trials):
                if t is not None and t.ok:
                    F[i] = signs * np.asarray(t.value, dtype=np.float64)
            return F

        def rank_crowd(F: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
            rank = non_dominated_sort(np.where(np.isfinite(F), F, 1e300))
            crowd = np.zeros(len(F))
            for r in np.unique(rank):
                idx = np.flatnonzero(rank == r)
                crowd[idx] = crowding_distance(np.where(np.isfinite(F[idx]), F[idx], 1e300))
            return rank, crowd

        pop = rng.random((N, D))
        pop_trials = evaluate(pop)
        F = costs(pop_trials)
        for _ in range(self.generations):
            if session.stopped:
                break
            rank, crowd = rank_crowd(F)
            # binary tournaments: N parents
            # Deb's mating: two shuffles of the population, neighbours compete, so that every member
            # enters exactly two tournaments
            M = N + N % 2
            perm = np.concatenate([rng.permutation(N), rng.permutation(N)])
            if len(perm) < 2 * M:
                perm = np.concatenate([perm, rng.permutation(N)[: 2 * M - len(perm)]])
            a, b = perm[0:2 * M:2], perm[1:2 * M:2]
            better_a = (rank[a] < rank[b]) | ((rank[a] == rank[b]) & (crowd[a] >= crowd[b]))
            parents = np.where(better_a, a, b)
            c1, c2 = sbx_crossover(pop[parents[0::2]], pop[parents[1::2]], self.crossover_eta,
                                   self.crossover_probability, rng)
            kids = np.empty((M, D))
            kids[0::2], kids[1::2] = c1, c2
            kids = polynomial_mutation(kids[:N], self.mutation_eta, pm, rng)
            kid_trials = evaluate(kids)
            if session.stopped:
                # keep what finished; unevaluated children cannot join the population
                keep = [i for i, t in enumerate(kid_trials) if t is not None]
                kids, kid_trials = kids[keep], [kid_trials[i] for i in keep]
            allg = np.vstack([pop, kids])
            allt = pop_trials + kid_trials
            allF = np.vstack([F, costs(kid_trials)])
            # a child identical to a member (same decoded parameters) does not take a second place
            keys = [None if t is None else t.number for t in allt]
            unique = [i for i, k in enumerate(keys) if k is None or k not in keys[:i]]
            if len(unique) >= N:
                allg, allt, allF = allg[unique], [allt[i] for i in unique], allF[unique]
            rank, crowd = rank_crowd(allF)
            order = np.lexsort((-crowd, rank))[:N]
            pop, pop_trials, F = allg[order], [allt[i] for i in order], allF[order]

    def _execute(self, evaluator, n_objectives, objective_names) -> SearchResults:
        res = super()._execute(evaluator, n_objectives, objective_names)
        members = res.completed
        front: List[Trial] = []
        if members:
            signs = np.array([1.0 if o.direction == Direction.Minimize else -1.0 for o in self.objectives])
            F = np.array([signs * np.asarray(t.value) for t in members])
            front = [members[i] for i in np.flatnonzero(pareto_mask(F))]
            front.sort(key=lambda t: (t.value[0], t.number))
        self.pareto_front = ParetoFront(front, [o.name for o in self.objectives],
                                        [o.direction.value for o in self.objectives],
                                        [o.weight for o in self.objectives])
        return res
