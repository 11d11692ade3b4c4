"""Callbacks: user code that runs at fixed points of the training loop.

Subclass :class:`Callback` and override any of the hooks::

    class CustomLRScheduler(Callback):
        def on_epoch_end(self, epoch, logs):
            if logs.get_metric("validation_loss", math.inf) > 1.0:
                logs.set_learning_rate(logs.get_metric("learning_rate") * 0.5)
            return CallbackResult.Continue

Hooks and arguments (indices are 0-based; ``logs`` is the run's :class:`TrainingLogs`):

* ``on_train_begin(logs)`` once, after the parameters are initialised;
* ``on_epoch_begin(epoch, logs)``;
* ``on_batch_end(step, logs)`` after every optimizer step (``logs.step_losses[step]``,
  ``logs.step_lrs[step]`` are that step's loss and rate);
* ``on_epoch_end(epoch, logs)`` after the epoch's metrics are in ``logs.history``; returns
  ``CallbackResult.Continue`` (``None`` counts as Continue) or ``CallbackResult.Stop``;
* ``on_train_end(logs)`` once, after the best weights are restored (if early stopping restores them),
  also when training stops early.

Order is deterministic: the config's callbacks in list order, then the built-ins (early stopping,
then checkpointing), then the monitor's logging and plotting. Every callback sees every epoch end, even
when an earlier one asked to stop; training stops after that epoch if any of them returned ``Stop``.
``on_batch_end`` may also return ``Stop``: the current epoch is then closed (metrics, callbacks) and
training ends. Callbacks are ordinary (mutable) objects: the same instance passed to several ``fit``
calls keeps its attributes, so reset them in ``on_train_begin`` when that matters. During ``fit`` the
attribute ``callback.model`` is the model being trained.
"""
from __future__ import annotations

import enum
import math
from typing import Any, Dict, Optional

from .config import Metric, Mode


class CallbackResult(enum.Enum):
    Continue = "continue"
    Stop = "stop"

    def __repr__(self) -> str:
        return f"CallbackResult.{self.name}"


class Callback:
    """Base class: every hook does nothing and returns ``CallbackResult.Continue``."""

    model: Any = None

    def on_train_begin(self, logs) -> None:
        pass

    def on_train_end(self, logs) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs) -> Optional[CallbackResult]:
        return CallbackResult.Continue

    def on_batch_end(self, step: int, logs) -> Optional[CallbackResult]:
        return CallbackResult.Continue


def check_result(cb: Any, hook: str, result: Any) -> bool:
    """True when a hook asked to stop; a value other than None / Continue / Stop is a TypeError."""
    if result is None or result is CallbackResult.Continue:
        return False
    if result is CallbackResult.Stop:
        return True
    raise TypeError(f"{type(cb).__name__}.{hook} must return CallbackResult.Continue, CallbackResult.Stop or "
                    f"None, got {result!r}")


