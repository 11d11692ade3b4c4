"""Learning-rate schedules: pure functions of the epoch, with an optional linear warmup over steps.

``LearningRateScheduler.fixed(lr)``, ``.step_decay()``, ``.exponential_decay()``, ``.cosine_annealing()``,
``.cosine_with_warm_restarts()`` return immutable schedule objects with the guide's ``with_*`` builders
(validated at once; the error names the field). ``schedule.lr_at(epoch, step=None)`` is a pure function:

* ``epoch`` is the **0-based epoch index** (the first epoch is 0). Every schedule is **per epoch**: the
  guide's ``with_step_size(30)`` means "decay every 30 epochs". Fractional epochs (``epoch + i / n_batches``)
  are accepted and follow the same closed forms.
* ``step`` is the **0-based global optimizer step** (counted over the whole run, not reset per epoch); it is
  only used by the warmup. With ``with_warmup_steps(n)`` (n >= 1) the rate is multiplied by
  ``min(1, (step + 1) / n)``: a linear ramp from ``lr / n`` at step 0 to the full scheduled rate at step
  ``n - 1`` and after. ``step=None`` means "no warmup factor".

The closed forms (``lr0`` = the initial rate, ``e`` = epoch):

* fixed:  ``lr0``
* step_decay (torch StepLR):  ``lr0 * gamma ** floor(e / step_size)``
* exponential_decay:  ``lr0 * decay_rate ** (e / decay_steps)``  (continuous, not staircase)
* cosine_annealing (the closed form of torch's CosineAnnealingLR):
  ``min_lr + (lr0 - min_lr) * (1 + cos(pi * e / t_max)) / 2``. After ``t_max`` the closed form keeps
  following the cosine, as torch's does: the rate rises again and reaches ``lr0`` at ``2 t_max`` (period
  ``2 t_max``). Set ``t_max`` to the number of epochs to anneal once.
* cosine_with_warm_restarts (SGDR, torch's CosineAnnealingWarmRestarts): cycles of lengths ``t_0``,
  ``t_0 t_mult``, ``t_0 t_mult^2``, ...; in the cycle that contains ``e``, with ``T_cur`` the epochs since
  its start and ``T_i`` its length, ``min_lr + (lr0 - min_lr) * (1 + cos(pi * T_cur / T_i)) / 2``. The rate
  is back at ``lr0`` at every restart ``t_0``, ``t_0 (1 + t_mult)``, ... The cycle is found exactly
  (integer cycle starts), where torch's ``step(epoch)`` uses a floating-point logarithm that can put an
  exact restart epoch in the previous cycle for some ``t_mult``; integer epochs agree with torch's
  ``step()`` sequence.

The initial rate: ``initial_lr`` when set (it overrides the training configuration's rate); when it is
None the schedule uses its ``base_lr``, which the trainer sets from the training configuration
(``schedule.with_base_lr(lr)``), or the ``base_lr`` argument of ``lr_at``. Reduce-on-plateau is a callback
(``training.callbacks.ReduceLROnPlateau``), not a schedule.

``to_dict()`` adds ``"type"`` (e.g. ``"cosine_annealing"``); ``LearningRateScheduler.from_dict(d)`` rebuilds
any schedule (nested in another config's dict, ``_config`` decodes it by its ``__type__`` class name: every
schedule class is a registered config class).
"""
from __future__ import annotations

import enum
import math
import numbers
from typing import Any, Dict, Optional, Tuple

from .._config import (
    cfg_field,
    config_class,
    nonneg_float,
    nonneg_int,
    optional,
    positive_float,
    positive_int,
)

__all__ = [
    "LearningRateScheduler",
    "SchedulerType",
    "FixedSchedule",
    "StepDecaySchedule",
    "ExponentialDecaySchedule",
    "CosineAnnealingSchedule",
    "CosineWithWarmRestartsSchedule",
]


class SchedulerType(enum.Enum):
    """The kinds of schedule (``schedule.scheduler_type``)."""

    Fixed = "fixed"
    StepDecay = "step_decay"
    ExponentialDecay = "exponential_decay"
    CosineAnnealing = "cosine_annealing"
    CosineWithWarmRestarts = "cosine_with_warm_restarts"


def _decay_factor(name: str, v: Any) -> float:
    v = positive_float(name, v)
    if v > 1.0:
        raise ValueError(f"{name} must be in (0, 1] (a decay), got {v}")
    return v


def _epoch(epoch: Any) -> float:
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real):
        raise TypeError(f"epoch must be a number (the 0-based epoch index), got {type(epoch).__name__} {epoch!r}")
    e = float(epoch)
    if not (math.isfinite(e) and e >= 0):
        raise ValueError(f"epoch must be finite and >= 0, got {epoch!r}")
    return e


def _step(step: Any) -> Optional[int]:
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be an int (the 0-based optimizer step) or None, got {type(step).__name__}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return int(step)


