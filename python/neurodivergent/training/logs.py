"""Training history returned by ``fit`` and kept on the model as ``model.training_logs``."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional


class TrainingLogs:
    """Per-epoch history: ``history[name]`` is a list with one value per finished epoch.

    Names recorded by the trainer: ``epoch`` (epochs finished), ``step`` (optimizer steps taken),
    ``training_loss`` (mean loss of the epoch's steps, without L1/L2 penalty terms), ``validation_loss``
    (when there is a validation part), ``learning_rate`` (the rate of the epoch's last step),
    ``epoch_time`` (seconds), and, when a :class:`~neurodivergent.training.monitor.TrainingMonitor` or
    early stopping asks for them, ``mae``, ``mape``, ``rmse``, ``smape`` (validation windows, original
    scale) and ``gradient_norm`` (mean global gradient norm before clipping).

    Per step: ``step_losses[i]`` and ``step_lrs[i]`` are the loss and the learning rate of step ``i``
    (0-based), exactly the rate the optimizer used.

    Callbacks receive this object: ``get_metric(name)`` reads the latest value (``Metric`` members work
    too) and ``set_learning_rate(lr)`` sets the rate used from the next step on.
    """

    def __init__(self) -> None:
        self.history: Dict[str, List[float]] = {}
        self.step_losses: List[float] = []  # training loss of every step, in order
        self.step_lrs: List[float] = []  # learning rate the optimizer used at every step
        self.stopped_early = False
        self.stopped_by: Optional[str] = None  # class name of the callback that stopped training
        self.best_epoch: Optional[int] = None
        self._lr_override: Optional[float] = None

    def append(self, **values: float) -> None:
        for k, v in values.items():
            self.history.setdefault(k, []).append(v)

    def get_metric(self, name: Any, default: Optional[float] = None) -> Optional[float]:
        """The latest value of a metric (``"validation_loss"`` or ``Metric.ValidationLoss``), or
        ``default`` (None) if it was never recorded."""
        key = getattr(name, "value", name)
        vals = self.history.get(key)
        return vals[-1] if vals else default

    def set_learning_rate(self, lr: float) -> None:
        """Use ``lr`` from the next optimizer step on (it replaces the schedule and the warmup, and stays
        until set again). Raises ValueError for a rate that is not a finite positive number."""
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) and not hasattr(lr, "__float__"):
            raise TypeError(f"learning_rate must be a number, got {type(lr).__name__}")
        lr = float(lr)
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning_rate must be a finite number > 0, got {lr}")
        self._lr_override = lr

    @property
    def learning_rate_override(self) -> Optional[float]:
        """The rate set with :meth:`set_learning_rate`, or None."""
        return self._lr_override

    def __len__(self) -> int:
        return len(self.history.get("epoch", []))

    def to_dict(self) -> Dict[str, object]:
        return {"history": self.history, "stopped_early": self.stopped_early, "best_epoch": self.best_epoch,
                "step_losses": self.step_losses, "step_lrs": self.step_lrs, "stopped_by": self.stopped_by}

    @classmethod
    def from_dict(cls, d: Dict[str, object]) -> "TrainingLogs":
        logs = cls()
        logs.history = {k: list(v) for k, v in dict(d.get("history", {})).items()}
        logs.step_losses = [float(x) for x in d.get("step_losses", [])]  # type: ignore[union-attr]
        logs.step_lrs = [float(x) for x in d.get("step_lrs", [])]  # type: ignore[union-attr]
        logs.stopped_early = bool(d.get("stopped_early", False))
        logs.stopped_by = d.get("stopped_by")  # type: ignore[assignment]
        logs.best_epoch = d.get("best_epoch")  # type: ignore[assignment]
        return logs

    def __repr__(self) -> str:
        last = {k: v[-1] for k, v in self.history.items() if v}
        return f"TrainingLogs({len(self)} epochs, last={last})"
