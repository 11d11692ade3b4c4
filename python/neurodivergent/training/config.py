"""Training configuration (immutable; every ``with_*`` validates at once).

Definitions used throughout the library:

* a **step** is one optimizer update on one batch of ``batch_size`` windows;
* an **epoch** is one pass over every training window (the (series, cutoff) pairs whose targets lie
  before the validation part), in a freshly shuffled order; training stops after ``max_epochs``
  epochs or ``max_steps`` steps, whichever comes first;
* ``validation_split`` holds out, for every series, the last ``max(horizon, ceil(split * length))``
  time steps: training windows have their targets before that part, validation windows have their
  targets inside it (their inputs may reach back into the training part, which is the past).

Indices handed to schedulers and callbacks are 0-based: ``lr_at(epoch, step)``, ``on_epoch_end(epoch,
logs)`` and ``on_batch_end(step, logs)`` receive the index of the epoch / optimizer step (``step`` counts
over the whole run, not within the epoch). The history in :class:`~neurodivergent.training.logs.TrainingLogs`
records counts: ``history["epoch"][-1]`` is the number of finished epochs, ``history["step"][-1]`` the
number of optimizer steps taken.

**Learning-rate precedence.** The *base rate* is ``learning_rate`` when set, else the optimizer config's
``learning_rate`` (1e-3 for the default Adam). A scheduler whose ``initial_lr`` is set uses that,
otherwise it starts from the base rate. The rate of each step is ``scheduler.lr_at(epoch, step)`` when a
scheduler is set, else the base rate; ``warmup_steps`` then multiplies it by ``(step + 1) / warmup_steps``
during the first ``warmup_steps`` steps (linear warmup in front of any schedule or fixed rate). A
callback calling ``logs.set_learning_rate(lr)`` overrides all of that from the next step on, and the
override stays until a callback changes it again (the schedule and the warmup no longer apply).

**Per step, in this order:** forward, loss and its gradient, backward into the flat gradient buffer,
L1/L2 penalty terms added to the gradient (``l1 * sign(p) + l2 * p``, i.e. the penalty
``l1 * |p|_1 + 0.5 * l2 * |p|_2^2``; the recorded training loss does not include the penalty), clipping by
value, clipping by (global L2) norm, the optimizer update with the step's learning rate.
"""
from __future__ import annotations

import dataclasses
import enum
import logging
import numbers
from typing import Any, Dict, Optional, Tuple, Union

from .._config import (
    _REGISTRY,
    _decode_nested,
    boolean,
    cfg_field,
    config_class,
    fraction,
    nonneg_float,
    nonneg_int,
    optional,
    positive_float,
    positive_int,
)

log = logging.getLogger("neurodivergent")

LOSSES = ("mae", "mse", "huber", "quantile")


class Metric(str, enum.Enum):
    """Quantities recorded per epoch (the value is the name used in ``TrainingLogs.history``).

    ``MAE``, ``MAPE``, ``RMSE`` and ``SMAPE`` are computed on the validation windows in the original scale
    of the data (forecasts un-scaled, compared with the true values) with
    :mod:`neurodivergent.validation.metrics`; ``GradientNorm`` is the mean over the epoch's steps of the
    global L2 norm of the gradient (after the L1/L2 terms, before clipping); ``EpochTime`` is in seconds.
    """

    TrainingLoss = "training_loss"
    ValidationLoss = "validation_loss"
    MAE = "mae"
    MAPE = "mape"
    RMSE = "rmse"
    SMAPE = "smape"
    LearningRate = "learning_rate"
    GradientNorm = "gradient_norm"
    EpochTime = "epoch_time"

    @property
    def key(self) -> str:
        return self.value

    @property
    def needs_validation(self) -> bool:
        return self in (Metric.ValidationLoss, Metric.MAE, Metric.MAPE, Metric.RMSE, Metric.SMAPE)

    @classmethod
    def coerce(cls, name: str, v: Any) -> "Metric":
        if isinstance(v, Metric):
            return v
        if isinstance(v, str):
            for m in cls:
                if v.lower() in (m.value, m.name.lower()):
                    return m
        raise ValueError(f"{name} must be a Metric ({', '.join('Metric.' + m.name for m in cls)}), got {v!r}")

    def __repr__(self) -> str:
        return f"Metric.{self.name}"


