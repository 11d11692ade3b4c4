"""Fault-tolerant training: ``TrainingConfig().with_fault_tolerance(FaultTolerantTraining()...)``.

::

    fault_tolerant = (FaultTolerantTraining()
                      .with_auto_checkpoint(True)
                      .with_retry_on_failure(3)              # retry a failing epoch 3 times
                      .with_health_check_interval(60.0)      # seconds (or a datetime.timedelta)
                      .with_graceful_shutdown(True))

* ``auto_checkpoint``: when the config has no :class:`~neurodivergent.checkpointing.CheckpointConfig`, write
  a ``CheckpointStrategy.Latest`` checkpoint after every epoch into ``checkpoint_directory`` (with a
  CheckpointConfig its checkpoints serve and this changes nothing). A crashed process resumes from it:
  ``neurodivergent.load_checkpoint(latest_checkpoint(directory)).resume_training(data, config)``.
* ``retry_on_failure(n)``: an epoch that fails (any ``Exception``: a non-finite loss or parameters, an
  I/O error while writing a checkpoint, an error in a callback, ...) is run again from the **last good
  state**, at most ``n`` times in a row; the count starts again after an epoch succeeds. The last good
  state is kept **in memory**: a complete copy of the training state (the same content a checkpoint
  file holds: parameters, optimizer, random generators, logs, callbacks' state, position) taken after
  every finished epoch, so a retry reads nothing from disk and works without checkpoint files. After
  ``n`` failed retries :class:`TrainingFailedError` is raised; its ``attempts`` list every failure of the
  run (epoch, step, error type and message) and ``__cause__`` is the last error. A retried epoch is
  replayed exactly (same shuffling, dropout and augmentation draws): a deterministic failure such as a
  divergence with too high a learning rate fails every time, a transient one (disk full for a moment, a
  flaky callback) goes through. ``KeyboardInterrupt`` and ``SystemExit`` are never retried. With ``n = 0``
  errors propagate unchanged.
* ``health_check_interval``: a watchdog thread wakes up every interval and reports (``logging`` WARNING,
  and in ``logs.health_reports``) when no optimizer step or evaluation finished since its last check (a
  stall) or when the parameters hold NaN / inf. It only reports; the loop itself raises
  ``TrainingDivergedError`` for a non-finite loss or non-finite parameters at the end of an epoch.
* ``graceful_shutdown``: during training SIGTERM and SIGINT (Ctrl-C) do not kill the run: the current
  step finishes, a checkpoint ``<model>_interrupted_step_<S>.safetensors`` is written (into the
  CheckpointConfig's directory, else ``checkpoint_directory``), training ends normally (best weights
  restored, ``on_train_end`` called) and ``fit`` returns with ``logs.stopped_by == "SIGTERM"`` (or
  ``"SIGINT"``). A second signal aborts at once with ``KeyboardInterrupt`` (the model is then left as it
  was before ``fit``). The handlers are installed only while ``fit`` runs and the previous ones are put
  back afterwards (a handler that was not installed from Python comes back as ``SIG_DFL``). Python
  allows signal handlers only in the main thread: ``fit`` running in another thread (``fit_async``, a
  thread pool) installs nothing, logs a warning, and signals keep their usual effect there.
"""
from __future__ import annotations

import datetime
import logging
import math
import numbers
import signal
import threading
import time
from typing import Any, Dict, List, Optional

import numpy as np

from .._config import boolean, cfg_field, config_class, nonneg_int

log = logging.getLogger("neurodivergent")


def _interval(name: str, v: Any) -> Optional[float]:
    if v is None:
        return None
    if isinstance(v, datetime.timedelta):
        v = v.total_seconds()
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be seconds (a number) or a datetime.timedelta, got {type(v).__name__} {v!r}")
    v = float(v)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {v}")
    return v


def _dir(name: str, v: Any) -> str:
    import os

    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    if not isinstance(v, str) or not v:
        raise TypeError(f"{name} must be a non-empty path, got {v!r}")
    return v


@config_class
class FaultTolerantTraining:
    """Automatic checkpoints, retries, a health watchdog and graceful shutdown (see the module docs)."""

    auto_checkpoint: bool = cfg_field(False, boolean, "Checkpoint every epoch when no CheckpointConfig is set.")
    retry_on_failure: int = cfg_field(0, nonneg_int, "Retries of a failing epoch from the last good state.")
    health_check_interval: Optional[float] = cfg_field(None, _interval, "Watchdog period in seconds (None: off).")
    graceful_shutdown: bool = cfg_field(False, boolean, "SIGTERM / SIGINT: finish the step, checkpoint, return.")
    checkpoint_directory: str = cfg_field("checkpoints", _dir,
                                          "Directory for auto / shutdown checkpoints without a CheckpointConfig.")


class TrainingFailedError(RuntimeError):
    """Training failed after every retry; ``attempts`` holds the history of the failures."""

    def __init__(self, message: str, attempts: List[Dict[str, Any]]):
        super().__init__(message)
        self.attempts = attempts


# ------------------------------------------------------------------------------------------ signals
class GracefulShutdown:
    """Context manager: while active, the first SIGTERM / SIGINT sets ``requested`` (the signal's name),
    a second one raises KeyboardInterrupt. Installs nothing outside the main thread."""

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.requested: Optional[str] = None
        self._previous: Dict[int, Any] = {}

    def _handler(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested is not None:
            raise KeyboardInterrupt(f"second signal ({name}) during graceful shutdown: aborting")
        self.requested = name
        log.warning("%s received: finishing the current step, writing a checkpoint and stopping "
                    "(send it again to abort)", name)

    def __enter__(self) -> "GracefulShutdown":
        if not self.enabled:
            return self
        if threading.current_thread() is not threading.main_thread():
            log.warning("graceful_shutdown: fit runs outside the main thread, where Python cannot install "
                        "signal handlers; SIGTERM / SIGINT keep their usual effect")
            return self
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is None:  # pragma: no cover - SIGTERM exists everywhere Python runs
                continue
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        self._previous.clear()


# ------------------------------------------------------------------------------------------ watchdog
class Watchdog:
    """A daemon thread that reports stalls and non-finite parameters every ``interval`` seconds."""

    def __init__(self, interval: Optional[float], params: np.ndarray, model_name: str):
        self.interval = interval
        self.params = params
        self.model_name = model_name
        self.reports: List[Dict[str, Any]] = []
        self._beats = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def beat(self) -> None:
        """Called by the loop after every step and evaluation (one integer increment)."""
        self._beats += 1

    def _report(self, kind: str, message: str) -> None:
        self.reports.append({"time": time.time(), "kind": kind, "message": message})
        log.warning("%s health check: %s", self.model_name, message)

    def _run(self) -> None:
        seen = self._beats
        last = time.monotonic()
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            beats = self._beats
            if beats == seen:
                self._report("stall", f"no training step finished in the last {now - last:.3g} s")
            else:
                seen, last = beats, now
            if not np.all(np.isfinite(self.params)):
                bad = int(np.count_nonzero(~np.isfinite(self.params)))
                self._report("non_finite", f"{bad} of {self.params.size} parameters are NaN or inf")

    def __enter__(self) -> "Watchdog":
        if self.interval is not None:
            self._thread = threading.Thread(target=self._run, name="neurodivergent-watchdog", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


__all__ = ["FaultTolerantTraining", "TrainingFailedError"]
