"""What to checkpoint, when and where: ``TrainingConfig().with_checkpointing(CheckpointConfig()...)``.

::

    checkpoint_config = (CheckpointConfig()
                         .with_save_directory("checkpoints/")
                         .with_strategy(CheckpointStrategy.BestValidationLoss)
                         .with_save_frequency(SaveFrequency.EveryNEpochs(10))
                         .with_keep_last_n(5)            # keep only the last 5 checkpoints
                         .with_compression(True)         # gzip (standard library)
                         .with_metadata(True))           # training metadata in the header

**Save points** come from ``save_frequency``: after every n-th epoch (``EveryNEpochs(n)``, after the
epoch's callbacks and early stopping) or after every n-th optimizer step (``EveryNSteps(n)``, counted
over the whole run). At a save point the **strategy** decides what is written:

* ``CheckpointStrategy.Every``: a new file ``<model>_epoch_<E>.safetensors`` (or ``<model>_step_<S>``
  with ``EveryNSteps``) at every save point;
* ``CheckpointStrategy.Latest``: the same files, but only the newest is kept (``keep_last_n`` = 1);
* ``CheckpointStrategy.BestValidationLoss``: a new file ``<model>_best_epoch_<E>.safetensors`` only when the
  validation loss of the last finished epoch (the training loss when there is no validation part) is
  lower than at every earlier save; so the newest file is always the best one so far.

``keep_last_n`` (None: keep everything) then deletes the oldest files written by this run (a resumed
run continues the list of the run it resumes), after the new file is safely on disk: at any instant at
least one complete checkpoint exists. ``<model>`` is the model class name in lower case. Every
checkpoint holds the complete training state, so training can be resumed from any of them.

**Compression** (``True`` = ``"gzip"``, or ``"lzma"``): the file is the gzip (``.safetensors.gz``) or xz
(``.safetensors.xz``) stream of exactly the bytes of the uncompressed checkpoint, which is a plain
safetensors file: ``gunzip`` / ``unxz`` gives a file that any safetensors reader loads. Parameters
compress poorly (float noise), optimizer moments at the start and zero-initialised buffers very well.

**Metadata** (``True``): a ``training_metadata`` JSON entry in the header with the training config,
the last epoch's metrics, timestamps (run start, save time, UTC ISO 8601) and the library, Python and
numpy versions. The state needed to resume is always written, whatever this flag says.
"""
from __future__ import annotations

import enum
import os
from typing import Any, Optional

from .._config import boolean, cfg_field, config_class, optional, positive_int


class CheckpointStrategy(str, enum.Enum):
    """Which files a save point writes and keeps (see the module docstring)."""

    Every = "every"
    Latest = "latest"
    BestValidationLoss = "best_validation_loss"

    @classmethod
    def coerce(cls, name: str, v: Any) -> "CheckpointStrategy":
        if isinstance(v, CheckpointStrategy):
            return v
        if isinstance(v, str):
            for m in cls:
                if v.lower() in (m.value, m.name.lower()):
                    return m
        raise ValueError(f"{name} must be one of {', '.join('CheckpointStrategy.' + m.name for m in cls)}, "
                         f"got {v!r}")

    def __repr__(self) -> str:
        return f"CheckpointStrategy.{self.name}"


@config_class
class SaveFrequency:
    """How often a save point comes: ``SaveFrequency.EveryNEpochs(n)`` or ``SaveFrequency.EveryNSteps(n)``."""

    unit: str = cfg_field("epochs", lambda n, v: _unit(n, v), "'epochs' or 'steps'.")
    n: int = cfg_field(1, positive_int, "Every n epochs / optimizer steps.")

    @staticmethod
    def EveryNEpochs(n: int) -> "SaveFrequency":
        """A save point after every n-th epoch."""
        return SaveFrequency(unit="epochs", n=n)

    @staticmethod
    def EveryNSteps(n: int) -> "SaveFrequency":
        """A save point after every n-th optimizer step (counted over the whole run)."""
        return SaveFrequency(unit="steps", n=n)

    @property
    def per_epoch(self) -> bool:
        return self.unit == "epochs"

    def __repr__(self) -> str:
        return f"SaveFrequency.EveryN{'Epochs' if self.per_epoch else 'Steps'}({self.n})"


def _unit(name: str, v: Any) -> str:
    if v not in ("epochs", "steps"):
        raise ValueError(f"{name} must be 'epochs' or 'steps', got {v!r}")
    return v


def _directory(name: str, v: Any) -> str:
    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    if not isinstance(v, str) or not v:
        raise TypeError(f"{name} must be a non-empty path (str or os.PathLike), got {v!r}")
    return v


def _frequency(name: str, v: Any) -> SaveFrequency:
    if isinstance(v, SaveFrequency):
        return v
    raise TypeError(f"{name} must be SaveFrequency.EveryNEpochs(n) or SaveFrequency.EveryNSteps(n), got {v!r}")


COMPRESSIONS = ("gzip", "lzma")


def _compression(name: str, v: Any) -> Optional[str]:
    if v is None or v is False:
        return None
    if v is True:
        return "gzip"
    if isinstance(v, str) and v.lower() in COMPRESSIONS:
        return v.lower()
    raise ValueError(f"{name} must be True / False or one of {', '.join(map(repr, COMPRESSIONS))}, got {v!r}")


@config_class
class CheckpointConfig:
    """Automatic checkpoints during training (see the module docstring for the files written)."""

    save_directory: str = cfg_field("checkpoints", _directory, "Directory of the checkpoint files (created).")
    strategy: CheckpointStrategy = cfg_field(CheckpointStrategy.Every, CheckpointStrategy.coerce,
                                             "CheckpointStrategy.Every / .Latest / .BestValidationLoss.")
    save_frequency: SaveFrequency = cfg_field(SaveFrequency(), _frequency,
                                              "SaveFrequency.EveryNEpochs(n) or .EveryNSteps(n).")
    keep_last_n: Optional[int] = cfg_field(None, optional(positive_int), "Keep the n newest files (None: all).")
    compression: Optional[str] = cfg_field(None, _compression, "None, True/'gzip' or 'lzma'.")
    metadata: bool = cfg_field(True, boolean, "Write training metadata (config, metrics, timestamps, versions).")

    def _validate(self) -> None:
        if self.strategy is CheckpointStrategy.Latest and self.keep_last_n not in (None, 1):
            raise ValueError(f"keep_last_n={self.keep_last_n} contradicts CheckpointStrategy.Latest (which keeps "
                             "one file): use CheckpointStrategy.Every with keep_last_n")

    @property
    def kept(self) -> Optional[int]:
        """How many files are kept (None: all)."""
        return 1 if self.strategy is CheckpointStrategy.Latest else self.keep_last_n


__all__ = ["CheckpointConfig", "CheckpointStrategy", "SaveFrequency", "COMPRESSIONS"]