class Mode(str, enum.Enum):
    """Whether a smaller (``Minimize``) or a larger (``Maximize``) monitored value is better."""

    Minimize = "min"
    Maximize = "max"

    @classmethod
    def coerce(cls, name: str, v: Any) -> "Mode":
        if isinstance(v, Mode):
            return v
        if isinstance(v, str):
            for m in cls:
                if v.lower() in (m.value, m.name.lower()):
                    return m
        raise ValueError(f"{name} must be Mode.Minimize or Mode.Maximize, got {v!r}")

    def __repr__(self) -> str:
        return f"Mode.{self.name}"


def _optional_metric(name, v):
    return None if v is None else Metric.coerce(name, v)


@config_class
class EarlyStopping:
    """Stop when the monitored metric has not improved by more than ``min_delta`` for ``patience``
    epochs (with ``Mode.Minimize`` an improvement is ``value < best - min_delta``, with ``Mode.Maximize``
    ``value > best + min_delta``; a NaN value never improves).

    ``monitor_metric=None`` (the default) monitors the validation loss when there is a validation part
    and the training loss otherwise. An explicit metric computed on the validation windows
    (``ValidationLoss``, ``MAE``, ``MAPE``, ``RMSE``, ``SMAPE``) without a validation part raises a
    ValueError when ``fit`` starts. With ``restore_best_weights`` the parameters (and any running
    statistics such as batch-norm's) of the best epoch are put back when training ends, whatever
    ended it (early stop, ``max_epochs``, ``max_steps`` or a callback)."""

    patience: int = cfg_field(10, positive_int, "Epochs without improvement before stopping.")
    min_delta: float = cfg_field(0.0, nonneg_float, "Smallest change that counts as an improvement.")
    restore_best_weights: bool = cfg_field(True, boolean, "Put back the best epoch's parameters.")
    monitor_metric: Optional[Metric] = cfg_field(None, _optional_metric,
                                                 "Metric watched (None: validation loss if any, else training loss).")
    mode: Mode = cfg_field(Mode.Minimize, Mode.coerce, "Mode.Minimize or Mode.Maximize.")

    def resolved_metric(self, has_validation: bool) -> Metric:
        if self.monitor_metric is not None:
            return self.monitor_metric
        return Metric.ValidationLoss if has_validation else Metric.TrainingLoss


def _early(name, v):
    if v is None or isinstance(v, EarlyStopping):
        return v
    raise TypeError(f"{name} must be an EarlyStopping or None, got {type(v).__name__}")


def _str(name, v):
    if not isinstance(v, str) or not v:
        raise TypeError(f"{name} must be a non-empty str, got {v!r}")
    return v


def _unit_interval(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(v).__name__} {v!r}")
    v = float(v)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {v}")
    return v


# ------------------------------------------------------------------------- component checks (lazy imports)
def _optimizer(name, v):
    if v is None:
        return None
    from .optimizers import Optimizer

    try:
        return Optimizer.resolve(v)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an optimizer (Optimizer.Adam(AdamConfig()...), Optimizer.AdamW, ...), "
                        f"got {type(v).__name__}: {exc}") from None


def _loss(name, v):
    if isinstance(v, str):
        if v.lower() not in LOSSES:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, LOSSES))} or a LossFunction, got {v!r}")
        return v.lower()
    from .losses import LossFunction

    try:
        LossFunction.resolve(v)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a LossFunction (LossFunction.MAE, LossFunction.Huber(...), ...) or "
                        f"one of {', '.join(map(repr, LOSSES))}, got {type(v).__name__}: {exc}") from None
    return v


