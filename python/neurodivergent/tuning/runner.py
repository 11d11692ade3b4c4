"""Running trials: in this process (``n_jobs == 1``) or in worker processes (``n_jobs > 1``).

Determinism: a search decides *which* points to evaluate before it sees any of their results (a whole
grid, every random draw, a Bayesian batch, an NSGA-II generation), and results are handed back to it
in trial order, whatever order the workers finish in. So the same seed gives the same trials and the
same table for any ``n_jobs`` (as long as the objective itself is deterministic; the kernels of a
forecasting trial are bitwise repeatable for a fixed thread count, see ``threads_per_trial``).

Worker processes are started with the ``spawn`` method (safe with the OpenMP runtime of the kernels),
get the objective once (it must be picklable: a module-level function or an object of a module-level
class) and run one trial at a time. The objective is pickled here and unpickled in the worker's
initializer — in memory, over the pipe of a pool this search started, as multiprocessing sends every
argument; doing it by hand lets a worker that cannot rebuild it report the error instead of crashing at
start-up forever. Pickle never reads a file anywhere in the library: model and checkpoint files are
safetensors + JSON (tests/test_no_pickle.py checks that loading them never unpickles). When the search's time runs out, the workers are terminated: trials
still running are recorded with status ``"timeout"``. In this process a running trial cannot be
interrupted; the time limit is checked before each trial starts.
"""
from __future__ import annotations

import logging
import math
import numbers
import os
import pickle
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from .results import FAILED, OK, TIMEOUT, Trial

log = logging.getLogger("neurodivergent")

# --------------------------------------------------------------------- evaluation (both sides)
_WORKER: Dict[str, Any] = {}


def _call(evaluator: Callable, params: Dict[str, Any]) -> Tuple[str, Any, str, float, Dict[str, Any]]:
    """Run one trial: (status, raw value, error, seconds, extra). Never raises for a failing objective."""
    t0 = time.perf_counter()
    try:
        out = evaluator(dict(params))
        extra: Dict[str, Any] = {}
        if getattr(evaluator, "returns_extra", False):
            out, extra = out
        return OK, out, "", time.perf_counter() - t0, dict(extra)
    except Exception as exc:  # the trial failed; the search goes on and records why
        return FAILED, None, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0, {}


def _worker_init(threads: int, evaluator_bytes: bytes) -> None:
    # never raise here: a failing initializer makes the pool restart its workers forever
    try:
        from .. import set_num_threads

        set_num_threads(threads)
        evaluator = pickle.loads(evaluator_bytes)
        warm_up = getattr(evaluator, "warm_up", None)
        if callable(warm_up):  # imports done once per worker, not inside the first trial's duration
            warm_up()
        _WORKER["evaluator"] = evaluator
    except Exception as exc:
        _WORKER["error"] = (f"the worker process could not load the objective ({type(exc).__name__}: {exc}); "
                            f"with n_jobs > 1 it must be importable, e.g. a function defined in a module")


def _worker_run(params: Dict[str, Any]):
    if "evaluator" not in _WORKER:
        return FAILED, None, _WORKER.get("error", "the worker has no objective"), 0.0, {}
    return _call(_WORKER["evaluator"], params)


def coerce_value(raw: Any, n_objectives: int, number: int) -> Tuple[Any, str]:
    """(value, error): a float or a tuple of floats; a non-finite value becomes a failed trial."""
    def num(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"trial {number}: the objective must return "
                            f"{'a number' if n_objectives == 1 else f'a tuple of {n_objectives} numbers'}, "
                            f"got {type(raw).__name__} {raw!r}")
        return float(v)

    if n_objectives == 1:
        if isinstance(raw, (tuple, list)) and len(raw) == 1:
            raw = raw[0]
        v = num(raw)
        return (v, "") if math.isfinite(v) else (None, f"the objective returned {v}")
    if not isinstance(raw, (tuple, list)) or len(raw) != n_objectives:
        raise TypeError(f"trial {number}: the objective must return a tuple of {n_objectives} numbers "
                        f"(one per objective), got {raw!r}")
    vals = tuple(num(v) for v in raw)
    if not all(math.isfinite(v) for v in vals):
        return None, f"the objective returned {vals}"
    return vals, ""


def resolve_jobs(n_jobs: int) -> int:
    cores = os.cpu_count() or 1
    return cores if n_jobs == -1 else int(n_jobs)


