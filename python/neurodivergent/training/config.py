"""Training configuration (immutable; every ``with_*`` validates at once).

Definitions used throughout the library:

* a **step** is one optimizer update on one batch of ``batch_size`` windows;
* an **epoch** is one pass over every training window (the (series, cutoff) pairs whose targets lie
  before the validation part), in a freshly shuffled order; training stops after ``max_epochs``
  epochs or ``max_steps`` steps, whichever comes first;
* ``validation_split`` holds out, for every series, the last ``max(horizon, ceil(split * length))``
  time steps: training windows have their targets before that part, validation windows have their
  targets inside it (their inputs may reach back into the training part, which is the past).
"""
from __future__ import annotations

from typing import Optional, Union

from .._config import (
    boolean,
    cfg_field,
    config_class,
    fraction,
    nonneg_float,
    nonneg_int,
    one_of,
    optional,
    positive_float,
    positive_int,
)

LOSSES = ("mae", "mse", "huber")


@config_class
class EarlyStopping:
    """Stop when the monitored loss has not improved by more than ``min_delta`` for ``patience``
    epochs. The monitor is the validation loss when there is a validation part, otherwise the
    training loss. With ``restore_best_weights`` the parameters of the best epoch are put back."""

    patience: int = cfg_field(10, positive_int, "Epochs without improvement before stopping.")
    min_delta: float = cfg_field(0.0, nonneg_float, "Smallest decrease that counts as an improvement.")
    restore_best_weights: bool = cfg_field(True, boolean, "Put back the best epoch's parameters.")


def _early(name, v):
    if v is None or isinstance(v, EarlyStopping):
        return v
    raise TypeError(f"{name} must be an EarlyStopping or None, got {type(v).__name__}")


@config_class
class TrainingConfig:
    """How a model is trained. See the module docstring for what a step and an epoch are."""

    max_epochs: int = cfg_field(100, positive_int, "Upper bound on epochs.")
    max_steps: Optional[int] = cfg_field(None, optional(positive_int), "Upper bound on optimizer steps.")
    learning_rate: float = cfg_field(1e-3, positive_float, "Adam learning rate.")
    batch_size: int = cfg_field(32, positive_int, "Windows per step.")
    validation_split: float = cfg_field(0.0, fraction, "Fraction of each series' end held out for validation.")
    early_stopping: Optional[EarlyStopping] = cfg_field(None, _early, "Early stopping, or None.")
    checkpoint_every: Optional[int] = cfg_field(None, optional(positive_int), "Save the model every N epochs.")
    checkpoint_dir: str = cfg_field("checkpoints", lambda n, v: _str(n, v), "Where checkpoint_every saves.")
    loss_function: str = cfg_field("mae", one_of(*LOSSES), "Training loss: 'mae', 'mse' or 'huber'.")
    huber_delta: float = cfg_field(1.0, positive_float, "Delta of the Huber loss.")
    verbose: bool = cfg_field(True, boolean, "Progress bar on a terminal and epoch logs (silent when not a TTY).")
    seed: int = cfg_field(0, nonneg_int, "Seeds initialisation, shuffling and dropout: same seed, same run.")

    def with_early_stopping(self, early_stopping: Union[EarlyStopping, int, None] = None, *, patience=None,
                            min_delta=None, restore_best_weights=None) -> "TrainingConfig":
        """``with_early_stopping(patience=15)`` (the guide's shortcut) or ``with_early_stopping(EarlyStopping()...)``."""
        if isinstance(early_stopping, int) and not isinstance(early_stopping, bool):
            patience, early_stopping = early_stopping, None
        if early_stopping is None and (patience is not None or min_delta is not None
                                       or restore_best_weights is not None):
            es = EarlyStopping()
            if patience is not None:
                es = es.with_patience(patience)
            if min_delta is not None:
                es = es.with_min_delta(min_delta)
            if restore_best_weights is not None:
                es = es.with_restore_best_weights(restore_best_weights)
            early_stopping = es
        import dataclasses

        return dataclasses.replace(self, early_stopping=early_stopping)


def _str(name, v):
    if not isinstance(v, str) or not v:
        raise TypeError(f"{name} must be a non-empty str, got {v!r}")
    return v
