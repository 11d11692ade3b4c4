"""What every forecaster shares: fit / fit_with_config / predict / save / load.

A model owns a config (immutable), a :class:`ParameterBuffer` and, once fitted, its training logs.
Subclasses declare ``config_class``, ``_parameter_specs()``, ``_init_parameters(rng)`` and
``_forward(x, tape, rng)`` mapping scaled windows (B, input_size) float32 to scaled forecasts (B, horizon).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Optional, Tuple, Type

import numpy as np

from .._version import __version__
from ..checkpointing.safetensors import load_file, save_file
from ..data.scalers import scale, unscale, window_stats
from ..nn.params import ParameterBuffer
from ..nn.tape import Tape, Var
from ..training.config import TrainingConfig
from ..training.logs import TrainingLogs
from ..training.trainer import TrainingDivergedError, train, validation_steps

MODEL_FORMAT = "neurodivergent.model"
MODEL_FORMAT_VERSION = 1

_MODELS: Dict[str, Type["BaseModel"]] = {}


def register(cls: Type["BaseModel"]) -> Type["BaseModel"]:
    """Add a model class to the closed registry used by :func:`load_model` (no dynamic imports)."""
    _MODELS[cls.__name__] = cls
    return cls


class NotFittedError(RuntimeError):
    pass


class BaseModel:
    config_class: type = object

    def __init__(self, config: Any = None):
        if config is None:
            config = self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        # values forecast per horizon step: 1 for point losses, Q for a quantile loss (set by fit from
        # the loss before the parameters are built; heads are horizon * n_outputs wide)
        self.n_outputs = 1
        self.params: Optional[ParameterBuffer] = None
        self.training_logs: Optional[TrainingLogs] = None
        self.training_config: Optional[TrainingConfig] = None

    @classmethod
    def new(cls, config: Any = None) -> "BaseModel":
        return cls(config)

    # ---------------------------------------------------------------- to implement
    def _parameter_specs(self) -> List[Tuple[str, Tuple[int, ...]]]:
        raise NotImplementedError

    def _init_parameters(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _forward(self, x: np.ndarray, tape: Optional[Tape], rng: Optional[np.random.Generator]) -> Var:
        raise NotImplementedError

    # ---------------------------------------------------------------- names
    @property
    def alias(self) -> str:
        return getattr(self.config, "alias", None) or type(self).__name__

    @property
    def output_size(self) -> int:
        """Width of the model head: horizon * n_outputs."""
        return self._require_sizes()[1] * self.n_outputs

    @property
    def is_fitted(self) -> bool:
        return self.params is not None and self.training_logs is not None

    def _require_sizes(self) -> Tuple[int, int]:
        c = self.config
        missing = [n for n in ("input_size", "horizon") if getattr(c, n) is None]
        if missing:
            raise ValueError(f"{type(self).__name__} config has no {' and no '.join(missing)}: "
                             f"set {' and '.join('with_' + n + '(...)' for n in missing)}")
        return c.input_size, c.horizon

    def _check_training_data(self, data, config: TrainingConfig) -> None:
        from ..data.frame import TimeSeriesDataFrame

        if not isinstance(data, TimeSeriesDataFrame):
            raise TypeError(f"data must be a TimeSeriesDataFrame, got {type(data).__name__}")
        inp, h = self._require_sizes()
        need = inp + h
        if config.validation_split > 0:
            # the shortest series must hold one training window and its validation part
            lengths = data.lengths
            val = validation_steps(lengths, h, config.validation_split)
            short = lengths - val < need
            if np.any(short):
                bad = np.flatnonzero(short)
                names = ", ".join(f"'{data.ids[i]}' ({lengths[i]})" for i in bad[:5])
                more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
                raise ValueError(
                    f"{len(bad)} series are too short for input_size + horizon = {need} plus a validation "
                    f"part of {config.validation_split:g} of their length: {names}{more}")
        data.check_length(need, what=f"input_size + horizon = {need}")

    # ---------------------------------------------------------------- training
    def fit(self, data, config: Optional[TrainingConfig] = None) -> TrainingLogs:
        """Train on every series of ``data`` (a TimeSeriesDataFrame) with ``config`` or the defaults."""
        return self.fit_with_config(data, config if config is not None else TrainingConfig())

    def fit_with_config(self, data, config: TrainingConfig) -> TrainingLogs:
        if not isinstance(config, TrainingConfig):
            raise TypeError(f"config must be a TrainingConfig, got {type(config).__name__}")
        self._check_training_data(data, config)
        previous = (self.params, self.training_logs, self.training_config)
        self.params = ParameterBuffer(self._parameter_specs())
        try:
            logs = train(self, data.y, data.offsets, config)
        except BaseException:
            # nothing half-trained survives a failure: the model is as it was before fit
            self.params, self.training_logs, self.training_config = previous
            raise
        self.training_logs = logs
        self.training_config = config
        return logs

    async def fit_async(self, data, config: Optional[TrainingConfig] = None) -> TrainingLogs:
        """Awaitable twin of :meth:`fit`; trains in a worker thread (kernels release the GIL)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.fit, data, config)

    async def fit_with_config_async(self, data, config: TrainingConfig) -> TrainingLogs:
        return await asyncio.get_running_loop().run_in_executor(None, self.fit_with_config, data, config)

    # ---------------------------------------------------------------- inference
    def _require_fitted(self) -> None:
        if self.params is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(data) or load a saved model")

    def predict_array(self, windows: np.ndarray) -> np.ndarray:
        """Forecasts (B, horizon) float64 for raw input windows (B, input_size)."""
        self._require_fitted()
        inp, h = self._require_sizes()
        x = np.asarray(windows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != inp:
            raise ValueError(f"windows must have shape (B, {inp}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("windows contain NaN or inf")
        out = np.empty((x.shape[0], h))
        for a in range(0, x.shape[0], 4096):
            xb = x[a:a + 4096]
            loc, sc = window_stats(xb, self.config.scaler)
            z = self._forward(scale(xb, loc, sc), None, None).data
            out[a:a + 4096] = unscale(z, loc, sc)
        return out

    def predict(self, data):
        """Forecast ``horizon`` steps after the end of every series of ``data``.

        Returns a ForecastFrame with columns ``unique_id``, ``ds`` and one column named after the model.
        """
        from ..data.forecast import ForecastFrame
        from ..data.frame import TimeSeriesDataFrame

        self._require_fitted()
        if not isinstance(data, TimeSeriesDataFrame):
            raise TypeError(f"data must be a TimeSeriesDataFrame, got {type(data).__name__}")
        inp, h = self._require_sizes()
        data.check_length(inp, what=f"input_size = {inp}")
        ends = data.offsets[1:]
        rows = ends[:, None] + np.arange(-inp, 0)[None, :]
        yhat = self.predict_array(data.y[rows])
        return ForecastFrame.from_arrays(data.ids, data.future_ds(h), {self.alias: yhat})

    # ---------------------------------------------------------------- persistence
    def save(self, path: str) -> None:
        """Write a safetensors-compatible file: the parameters as tensors, the config and training
        history as JSON strings in the header's metadata. Written atomically."""
        self._require_fitted()
        meta = {
            "format": MODEL_FORMAT,
            "format_version": str(MODEL_FORMAT_VERSION),
            "library_version": __version__,
            "model_class": type(self).__name__,
            "model_config": json.dumps(self.config.to_dict(), sort_keys=True),
            "training_logs": json.dumps(self.training_logs.to_dict() if self.training_logs else {}),
            "training_config": json.dumps(self.training_config.to_dict() if self.training_config else None),
        }
        save_file(self.params.state_dict(), path, metadata=meta)

    @classmethod
    def load(cls, path: str) -> "BaseModel":
        model = load_model(path)
        if not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def __repr__(self) -> str:
        state = "fitted" if self.params is not None else "not fitted"
        return f"{type(self).__name__}({self.config!r}, {state})"


def load_model(path: str) -> BaseModel:
    """Load any saved model; the class comes from a closed registry, never from code in the file."""
    tensors, meta = load_file(path)
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a neurodivergent model file (format={meta.get('format')!r})")
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise ValueError(f"{path} has an unreadable format_version {meta.get('format_version')!r}") from None
    if version > MODEL_FORMAT_VERSION:
        raise ValueError(f"{path} was written by neurodivergent {meta.get('library_version')} in model format "
                         f"{version}; this version ({__version__}) reads format <= {MODEL_FORMAT_VERSION}: upgrade")
    name = meta.get("model_class")
    if name not in _MODELS:
        raise ValueError(f"{path} holds an unknown model class {name!r}; known: {', '.join(sorted(_MODELS))}")
    cls = _MODELS[name]
    try:
        config = cls.config_class.from_dict(json.loads(meta["model_config"]))
        logs = TrainingLogs.from_dict(json.loads(meta.get("training_logs", "{}")) or {})
        tc = json.loads(meta.get("training_config", "null"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} has a damaged model header: {exc}") from None
    model = cls(config)
    model.params = ParameterBuffer(model._parameter_specs())
    model.params.load_state_dict(tensors)
    model.training_logs = logs
    model.training_config = TrainingConfig.from_dict(tc) if tc else None
    return model


__all__ = ["BaseModel", "NotFittedError", "TrainingDivergedError", "load_model", "register"]