def _scheduler(name, v):
    if v is None:
        return None
    if not callable(getattr(v, "lr_at", None)):
        raise TypeError(f"{name} must be a LearningRateScheduler (LearningRateScheduler.cosine_annealing()...), "
                        f"got {type(v).__name__}")
    return v


MODEL_DEFAULT = "model_default"


def clip_kind(c: Any) -> str:
    """The kind of a clipping object ('norm' or 'value'); one of each kind may be set."""
    kind = getattr(c, "kind", None)
    if isinstance(kind, str):
        return kind.lower()
    n = type(c).__name__.lower()
    return "norm" if "norm" in n else "value" if "value" in n else n


def _is_clip(c: Any) -> bool:
    try:
        from . import regularization as R
    except ImportError:  # pragma: no cover - the module lands separately
        return False
    cls = getattr(R, "GradientClipping", None)
    kinds = tuple(t for t in (getattr(cls, "ByNorm", None), getattr(cls, "ByValue", None)) if isinstance(t, type))
    if kinds and isinstance(c, kinds):
        return True
    if cls is not None and isinstance(cls, type) and isinstance(c, cls):
        return True
    return type(c).__module__ == R.__name__


def _clipping(name, v):
    if isinstance(v, str) and v == MODEL_DEFAULT:
        return v
    if v is None:
        return ()
    items = tuple(v) if isinstance(v, (list, tuple)) else (v,)
    seen = set()
    for i, c in enumerate(items):
        if not _is_clip(c):
            raise TypeError(f"{name} must hold GradientClipping.ByNorm(...) / GradientClipping.ByValue(...) "
                            f"objects (or be None / '{MODEL_DEFAULT}'), got {type(c).__name__} {c!r}")
        k = clip_kind(c)
        if k in seen:
            raise ValueError(f"{name} holds two clippings of kind {k!r}: one of each kind may be set")
        seen.add(k)
    order = {"value": 0, "norm": 1}
    return tuple(sorted(items, key=lambda c: order.get(clip_kind(c), 2)))


def _monitor(name, v):
    if v is None:
        return None
    from .monitor import TrainingMonitor

    if not isinstance(v, TrainingMonitor):
        raise TypeError(f"{name} must be a TrainingMonitor or None, got {type(v).__name__}")
    return v


def _callbacks(name, v):
    from .callbacks import Callback

    if v is None:
        return ()
    items = tuple(v) if isinstance(v, (list, tuple)) else (v,)
    for i, cb in enumerate(items):
        if not isinstance(cb, Callback):
            raise TypeError(f"{name}[{i}] must be a Callback (subclass neurodivergent.training.Callback), "
                            f"got {type(cb).__name__}")
    return items


def _augmentation(name, v):
    from .augmentation import DataAugmentation

    if v is None or v is False:
        return None
    if v is True:
        return DataAugmentation()
    if isinstance(v, DataAugmentation):
        return v
    raise TypeError(f"{name} must be True, False or a DataAugmentation, got {type(v).__name__} {v!r}")


