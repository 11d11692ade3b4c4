"""What every search shares: the builders, the trial loop, forecasting data and plain functions."""
from __future__ import annotations

import copy
import datetime
import logging
import math
import numbers
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .results import BestConfiguration, SearchResults, Trial
from .runner import Runner, resolve_jobs
from .space import HyperparameterSpace

log = logging.getLogger("neurodivergent")

METRICS = ("mae", "mse", "rmse", "mape", "smape", "mase")


def _int(name: str, v: Any, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
    if v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return int(v)


def coerce_metric(v: Any) -> str:
    """A scoring metric name from a string or a ``Metric`` (MAE, MAPE, RMSE, SMAPE, ...)."""
    name = getattr(v, "value", v)
    if isinstance(name, str) and name.lower() in METRICS:
        return name.lower()
    raise ValueError(f"scoring_metric must be one of {', '.join(METRICS)} (or Metric.MAE, Metric.RMSE, ...), "
                     f"got {v!r}")


def coerce_timeout(v: Any) -> Optional[float]:
    if v is None:
        return None
    if isinstance(v, datetime.timedelta):
        v = v.total_seconds()
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"timeout must be a positive number of seconds or a datetime.timedelta, got {v!r}")
    return float(v)


class Search:
    """Base of GridSearch, RandomSearch, BayesianOptimization and MultiObjectiveOptimization.

    Builders return a modified copy (``search.with_n_jobs(2)`` leaves ``search`` as it was) and validate
    their argument at once. After a run, ``results`` holds the table of every trial."""

    method = "Search"
    n_objectives = 1
    _run_state = ("results",)  # what a run leaves behind; a modified copy starts without it

    def __init__(self) -> None:
        self.parameter_space = HyperparameterSpace()
        self.cv_folds = 3
        self.scoring_metric = "mae"
        self.n_jobs = 1
        self.timeout: Optional[float] = None
        self.seed = 0
        self.verbose = True
        self.horizon: Optional[int] = None
        self.input_size: Optional[int] = None
        self.training_config: Any = None
        self.model_type: Any = "mlp"
        self.threads_per_trial: Optional[int] = None
        self.cross_validator: Any = None
        self.results: Optional[SearchResults] = None

    @classmethod
    def new(cls):
        return cls()

    def _with(self, **kw):
        c = copy.copy(self)
        c.__dict__.update(kw)
        for name in self._run_state:
            setattr(c, name, None)
        return c

    # ---------------------------------------------------------------- shared builders
    def with_parameter_space(self, space: HyperparameterSpace):
        if not isinstance(space, HyperparameterSpace):
            raise TypeError(f"parameter_space must be a HyperparameterSpace, got {type(space).__name__}")
        return self._with(parameter_space=space)

    def with_cv_folds(self, k: int):
        """Folds of ``TimeSeriesCrossValidator(n_splits=k, test_size=horizon)`` scoring each trial of ``fit``."""
        return self._with(cv_folds=_int("cv_folds", k, 1))

    def with_cross_validator(self, validator: Any):
        """Score trials with this validator (e.g. ``TimeSeriesCrossValidator(...).with_alignment("end")`` for
        panels whose series do not share a calendar) instead of the default of ``with_cv_folds``; None: back
        to the default."""
        if validator is not None and not callable(getattr(validator, "cross_validate", None)):
            raise TypeError(f"cross_validator must have a cross_validate(model, data, config=, metrics=) method, "
                            f"got {type(validator).__name__}")
        if validator is not None and hasattr(validator, "with_verbose"):
            validator = validator.with_verbose(False)
        return self._with(cross_validator=validator)

    def with_scoring_metric(self, metric: Any):
        """``Metric.MAE`` (default), ``Metric.RMSE``, ``Metric.MAPE``, ``Metric.SMAPE`` or 'mse' / 'mase'; lower is better."""
        return self._with(scoring_metric=coerce_metric(metric))

    def with_n_jobs(self, n_jobs: int):
        """Trials run at once in worker processes; 1 (default) runs them here, -1 uses every core."""
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or (n_jobs < 1 and n_jobs != -1):
            raise ValueError(f"n_jobs must be an int >= 1 or -1 (all cores), got {n_jobs!r}")
        return self._with(n_jobs=int(n_jobs))

    def with_timeout(self, timeout: Any):
        """Time limit of the whole search (seconds or a ``datetime.timedelta``; None: no limit)."""
        return self._with(timeout=coerce_timeout(timeout))

    def with_seed(self, seed: int):
        return self._with(seed=_int("seed", seed, 0))

    def with_verbose(self, verbose: bool):
        """Progress on a terminal (silent otherwise, and with False)."""
        if not isinstance(verbose, bool):
            raise TypeError(f"verbose must be True or False, got {verbose!r}")
        return self._with(verbose=verbose)

    def with_horizon(self, horizon: int):
        """Forecast horizon of the searched models (default: the data's season length)."""
        return self._with(horizon=_int("horizon", horizon, 1))

    def with_input_size(self, input_size: int):
        """Input window of the searched models (default: 2 x horizon; may also be a searched parameter)."""
        return self._with(input_size=_int("input_size", input_size, 1))

    def with_training_config(self, config: Any):
        """The TrainingConfig each trial starts from (searched training fields replace its values)."""
        from ..training.config import TrainingConfig

        if not isinstance(config, TrainingConfig):
            raise TypeError(f"training_config must be a TrainingConfig, got {type(config).__name__}")
        return self._with(training_config=config)

    def with_model_type(self, model_type: Any):
        """Model class used when the space has no ``model_type`` dimension (default 'mlp')."""
        from .forecast import resolve_model_class

        resolve_model_class(model_type)
        return self._with(model_type=model_type)

    def with_threads_per_trial(self, threads: Optional[int]):
        """Kernel threads of each trial (default: unchanged with n_jobs=1, cores // workers otherwise).
        Fix it to get bitwise the same forecasting trials for every n_jobs."""
        return self._with(threads_per_trial=None if threads is None else _int("threads_per_trial", threads, 1))

    # ---------------------------------------------------------------- running
    def _check_ready(self) -> None:
        self.parameter_space.require_nonempty()

    def optimize(self, objective: Callable[[Dict[str, Any]], float]) -> SearchResults:
        """Minimise a plain function of the parameters: ``objective(params) -> float`` where ``params`` is a
        dict ``{name: value}``. Returns the results table (also kept as ``self.results``)."""
        if not callable(objective):
            raise TypeError(f"objective must be callable, got {type(objective).__name__}")
        self._check_ready()
        return self._execute(objective, self.n_objectives, ["value"])

    def _forecast_objective(self, data: Any, metrics: Sequence[str]):
        from ..data.frame import TimeSeriesDataFrame
        from .forecast import ForecastObjective, check_space

        if not isinstance(data, TimeSeriesDataFrame):
            raise TypeError(f"data must be a TimeSeriesDataFrame, got {type(data).__name__}")
        self._check_ready()
        horizon = self.horizon
        if horizon is None:
            m = getattr(getattr(data, "freq", None), "seasonality", None)
            if not m or m < 1:
                raise ValueError("set the forecast horizon with with_horizon(h): the data's frequency gives no season")
            horizon = int(m)
        input_size = self.input_size or 2 * horizon
        tc = self.training_config
        if tc is None:
            from ..training.config import TrainingConfig

            tc = TrainingConfig()
        tc = tc.with_verbose(False)
        check_space(self.parameter_space, horizon=horizon, input_size=input_size, training_config=tc,
                    default_model=self.model_type)
        return ForecastObjective(data, horizon=horizon, input_size=input_size, training_config=tc,
                                 cv_folds=self.cv_folds, metrics=metrics, default_model=self.model_type,
                                 validator=self.cross_validator)

    def fit(self, data: Any) -> BestConfiguration:
        """Search over forecasting models on ``data`` (a TimeSeriesDataFrame): each trial builds the model
        and TrainingConfig from its parameters and scores them by time-series cross-validation. Returns
        the best configuration; the table of every trial is ``self.results``."""
        objective = self._forecast_objective(data, [self.scoring_metric])
        res = self._execute(objective, 1, [self.scoring_metric])
        best = res.best
        cls, mcfg, tcfg = objective.build(best.params)
        return BestConfiguration(best.params, best.value, cls, mcfg, tcfg, best)

    async def fit_async(self, data: Any) -> BestConfiguration:
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, self.fit, data)

    def _execute(self, evaluator: Callable, n_objectives: int, objective_names: List[str]) -> SearchResults:
        from ..training.progress import Progress

        start = time.perf_counter()
        deadline = None if self.timeout is None else start + self.timeout
        session = Session(self, evaluator, n_objectives, objective_names, deadline)
        session.progress = Progress(self._expected_trials(), desc=self.method, enabled=self.verbose)
        workers = resolve_jobs(self.n_jobs)
        try:
            with Runner(evaluator, workers, self.threads_per_trial, deadline, n_objectives) as runner:
                session.runner = runner
                self._search(session)
        finally:
            session.progress.close()
        if session.runner.timed_out and not session.results.stopped_reason:
            session.results.stopped_reason = "timeout"
        if session.results.stopped_reason == "timeout":
            log.info("%s stopped by its timeout after %d trials", self.method, len(session.results))
        self.results = session.results
        return session.results

    # ---------------------------------------------------------------- for subclasses
    def _expected_trials(self) -> Optional[int]:
        return None

    def _search(self, session: "Session") -> None:
        raise NotImplementedError