class Runner:
    """Evaluates batches of points in trial order. ``deadline`` is a ``time.perf_counter()`` value."""

    def __init__(self, evaluator: Callable, n_workers: int, threads: Optional[int], deadline: Optional[float],
                 n_objectives: int = 1):
        self.evaluator = evaluator
        self.n_workers = max(1, int(n_workers))
        self.threads = threads
        self.deadline = deadline
        self.n_objectives = n_objectives
        self.pool = None
        self.timed_out = False

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> "Runner":
        if self.n_workers > 1:
            try:
                payload = pickle.dumps(self.evaluator)
            except Exception as exc:
                raise TypeError(f"with n_jobs > 1 the objective is sent to worker processes and must be picklable "
                                f"(a module-level function or an instance of a module-level class): {exc}") from None
            import multiprocessing as mp

            cores = os.cpu_count() or 1
            threads = self.threads or max(1, cores // self.n_workers)
            # the workers inherit the environment at start: cap numpy's BLAS (and OpenMP) threads there
            # too, so that n workers do not each start one thread per core
            names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ND_NUM_THREADS")
            saved = {k: os.environ.get(k) for k in names}
            os.environ.update({k: str(threads) for k in names})
            try:
                self.pool = mp.get_context("spawn").Pool(self.n_workers, initializer=_worker_init,
                                                         initargs=(threads, payload))
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            # every result the search uses has been collected: trials still running (after an early stop
            # or a timeout) are abandoned
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def _time_left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.perf_counter()

    # ---------------------------------------------------------------- one batch
    def run(self, batch: Sequence[Dict[str, Any]], first_number: int,
            on_trial: Callable[[Trial], bool]) -> bool:
        """Evaluate ``batch`` (trial numbers from ``first_number``), calling ``on_trial`` in trial order; it
        returns False to stop. Returns False when the search must stop (``on_trial`` said so or the time ran
        out)."""
        if self.pool is None:
            return self._run_here(batch, first_number, on_trial)
        return self._run_pool(batch, first_number, on_trial)

    def _make(self, number: int, params: Dict[str, Any], result) -> Trial:
        status, raw, err, dt, extra = result
        value = None
        if status == OK:
            value, err = coerce_value(raw, self.n_objectives, number)
            if value is None:
                status = FAILED
        if status == FAILED:
            log.warning("trial %d failed: %s (params %s)", number, err, params)
        return Trial(number=number, params=dict(params), value=value, status=status, error=err, duration=dt,
                     extra=extra)

    def _run_here(self, batch, first, on_trial) -> bool:
        from .. import get_num_threads, set_num_threads

        for i, params in enumerate(batch):
            if self._time_left() <= 0:
                self.timed_out = True
                return False
            prev = None
            if self.threads:
                prev = get_num_threads()
                set_num_threads(self.threads)
            try:
                result = _call(self.evaluator, params)
            finally:
                if prev is not None:
                    set_num_threads(prev)
            if not on_trial(self._make(first + i, params, result)):
                return False
        return True

    def _run_pool(self, batch, first, on_trial) -> bool:
        n = len(batch)
        window = 2 * self.n_workers
        pending: Dict[int, Any] = {}
        submitted = consumed = 0
        while consumed < n:
            while submitted < n and submitted - consumed < window and self._time_left() > 0:
                pending[submitted] = self.pool.apply_async(_worker_run, (batch[submitted],))
                submitted += 1
            if consumed not in pending:  # time ran out before this trial could start
                self.timed_out = True
                return False
            ar = pending[consumed]
            left = self._time_left()
            ar.wait(None if math.isinf(left) else max(0.0, left))
            if not ar.ready():
                # out of time: finished trials are kept, running ones recorded as timed out
                self.timed_out = True
                for j in range(consumed, submitted):
                    a = pending.pop(j)
                    if a.ready():
                        t = self._make(first + j, batch[j], a.get())
                    else:
                        t = Trial(number=first + j, params=dict(batch[j]), status=TIMEOUT,
                                  error="still running when the search's time ran out")
                    if not on_trial(t):
                        break
                return False
            t = self._make(first + consumed, batch[consumed], pending.pop(consumed).get())
            consumed += 1
            if not on_trial(t):
                return False
        return True