def _is_better(value: float, best: float, mode: Mode, min_delta: float) -> bool:
    if value is None or math.isnan(value):
        return False
    if mode is Mode.Minimize:
        return value < best - min_delta
    return value > best + min_delta


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs (never below ``min_lr``), then wait ``cooldown`` epochs before
    counting again. Like ``torch.optim.lr_scheduler.ReduceLROnPlateau`` with ``threshold_mode='abs'``.
    The new rate applies from the next step (through ``logs.set_learning_rate``), so it replaces any
    schedule from then on. A monitored metric that is not recorded (e.g. the validation loss without a
    validation part) falls back to the training loss."""

    def __init__(self, patience: int = 10, factor: float = 0.1, min_lr: float = 0.0, min_delta: float = 1e-4,
                 monitor: Any = Metric.ValidationLoss, mode: Any = Mode.Minimize, cooldown: int = 0):
        from .._config import nonneg_float, nonneg_int, positive_int

        self.patience = positive_int("patience", patience)
        factor = float(factor) if not isinstance(factor, bool) and isinstance(factor, (int, float)) else factor
        if not isinstance(factor, float) or not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        self.factor = factor
        self.min_lr = nonneg_float("min_lr", min_lr)
        self.min_delta = nonneg_float("min_delta", min_delta)
        self.monitor = Metric.coerce("monitor", monitor)
        self.mode = Mode.coerce("mode", mode)
        self.cooldown = nonneg_int("cooldown", cooldown)
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode is Mode.Minimize else -math.inf
        self.wait = 0
        self.cooldown_left = 0
        self.reductions = 0

    def on_train_begin(self, logs) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs) -> CallbackResult:
        value = logs.get_metric(self.monitor)
        if value is None:
            value = logs.get_metric(Metric.TrainingLoss)
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if _is_better(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience:
                lr = logs.learning_rate_override or logs.get_metric(Metric.LearningRate)
                new_lr = max(lr * self.factor, self.min_lr)
                if new_lr < lr and new_lr > 0:
                    logs.set_learning_rate(new_lr)
                    self.reductions += 1
                self.wait, self.cooldown_left = 0, self.cooldown
        return CallbackResult.Continue

    def to_dict(self) -> Dict[str, Any]:
        return {"class": "ReduceLROnPlateau", "patience": self.patience, "factor": self.factor,
                "min_lr": self.min_lr, "min_delta": self.min_delta, "monitor": self.monitor.value,
                "mode": self.mode.value, "cooldown": self.cooldown}

    def __repr__(self) -> str:
        return (f"ReduceLROnPlateau(patience={self.patience}, factor={self.factor}, min_lr={self.min_lr}, "
                f"min_delta={self.min_delta}, monitor={self.monitor!r}, mode={self.mode!r})")


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, on_train_begin=None, on_train_end=None, on_epoch_begin=None, on_epoch_end=None,
                 on_batch_end=None):
        self._fns = dict(on_train_begin=on_train_begin, on_train_end=on_train_end, on_epoch_begin=on_epoch_begin,
                         on_epoch_end=on_epoch_end, on_batch_end=on_batch_end)
        for k, f in self._fns.items():
            if f is not None and not callable(f):
                raise TypeError(f"{k} must be callable, got {type(f).__name__}")

    def on_train_begin(self, logs):
        f = self._fns["on_train_begin"]
        return f(logs) if f else None

    def on_train_end(self, logs):
        f = self._fns["on_train_end"]
        return f(logs) if f else None

    def on_epoch_begin(self, epoch, logs):
        f = self._fns["on_epoch_begin"]
        return f(epoch, logs) if f else None

    def on_epoch_end(self, epoch, logs):
        f = self._fns["on_epoch_end"]
        return f(epoch, logs) if f else None

    def on_batch_end(self, step, logs):
        f = self._fns["on_batch_end"]
        return f(step, logs) if f else None


_SERIALISABLE = {"ReduceLROnPlateau": ReduceLROnPlateau}


def callback_from_dict(d: Dict[str, Any]) -> Callback:
    """Rebuild a built-in callback from its ``to_dict()`` (only the built-in classes: no code is loaded)."""
    d = dict(d)
    name = d.pop("class", None)
    if name not in _SERIALISABLE:
        raise ValueError(f"unknown callback class {name!r} in dict; known: {', '.join(sorted(_SERIALISABLE))}")
    return _SERIALISABLE[name](**d)


# ------------------------------------------------------------------------- built-ins used by the trainer
class EarlyStoppingCallback(Callback):
    """The built-in callback behind ``TrainingConfig.early_stopping`` (see :class:`EarlyStopping`)."""

    def __init__(self, es, metric: Metric, snapshot, restore):
        self.es = es
        self.metric = metric
        self._snapshot = snapshot  # () -> state
        self._restore = restore  # state -> None
        self.best = math.inf if es.mode is Mode.Minimize else -math.inf
        self.best_state = None
        self.wait = 0

    def on_epoch_end(self, epoch: int, logs) -> CallbackResult:
        value = logs.get_metric(self.metric)
        if _is_better(value, self.best, self.es.mode, self.es.min_delta):
            self.best, self.wait, logs.best_epoch = value, 0, epoch + 1
            if self.es.restore_best_weights:
                self.best_state = self._snapshot()
            return CallbackResult.Continue
        self.wait += 1
        if self.wait >= self.es.patience:
            logs.stopped_early = True
            return CallbackResult.Stop
        return CallbackResult.Continue

    def restore_best(self) -> None:
        if self.es.restore_best_weights and self.best_state is not None:
            self._restore(self.best_state)


__all__ = ["Callback", "CallbackResult", "ReduceLROnPlateau", "LambdaCallback", "callback_from_dict"]