class Session:
    """One run of a search: the trials so far and a way to evaluate more."""

    def __init__(self, search: Search, evaluator: Callable, n_objectives: int, objective_names: List[str],
                 deadline: Optional[float]):
        self.search = search
        self.evaluator = evaluator
        self.space = search.parameter_space
        self.rng = np.random.default_rng(search.seed)
        self.results = SearchResults([], self.space.names, objective_names, search.method)
        self.n_objectives = n_objectives
        self.deadline = deadline
        self.runner: Any = None
        self.progress: Any = None
        self.stopped = False

    @property
    def trials(self) -> List[Trial]:
        return self.results.trials

    def evaluate(self, batch: Sequence[Dict[str, Any]], stop_rule: Optional[Callable[[Trial], bool]] = None) -> List[Trial]:
        """Evaluate a batch (in trial order); ``stop_rule(trial)`` returning True ends the search after
        that trial. Returns the batch's trials (fewer when the search stopped)."""
        if self.stopped or not batch:
            return []
        out: List[Trial] = []

        def on_trial(t: Trial) -> bool:
            out.append(t)
            self.results.trials.append(t)
            self._report(t)
            if stop_rule is not None and stop_rule(t):
                self.results.stopped_reason = "early_stopping"
                return False
            return True

        more = self.runner.run(list(batch), len(self.results.trials), on_trial)
        if not more:
            self.stopped = True
        return out

    def _report(self, t: Trial) -> None:
        post = ""
        if self.n_objectives == 1:
            done = [x.value for x in self.results.trials if x.ok]
            if done:
                post = f"best {min(done):.5g}"
        log.debug("trial %d %s value=%s params=%s", t.number, t.status, t.value, t.params)
        self.progress.update(1, post)