class _Schedule:
    """Shared behaviour; subclasses are config classes with ``initial_lr``, ``base_lr``, ``warmup_steps``."""

    scheduler_type: SchedulerType

    @property
    def name(self) -> str:
        return self.scheduler_type.value

    def effective_initial_lr(self, base_lr: Optional[float] = None) -> float:
        """``initial_lr`` if set, else ``base_lr`` (argument, then field)."""
        lr = self.initial_lr
        if lr is None:
            lr = base_lr if base_lr is not None else self.base_lr
        if lr is None:
            raise ValueError(f"the {self.name} schedule has no initial_lr and no base rate: set "
                             f"with_initial_lr(...), with_base_lr(...) or pass lr_at(..., base_lr=...)")
        return positive_float("base_lr", lr)

    def lr_at(self, epoch: Any, step: Any = None, base_lr: Optional[float] = None) -> float:
        """The learning rate at 0-based ``epoch`` (and global 0-based optimizer ``step`` for the warmup)."""
        e = _epoch(epoch)
        s = _step(step)
        lr = self._lr(self.effective_initial_lr(base_lr), e)
        n = self.warmup_steps
        if n and s is not None and s < n:
            lr *= (s + 1) / n
        return float(lr)

    def warmup_factor(self, step: Any) -> float:
        s = _step(step)
        n = self.warmup_steps
        return 1.0 if not n or s is None or s >= n else (s + 1) / n

    def _lr(self, lr0: float, e: float) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check_min_lr(self) -> None:
        if self.initial_lr is not None and self.min_lr > self.initial_lr:
            raise ValueError(f"min_lr ({self.min_lr}) must be <= initial_lr ({self.initial_lr})")


def _finish(cls: type) -> type:
    """to_dict with the schedule type; from_dict accepting it."""
    plain_to_dict = cls.to_dict
    plain_from_dict = cls.from_dict.__func__

    def to_dict(self) -> Dict[str, Any]:
        return {"type": self.scheduler_type.value, **plain_to_dict(self)}

    def from_dict(c, d: Dict[str, Any]):
        if isinstance(d, dict) and "type" in d:
            d = dict(d)
            t = d.pop("type")
            if t != c.scheduler_type.value:
                raise ValueError(f"{c.__name__}.from_dict got a dict of type {t!r}")
        return plain_from_dict(c, d)

    cls.to_dict = to_dict
    cls.from_dict = classmethod(from_dict)
    return cls


_INITIAL = "Initial learning rate; None: the training configuration's rate (base_lr)."
_BASE = "Rate used when initial_lr is None (set by the trainer from the training configuration)."
_WARMUP = "Optimizer steps of linear warmup in front of the schedule (0: none)."


@_finish
@config_class
class FixedSchedule(_Schedule):
    """A constant rate: ``lr0``."""

    scheduler_type = SchedulerType.Fixed
    initial_lr: Optional[float] = cfg_field(None, optional(positive_float), _INITIAL)
    base_lr: Optional[float] = cfg_field(None, optional(positive_float), _BASE)
    warmup_steps: int = cfg_field(0, nonneg_int, _WARMUP)

    def _lr(self, lr0: float, e: float) -> float:
        return lr0


@_finish
@config_class
class StepDecaySchedule(_Schedule):
    """``lr0 * gamma ** floor(epoch / step_size)`` (torch's StepLR)."""

    scheduler_type = SchedulerType.StepDecay
    initial_lr: Optional[float] = cfg_field(None, optional(positive_float), _INITIAL)
    step_size: int = cfg_field(30, positive_int, "Epochs between decays.")
    gamma: float = cfg_field(0.1, _decay_factor, "Factor applied every step_size epochs, in (0, 1].")
    base_lr: Optional[float] = cfg_field(None, optional(positive_float), _BASE)
    warmup_steps: int = cfg_field(0, nonneg_int, _WARMUP)

    def _lr(self, lr0: float, e: float) -> float:
        return lr0 * self.gamma ** math.floor(e / self.step_size)


@_finish
@config_class
class ExponentialDecaySchedule(_Schedule):
    """``lr0 * decay_rate ** (epoch / decay_steps)`` (continuous)."""

    scheduler_type = SchedulerType.ExponentialDecay
    initial_lr: Optional[float] = cfg_field(None, optional(positive_float), _INITIAL)
    decay_rate: float = cfg_field(0.95, _decay_factor, "Factor per decay_steps epochs, in (0, 1].")
    decay_steps: int = cfg_field(1, positive_int, "Epochs over which the rate is multiplied by decay_rate.")
    base_lr: Optional[float] = cfg_field(None, optional(positive_float), _BASE)
    warmup_steps: int = cfg_field(0, nonneg_int, _WARMUP)

    def _lr(self, lr0: float, e: float) -> float:
        return lr0 * self.decay_rate ** (e / self.decay_steps)