@config_class
class TrainingConfig:
    """How a model is trained. See the module docstring for what a step and an epoch are, the
    learning-rate precedence and the order of the gradient transformations.

    ``dropout`` (when set) replaces the model config's dropout rate for this training run (inference
    never drops). ``sequence_length`` and ``teacher_forcing_ratio`` are used by recurrent models;
    ``attention_dropout`` by attention models; ``batch_norm`` by models that support it (the MLP): a model
    that cannot honour one of them raises a ValueError when ``fit`` starts instead of ignoring it.
    ``label_smoothing > 0`` likewise raises at ``fit`` with a loss that does not define label smoothing
    (no regression loss does). ``callbacks`` run in list order, before the built-in early stopping; the
    monitor logs and plots after all of them, and checkpoints are written last, once the epoch is complete
    (``checkpointing``; ``checkpoint_every`` / ``checkpoint_dir`` are a shorthand for it, see
    :meth:`resolved_checkpointing`)."""

    max_epochs: int = cfg_field(100, positive_int, "Upper bound on epochs.")
    max_steps: Optional[int] = cfg_field(None, optional(positive_int), "Upper bound on optimizer steps.")
    learning_rate: Optional[float] = cfg_field(
        None, optional(positive_float), "Base learning rate (None: the optimizer config's rate, 1e-3 for Adam).")
    batch_size: int = cfg_field(32, positive_int, "Windows per step.")
    validation_split: float = cfg_field(0.0, fraction, "Fraction of each series' end held out for validation.")
    early_stopping: Optional[EarlyStopping] = cfg_field(None, _early, "Early stopping, or None.")
    checkpoint_every: Optional[int] = cfg_field(
        None, optional(positive_int), "Shorthand: a checkpoint every N epochs into checkpoint_dir (see checkpointing).")
    checkpoint_dir: str = cfg_field("checkpoints", _str, "Where checkpoint_every saves.")
    checkpointing: Any = cfg_field(None, lambda n, v: _checkpointing(n, v),
                                   "A CheckpointConfig (automatic checkpoints), or None.")
    fault_tolerance: Any = cfg_field(None, lambda n, v: _fault_tolerance(n, v),
                                     "A FaultTolerantTraining (retries, watchdog, graceful shutdown), or None.")
    loss_function: Any = cfg_field("mae", _loss, "A LossFunction or 'mae' / 'mse' / 'huber' / 'quantile'.")
    huber_delta: float = cfg_field(1.0, positive_float, "Delta of the Huber loss when loss_function is 'huber'.")
    verbose: bool = cfg_field(True, boolean, "Progress bar on a terminal and epoch logs (silent when not a TTY).")
    seed: int = cfg_field(0, nonneg_int, "Seeds initialisation, shuffling, dropout and augmentation.")
    optimizer: Any = cfg_field(None, _optimizer, "Optimizer spec or factory (None: Adam with AdamConfig()).")
    learning_rate_scheduler: Any = cfg_field(None, _scheduler, "A LearningRateScheduler, or None (fixed rate).")
    gradient_clipping: Any = cfg_field(MODEL_DEFAULT, _clipping,
                                       "Clipping kinds applied (value then norm); 'model_default' or () for none.")
    l1_regularization: float = cfg_field(0.0, nonneg_float, "L1 penalty coefficient (adds l1*sign(p) to the gradient).")
    l2_regularization: float = cfg_field(0.0, nonneg_float, "L2 penalty coefficient (adds l2*p to the gradient).")
    dropout: Optional[float] = cfg_field(None, optional(fraction), "Overrides the model's dropout when set.")
    label_smoothing: float = cfg_field(0.0, fraction, "Label smoothing (only for losses that define it).")
    monitor: Any = cfg_field(None, _monitor, "A TrainingMonitor, or None.")
    callbacks: Tuple[Any, ...] = cfg_field((), _callbacks, "Callbacks, called in list order.")
    sequence_length: Optional[int] = cfg_field(None, optional(positive_int), "Sequence length (recurrent models).")
    teacher_forcing_ratio: Optional[float] = cfg_field(
        None, optional(_unit_interval), "Teacher forcing ratio in [0, 1] (recurrent seq2seq models).")
    warmup_steps: int = cfg_field(0, nonneg_int, "Linear learning-rate warmup over the first N steps.")
    attention_dropout: float = cfg_field(0.0, fraction, "Dropout on attention weights (attention models).")
    data_augmentation: Any = cfg_field(None, _augmentation, "True / a DataAugmentation: jitter and scaling.")
    visualizer: Any = cfg_field(None, lambda n, v: _visualizer_check(n, v), "A TrainingVisualizer (PNG plots), or None.")
    batch_norm: bool = cfg_field(False, boolean, "Batch normalisation after hidden layers (models that support it).")
    # probabilistic models (DeepAR): sample paths per forecast, output distribution, forecast quantiles
    sample_size: int = cfg_field(100, positive_int, "Sample paths drawn per series when forecasting (DeepAR).")
    likelihood: Any = cfg_field("gaussian", lambda n, v: _likelihood_check(n, v),
                                "Output distribution of probabilistic models: Likelihood.Gaussian / StudentT / NegativeBinomial.")
    quantile_levels: Tuple[float, ...] = cfg_field((0.1, 0.5, 0.9), lambda n, v: _quantile_levels_check(n, v),
                                                   "Quantile levels in (0, 1) forecast by probabilistic models (DeepAR).")

    # ----------------------------------------------------------------- builders with extra semantics
    def with_early_stopping(self, early_stopping: Union[EarlyStopping, int, None] = None, *, patience=None,
                            min_delta=None, restore_best_weights=None, monitor_metric=None,
                            mode=None) -> "TrainingConfig":
        """``with_early_stopping(patience=15)`` (the guide's shortcut) or ``with_early_stopping(EarlyStopping()...)``."""
        if isinstance(early_stopping, numbers.Integral) and not isinstance(early_stopping, bool):
            patience, early_stopping = early_stopping, None
        kw = dict(patience=patience, min_delta=min_delta, restore_best_weights=restore_best_weights,
                  monitor_metric=monitor_metric, mode=mode)
        kw = {k: v for k, v in kw.items() if v is not None}
        if early_stopping is None and kw:
            early_stopping = EarlyStopping(**kw)
        elif early_stopping is not None and kw:
            early_stopping = dataclasses.replace(_early("early_stopping", early_stopping), **kw)
        return dataclasses.replace(self, early_stopping=early_stopping)

    def with_gradient_clipping(self, clipping: Any) -> "TrainingConfig":
        """Add a clipping: ``GradientClipping.ByNorm(1.0)`` or ``GradientClipping.ByValue(-1.0, 1.0)``.

        Called twice with different kinds (as in the guide) both are applied (by value first, then by
        norm); called with a kind already set, the new one replaces it. ``None`` removes every clipping
        (also the model's default, e.g. the recurrent models' ``ByNorm(1.0)``); ``'model_default'`` goes
        back to the model's default; a list sets exactly the given clippings.
        """
        if clipping is None or isinstance(clipping, (str, list, tuple)):
            return dataclasses.replace(self, gradient_clipping=clipping)
        current = () if self.gradient_clipping == MODEL_DEFAULT else self.gradient_clipping
        if not _is_clip(clipping):
            _clipping("gradient_clipping", clipping)  # raises the standard message
        kind = clip_kind(clipping)
        kept = tuple(c for c in current if clip_kind(c) != kind)
        return dataclasses.replace(self, gradient_clipping=kept + (clipping,))

    def with_callback(self, callback: Any) -> "TrainingConfig":
        """Append one callback to ``callbacks``."""
        return dataclasses.replace(self, callbacks=tuple(self.callbacks) + (callback,))

    def with_callbacks(self, callbacks: Any) -> "TrainingConfig":
        """Set the list of callbacks (replacing any already set)."""
        return dataclasses.replace(self, callbacks=callbacks)

    def _validate(self) -> None:
        if self.checkpoint_every is not None and self.checkpointing is not None:
            raise ValueError("checkpoint_every and checkpointing are both set: checkpoint_every(n) is a shorthand for "
                             "with_checkpointing(CheckpointConfig().with_save_frequency(SaveFrequency.EveryNEpochs(n))"
                             ".with_save_directory(checkpoint_dir)); set one of them")

    def resolved_checkpointing(self):
        """The CheckpointConfig in effect: ``checkpointing``, else the ``checkpoint_every`` shorthand
        (every n epochs into ``checkpoint_dir``, all files kept), else FaultTolerantTraining's
        ``auto_checkpoint`` (``CheckpointStrategy.Latest`` every epoch into its ``checkpoint_directory``),
        else None."""
        from ..checkpointing.config import CheckpointConfig, CheckpointStrategy, SaveFrequency

        if self.checkpointing is not None:
            return self.checkpointing
        if self.checkpoint_every is not None:
            return CheckpointConfig(save_directory=self.checkpoint_dir,
                                    save_frequency=SaveFrequency.EveryNEpochs(self.checkpoint_every))
        ft = self.fault_tolerance
        if ft is not None and ft.auto_checkpoint:
            return CheckpointConfig(save_directory=ft.checkpoint_directory, strategy=CheckpointStrategy.Latest)
        return None

    # ----------------------------------------------------------------- resolution helpers used by fit
    def resolved_loss(self):
        """The LossFunction object for ``loss_function`` (strings resolved; 'huber' uses ``huber_delta``)."""
        from .losses import HuberConfig, LossFunction

        lf = self.loss_function
        if isinstance(lf, str) and lf == "huber":
            return LossFunction.Huber(HuberConfig().with_delta(self.huber_delta))
        return LossFunction.resolve(lf)

    def resolved_optimizer(self):
        """The OptimizerSpec for ``optimizer`` (None: Adam with the default AdamConfig)."""
        from .optimizers import AdamConfig, Optimizer

        if self.optimizer is None:
            return Optimizer.Adam(AdamConfig())
        return Optimizer.resolve(self.optimizer)

    def base_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        if self.optimizer is None:
            return 1e-3
        lr = getattr(self.resolved_optimizer(), "learning_rate", None)
        return 1e-3 if lr is None else float(lr)

    # ----------------------------------------------------------------- serialisation
    def _to_dict(self, lossy: bool = False) -> Dict[str, Any]:
        """Plain JSON types. Components are encoded with their own ``to_dict`` (optimizer, loss, scheduler,
        clipping, monitor, augmentation, early stopping, callbacks that define ``to_dict``). A component
        that cannot be serialised (a user callback without ``to_dict``, a weighted loss whose weight
        function is a lambda) raises a ValueError naming the field, unless ``lossy=True``: then it is
        written as ``{"__unserialisable__": "<class name>"}`` (what ``model.save`` does, so that a model
        trained with such a component can still be saved; ``from_dict`` then drops such callbacks when
        ``drop_unserialisable=True`` and refuses the rest)."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "callbacks":
                out[f.name] = [_encode(f"callbacks[{i}]", cb, lossy) for i, cb in enumerate(v)]
            elif f.name == "gradient_clipping" and isinstance(v, tuple):
                out[f.name] = [_encode(f"gradient_clipping[{i}]", c, lossy) for i, c in enumerate(v)]
            else:
                out[f.name] = _encode(f.name, v, lossy)
        return out

    @classmethod
    def _from_dict(cls, d: Dict[str, Any], drop_unserialisable: bool = False) -> "TrainingConfig":
        if not isinstance(d, dict):
            raise TypeError(f"TrainingConfig.from_dict needs a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainingConfig fields: {', '.join(unknown)}")
        # the component classes register for nested decoding when their modules are imported
        from . import (augmentation, callbacks, fault_tolerance, losses, monitor, optimizers, regularization,  # noqa: F401
                       schedulers, visualizer)
        from ..checkpointing import config as _ckpt_config  # noqa: F401

        kw: Dict[str, Any] = {}
        for k, v in d.items():
            if k in ("callbacks", "gradient_clipping") and isinstance(v, list):
                items = []
                for i, x in enumerate(v):
                    if isinstance(x, dict) and "__unserialisable__" in x and drop_unserialisable and k == "callbacks":
                        log.warning("training config: callback %s was not saved and is left out",
                                    x["__unserialisable__"])
                        continue
                    items.append(_decode(f"{k}[{i}]", x))
                kw[k] = tuple(items)
            else:
                kw[k] = _decode(k, v)
        return cls(**kw)


def _checkpointing(name, v):
    if v is None:
        return None
    from ..checkpointing.config import CheckpointConfig

    if not isinstance(v, CheckpointConfig):
        raise TypeError(f"{name} must be a CheckpointConfig (neurodivergent.checkpointing.CheckpointConfig) or None, "
                        f"got {type(v).__name__}")
    return v


def _fault_tolerance(name, v):
    if v is None:
        return None
    from .fault_tolerance import FaultTolerantTraining

    if not isinstance(v, FaultTolerantTraining):
        raise TypeError(f"{name} must be a FaultTolerantTraining or None, got {type(v).__name__}")
    return v


def _visualizer_check(name, v):
    from .visualizer import _visualizer

    return _visualizer(name, v)


def _likelihood_check(name, v):
    from .likelihood import Likelihood

    return Likelihood.coerce(name, v)


def _quantile_levels_check(name, v):
    from .losses import _quantiles

    return _quantiles(name, v)


# config_class installs its own to_dict / from_dict; TrainingConfig needs the component-aware versions
TrainingConfig.to_dict = TrainingConfig._to_dict
TrainingConfig.from_dict = TrainingConfig._from_dict


# ------------------------------------------------------------------------- component (de)serialisation
_FAMILIES = {
    "optimizer": ("optimizers", "Optimizer"),
    "loss": ("losses", "LossFunction"),
    "scheduler": ("schedulers", "LearningRateScheduler"),
    "clipping": ("regularization", "GradientClipping"),
    "callback": ("callbacks", "callback_from_dict"),
}


def _family(name: str, v: Any) -> Optional[str]:
    mod = type(v).__module__.rsplit(".", 1)[-1]
    for fam, (m, _) in _FAMILIES.items():
        if mod == m:
            return fam
    if name.startswith("callbacks["):
        return "callback"
    return None


def _encode(name: str, v: Any, lossy: bool) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)) and not isinstance(v, enum.Enum):
        return v
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, dict):
        return {k: _encode(f"{name}.{k}", x, lossy) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(f"{name}[{i}]", x, lossy) for i, x in enumerate(v)]
    if type(v).__name__ in _REGISTRY and _REGISTRY[type(v).__name__] is type(v):
        return {"__type__": type(v).__name__, **{k: _encode(f"{name}.{k}", x, lossy) for k, x in v.to_dict().items()}}
    fam = _family(name, v)
    if fam is not None and callable(getattr(v, "to_dict", None)):
        try:
            return {"__component__": fam, "data": v.to_dict()}
        except (TypeError, ValueError) as exc:
            if not lossy:
                raise ValueError(f"{name} ({type(v).__name__}) cannot be serialised: {exc}") from None
    elif not lossy:
        raise ValueError(f"{name} ({type(v).__name__}) cannot be serialised: give it to_dict() / from_dict() "
                         "or leave it out of the config that is saved")
    return {"__unserialisable__": type(v).__name__}


def _decode(name: str, v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    if "__unserialisable__" in v:
        raise ValueError(f"{name} ({v['__unserialisable__']}) was not serialisable when saved and cannot be rebuilt")
    if "__type__" in v:
        return _decode_nested({k: _decode(f"{name}.{k}", x) for k, x in v.items()})
    if "__component__" in v:
        import importlib

        mod, attr = _FAMILIES[v["__component__"]]
        obj = getattr(importlib.import_module(f".{mod}", __package__), attr)
        return obj(v["data"]) if v["__component__"] == "callback" else obj.from_dict(v["data"])
    return v


def _warmup_factor(warmup_steps: int, step: int) -> float:
    """Linear warmup: ``(step + 1) / warmup_steps`` for the 0-based step index, 1 afterwards."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps


__all__ = ["TrainingConfig", "EarlyStopping", "Metric", "Mode", "MODEL_DEFAULT"]
