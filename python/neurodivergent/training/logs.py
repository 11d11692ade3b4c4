"""Training history returned by ``fit`` and kept on the model as ``model.training_logs``."""
from __future__ import annotations

from typing import Dict, List, Optional


class TrainingLogs:
    """Per-epoch history: ``history[name]`` is a list with one value per finished epoch.

    Names used by the trainer: ``epoch``, ``step``, ``training_loss``, ``validation_loss`` (when there is a
    validation part), ``learning_rate``, ``epoch_time``.
    """

    def __init__(self) -> None:
        self.history: Dict[str, List[float]] = {}
        self.step_losses: List[float] = []  # training loss of every step, in order
        self.stopped_early = False
        self.best_epoch: Optional[int] = None

    def append(self, **values: float) -> None:
        for k, v in values.items():
            self.history.setdefault(k, []).append(v)

    def get_metric(self, name: str) -> Optional[float]:
        """The latest value of a metric, or None if it was never recorded."""
        vals = self.history.get(name)
        return vals[-1] if vals else None

    def __len__(self) -> int:
        return len(self.history.get("epoch", []))

    def to_dict(self) -> Dict[str, object]:
        return {"history": self.history, "stopped_early": self.stopped_early, "best_epoch": self.best_epoch,
                "step_losses": self.step_losses}

    @classmethod
    def from_dict(cls, d: Dict[str, object]) -> "TrainingLogs":
        logs = cls()
        logs.history = {k: list(v) for k, v in dict(d.get("history", {})).items()}
        logs.step_losses = [float(x) for x in d.get("step_losses", [])]  # type: ignore[union-attr]
        logs.stopped_early = bool(d.get("stopped_early", False))
        logs.best_epoch = d.get("best_epoch")  # type: ignore[assignment]
        return logs

    def __repr__(self) -> str:
        last = {k: v[-1] for k, v in self.history.items() if v}
        return f"TrainingLogs({len(self)} epochs, last={last})"