@_finish
@config_class
class CosineAnnealingSchedule(_Schedule):
    """``min_lr + (lr0 - min_lr) (1 + cos(pi epoch / t_max)) / 2`` (torch's CosineAnnealingLR closed form;
    it keeps following the cosine after ``t_max``, see the module docstring)."""

    scheduler_type = SchedulerType.CosineAnnealing
    initial_lr: Optional[float] = cfg_field(None, optional(positive_float), _INITIAL)
    min_lr: float = cfg_field(0.0, nonneg_float, "Rate reached at t_max (torch's eta_min).")
    t_max: int = cfg_field(100, positive_int, "Epochs from the initial rate down to min_lr (half a period).")
    base_lr: Optional[float] = cfg_field(None, optional(positive_float), _BASE)
    warmup_steps: int = cfg_field(0, nonneg_int, _WARMUP)

    def _validate(self) -> None:
        self._check_min_lr()

    def _lr(self, lr0: float, e: float) -> float:
        return self.min_lr + (lr0 - self.min_lr) * (1.0 + math.cos(math.pi * e / self.t_max)) / 2.0


@_finish
@config_class
class CosineWithWarmRestartsSchedule(_Schedule):
    """SGDR (torch's CosineAnnealingWarmRestarts): cosine cycles of length ``t_0 * t_mult ** i``."""

    scheduler_type = SchedulerType.CosineWithWarmRestarts
    initial_lr: Optional[float] = cfg_field(None, optional(positive_float), _INITIAL)
    t_0: int = cfg_field(10, positive_int, "Length of the first cycle, in epochs.")
    t_mult: int = cfg_field(1, positive_int, "Each cycle is t_mult times longer than the previous (int >= 1).")
    min_lr: float = cfg_field(0.0, nonneg_float, "Rate at the end of every cycle (torch's eta_min).")
    base_lr: Optional[float] = cfg_field(None, optional(positive_float), _BASE)
    warmup_steps: int = cfg_field(0, nonneg_int, _WARMUP)

    def _validate(self) -> None:
        self._check_min_lr()

    def cycle(self, epoch: Any) -> Tuple[float, int]:
        """``(T_cur, T_i)``: epochs since the start of the cycle that contains ``epoch``, and its length."""
        e = _epoch(epoch)
        t0, m = self.t_0, self.t_mult
        if m == 1:
            k = math.floor(e / t0)
            return e - k * t0, t0
        start, length = 0, t0  # exact integer cycle starts: t_0 (m^n - 1) / (m - 1)
        while e >= start + length:
            start += length
            length *= m
        return e - start, length

    def restarts(self, n: int) -> Tuple[int, ...]:
        """The first ``n`` restart epochs (where the rate is back at its initial value): t_0, t_0 (1 + t_mult), ..."""
        out, start, length = [], 0, self.t_0
        for _ in range(n):
            start += length
            length *= self.t_mult
            out.append(start)
        return tuple(out)

    def _lr(self, lr0: float, e: float) -> float:
        t_cur, t_i = self.cycle(e)
        return self.min_lr + (lr0 - self.min_lr) * (1.0 + math.cos(math.pi * t_cur / t_i)) / 2.0


_CLASSES = {c.scheduler_type.value: c for c in (FixedSchedule, StepDecaySchedule, ExponentialDecaySchedule,
                                                 CosineAnnealingSchedule, CosineWithWarmRestartsSchedule)}


class LearningRateScheduler:
    """Factories of the schedules (see the module docstring)."""

    def __init__(self) -> None:
        raise TypeError("LearningRateScheduler is a namespace: use LearningRateScheduler.cosine_annealing() ...")

    @staticmethod
    def fixed(lr: Optional[float] = None) -> FixedSchedule:
        """A constant ``lr`` (None: the training configuration's rate)."""
        return FixedSchedule(initial_lr=lr)

    @staticmethod
    def step_decay() -> StepDecaySchedule:
        return StepDecaySchedule()

    @staticmethod
    def exponential_decay() -> ExponentialDecaySchedule:
        return ExponentialDecaySchedule()

    @staticmethod
    def cosine_annealing() -> CosineAnnealingSchedule:
        return CosineAnnealingSchedule()

    @staticmethod
    def cosine_with_warm_restarts() -> CosineWithWarmRestartsSchedule:
        return CosineWithWarmRestartsSchedule()

    @staticmethod
    def is_schedule(x: Any) -> bool:
        return isinstance(x, _Schedule)

    @staticmethod
    def from_dict(d: Dict[str, Any]) -> _Schedule:
        """Inverse of ``schedule.to_dict()`` (``"type"`` key, or the ``"__type__"`` class name)."""
        if not isinstance(d, dict):
            raise TypeError(f"LearningRateScheduler.from_dict needs a dict, got {type(d).__name__}")
        d = dict(d)
        cls_name = d.pop("__type__", None)
        if "type" in d:
            t = d["type"]
            if t not in _CLASSES:
                raise ValueError(f"unknown schedule type {t!r}; valid: {', '.join(_CLASSES)}")
            return _CLASSES[t].from_dict(d)
        for c in _CLASSES.values():
            if c.__name__ == cls_name:
                return c.from_dict(d)
        raise ValueError("a schedule dict needs a 'type' key (e.g. 'cosine_annealing')")

