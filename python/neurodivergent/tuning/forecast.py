"""From searched parameters to a model and a TrainingConfig, and the cross-validated objective.

Names are routed like this:

* ``model_type`` chooses the model class by its registered name, case-insensitively (``"mlp"``,
  ``"lstm"``, ``"gru"``, and any other registered model such as a transformer); without it the search's
  ``with_model_type`` (default ``"mlp"``) is used;
* a name that is a field of the model's config (``hidden_size``, ``num_layers``, ``dropout``,
  ``input_size``, ``decoder_layers``, ``activation``, ...) goes to the model config;
* otherwise a field of :class:`~neurodivergent.training.config.TrainingConfig` (``learning_rate``,
  ``batch_size``, ``max_steps``, ``l2_regularization``, ...) goes to the training config;
* ``model.<field>`` / ``training.<field>`` force one side (``training.dropout`` sets the training run's
  dropout override instead of the model's own dropout).

Any other name raises a ValueError naming the parameter, before the search starts. Integer fields
accept values of a continuous dimension, rounded to the nearest integer.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import time
from typing import Any, Dict, List, Sequence, Tuple

__all__ = ["model_classes", "resolve_model_class", "build_configs", "ForecastObjective", "check_space"]

_BUILTIN = ("mlp", "lstm", "gru", "transformer", "deepar")


def model_classes() -> Dict[str, type]:
    """Registered model classes by lower-case name (built-in model modules are imported when present)."""
    for name in _BUILTIN:
        try:
            importlib.import_module(f"..models.{name}", __package__)
        except ImportError:
            pass
    from ..models.base import _MODELS

    return {k.lower(): v for k, v in _MODELS.items()}


def resolve_model_class(model_type: Any) -> type:
    if isinstance(model_type, type):
        return model_type
    if not isinstance(model_type, str):
        raise ValueError(f"parameter 'model_type' must be a model name, got {model_type!r}")
    known = model_classes()
    cls = known.get(model_type.lower())
    if cls is None:
        raise ValueError(f"parameter 'model_type': unknown model {model_type!r}; available: {', '.join(sorted(known))}")
    return cls


def _field_names(config_cls: type) -> List[str]:
    return [f.name for f in dataclasses.fields(config_cls)]


def _set(cfg: Any, field: str, value: Any, param: str) -> Any:
    try:
        return dataclasses.replace(cfg, **{field: value})
    except TypeError as exc:
        default = next(f.default for f in dataclasses.fields(cfg) if f.name == field)
        if isinstance(value, float) and (default is None or (isinstance(default, int) and not isinstance(default, bool))):
            try:
                return dataclasses.replace(cfg, **{field: int(round(value))})
            except (TypeError, ValueError) as exc2:
                raise ValueError(f"parameter {param!r} = {value!r}: {exc2}") from None
        raise ValueError(f"parameter {param!r} = {value!r}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"parameter {param!r} = {value!r}: {exc}") from None


def build_configs(params: Dict[str, Any], *, horizon: int, input_size: int, training_config: Any,
                  default_model: Any = "mlp") -> Tuple[type, Any, Any]:
    """(model class, model config, training config) for one point of the space."""
    from ..training.config import TrainingConfig

    cls = resolve_model_class(params.get("model_type", default_model))
    mcfg = cls.config_class().with_horizon(horizon).with_input_size(input_size)
    tcfg = training_config if training_config is not None else TrainingConfig()
    model_fields = set(_field_names(cls.config_class))
    train_fields = set(_field_names(TrainingConfig))
    for name, value in params.items():
        if name == "model_type":
            continue
        side, _, field = name.partition(".")
        if field and side == "model":
            target = "model"
        elif field and side == "training":
            target = "training"
        else:
            field = name
            target = "model" if name in model_fields else "training" if name in train_fields else None
        if target == "model" and field in model_fields:
            mcfg = _set(mcfg, field, value, name)
        elif target == "training" and field in train_fields:
            tcfg = _set(tcfg, field, value, name)
        else:
            raise ValueError(f"parameter {name!r} is neither a field of {cls.config_class.__name__} nor of "
                             f"TrainingConfig (model fields: {', '.join(sorted(model_fields))})")
    return cls, mcfg, tcfg


def check_space(space, *, horizon: int, input_size: int, training_config: Any, default_model: Any) -> None:
    """Fail before the search starts on a name or a value no trial could use: every categorical /
    discrete value and both ends of every continuous range is tried on every model class of the space."""
    from .space import Continuous

    models = [default_model]
    if "model_type" in space.names:
        d = space["model_type"]
        if isinstance(d, Continuous):
            raise ValueError("parameter 'model_type' must be categorical (model names), not continuous")
        models = list(d.values)
    for m in models:
        resolve_model_class(m)
    for d in space:
        if d.name == "model_type":
            continue
        values = [d.low, d.high] if isinstance(d, Continuous) else list(d.values)
        for m in models:
            for v in values:
                build_configs({"model_type": m, d.name: v}, horizon=horizon, input_size=input_size,
                              training_config=training_config)


def parameter_count(model: Any) -> int:
    """Trainable parameters of a (possibly unfitted) model with a point head."""
    total = 0
    for _, shape in model._parameter_specs():
        total += int(math.prod(shape))
    return total


class ForecastObjective:
    """Cross-validated score of one point: refits a fresh model per fold with
    ``TimeSeriesCrossValidator(n_splits=cv_folds, test_size=horizon)`` (or ``validator`` when given: any
    object with ``cross_validate(model, data, config=, metrics=)``) and returns the mean of the
    scoring metric over the folds; ``extra`` adds its standard deviation, the other requested metrics,
    ``training_time`` (seconds for the whole cross-validation) and ``model_size`` (parameters)."""

    returns_extra = True

    def __init__(self, data: Any, *, horizon: int, input_size: int, training_config: Any, cv_folds: int,
                 metrics: Sequence[str], default_model: Any = "mlp", validator: Any = None):
        self.data = data
        self.horizon = horizon
        self.input_size = input_size
        self.training_config = training_config
        self.cv_folds = cv_folds
        self.metrics = list(metrics)
        self.default_model = default_model
        self.validator = validator

    def warm_up(self) -> None:
        """Import what a trial needs (called once in each worker process)."""
        from ..validation import cross_validation  # noqa: F401

        model_classes()

    def build(self, params: Dict[str, Any]):
        return build_configs(params, horizon=self.horizon, input_size=self.input_size,
                             training_config=self.training_config, default_model=self.default_model)

    def __call__(self, params: Dict[str, Any]):
        from ..validation.cross_validation import TimeSeriesCrossValidator

        cls, mcfg, tcfg = self.build(params)
        model = cls(mcfg)
        size = parameter_count(model)
        cv = self.validator
        if cv is None:
            cv = TimeSeriesCrossValidator(n_splits=self.cv_folds, test_size=self.horizon, verbose=False)
        t0 = time.perf_counter()
        res = cv.cross_validate(model, self.data, config=tcfg, metrics=self.metrics)
        elapsed = time.perf_counter() - t0
        main = self.metrics[0]
        extra: Dict[str, Any] = {f"{main}_std": float(res.std(main))}
        for m in self.metrics[1:]:
            extra[m] = float(res.mean(m))
        extra["training_time"] = elapsed
        extra["model_size"] = size
        return float(res.mean(main)), extra
