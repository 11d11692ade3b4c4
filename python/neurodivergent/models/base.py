"""What every forecaster shares: fit / fit_with_config / predict / save / load.

A model owns a config (immutable), a :class:`ParameterBuffer` and, once fitted, its training logs.
Subclasses declare ``config_class``, ``_parameter_specs()``, ``_init_parameters(rng)`` and
``_forward(x, tape, rng)`` mapping scaled windows (B, input_size) float32 to scaled forecasts
(B, horizon * n_outputs) laid out as (B, horizon, n_outputs) flattened (output index fastest). A
``_forward`` that also takes a keyword ``y`` gets the scaled targets during training (teacher forcing).

Optional, for models that have them: ``default_gradient_clipping`` (class attribute or property; None
here), ``buffers`` (named non-trained float arrays such as batch-norm running statistics, saved with the
model; set them up in ``_init_buffers()``), ``supports_<feature>`` class attributes for the training options
``batch_norm``, ``attention_dropout``, ``teacher_forcing`` and ``sequence_length`` (without the attribute a
model supports ``teacher_forcing`` / ``sequence_length`` when it defines ``_teacher_forcing_ratio`` /
``_sequence_length``), ``_structure()`` / ``_set_structure(d)`` for shape-changing options that must be
saved. During ``fit`` the TrainingConfig in use is ``self._fit_config`` and ``self._dropout_rate()`` is the
dropout to apply (``TrainingConfig.dropout`` when set, else the model config's).
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
BUFFER_PREFIX = "buffers/"  # tensor names of non-trained state (batch-norm running statistics)

_MODELS: Dict[str, Type["BaseModel"]] = {}


def register(cls: Type["BaseModel"]) -> Type["BaseModel"]:
    """Add a model class to the closed registry used by :func:`load_model` (no dynamic imports)."""
    _MODELS[cls.__name__] = cls
    return cls


class NotFittedError(RuntimeError):
    pass


class BaseModel:
    config_class: type = object
    # gradient clipping used when TrainingConfig.gradient_clipping is left at 'model_default'
    default_gradient_clipping: Any = None
    supports_batch_norm: Optional[bool] = None
    supports_attention_dropout: Optional[bool] = None
    supports_teacher_forcing: Optional[bool] = None
    supports_sequence_length: Optional[bool] = None

    def __init__(self, config: Any = None):
        if config is None:
            config = self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        # values forecast per horizon step: 1 for point losses, Q for a quantile loss (set by fit from
        # the loss before the parameters are built; heads are horizon * n_outputs wide)
        self.n_outputs = 1
        self.quantiles: Optional[Tuple[float, ...]] = None  # levels of a quantile head, in output order
        self.batch_norm = False  # set from TrainingConfig.batch_norm by fit (models that support it)
        self.buffers: Dict[str, np.ndarray] = {}  # non-trained state saved with the model
        self._fit_config: Optional[TrainingConfig] = None
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

    # ---------------------------------------------------------------- optional hooks
    def _init_buffers(self) -> None:
        """Create ``self.buffers`` for a fresh training run (after the parameters exist)."""
        self.buffers = {}

    def _supports(self, feature: str) -> bool:
        flag = getattr(type(self), f"supports_{feature}", None)
        if flag is not None:
            return bool(flag)
        if feature == "teacher_forcing":
            return hasattr(type(self), "_teacher_forcing_ratio")
        if feature == "sequence_length":
            return hasattr(type(self), "_sequence_length")
        return False

    def _dropout_rate(self) -> float:
        """Dropout for this training run: TrainingConfig.dropout when set, else the model config's."""
        fc = self._fit_config
        if fc is not None and fc.dropout is not None:
            return fc.dropout
        return float(getattr(self.config, "dropout", 0.0) or 0.0)

    def _structure(self) -> Dict[str, Any]:
        """Shape-changing state decided at fit time (saved with the model)."""
        return {"n_outputs": self.n_outputs, "quantiles": None if self.quantiles is None else list(self.quantiles),
                "batch_norm": self.batch_norm}

    def _set_structure(self, d: Dict[str, Any]) -> None:
        self.n_outputs = int(d.get("n_outputs", 1))
        q = d.get("quantiles")
        self.quantiles = None if q is None else tuple(float(x) for x in q)
        self.batch_norm = bool(d.get("batch_norm", False))

    def _snapshot_state(self):
        """Copies of the parameters and buffers (for early stopping's best weights)."""
        return self.params.data.copy(), {k: v.copy() for k, v in self.buffers.items()}

    def _restore_state(self, state) -> None:
        data, bufs = state
        self.params.data[...] = data
        for k, v in bufs.items():
            self.buffers[k][...] = v

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
        """Train with ``config``. The loss decides the head's width before the parameters are built
        (a quantile loss with Q levels: ``n_outputs = Q``); the returned logs are also kept as
        ``self.training_logs``. On any error the model is left exactly as it was before."""
        if not isinstance(config, TrainingConfig):
            raise TypeError(f"config must be a TrainingConfig, got {type(config).__name__}")
        self._check_training_data(data, config)
        loss = config.resolved_loss()
        previous = (self.params, self.training_logs, self.training_config, self._structure(), self.buffers)
        try:
            self._set_structure({"n_outputs": int(loss.n_outputs),
                                 "quantiles": getattr(loss, "quantiles", None) if loss.n_outputs > 1 else None,
                                 "batch_norm": config.batch_norm})
            self.params = ParameterBuffer(self._parameter_specs())
            logs = train(self, data.y, data.offsets, config, ds=data.ds, loss=loss)
        except BaseException:
            # nothing half-trained survives a failure: the model is as it was before fit
            self.params, self.training_logs, self.training_config, structure, self.buffers = previous
            self._set_structure(structure)
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

    def predict_outputs(self, windows: np.ndarray) -> np.ndarray:
        """Every output (B, horizon, n_outputs) float64 for raw input windows (B, input_size), in the
        original scale. For a quantile head the outputs of each (window, step) are sorted so that the
        quantile forecasts never cross (rearrangement: it never increases the pinball loss)."""
        self._require_fitted()
        inp, h = self._require_sizes()
        x = np.asarray(windows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != inp:
            raise ValueError(f"windows must have shape (B, {inp}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("windows contain NaN or inf")
        q = self.n_outputs
        out = np.empty((x.shape[0], h, q))
        for a in range(0, x.shape[0], 4096):
            xb = x[a:a + 4096]
            loc, sc = window_stats(xb, self.config.scaler)
            z = self._forward(scale(xb, loc, sc), None, None).data.reshape(len(xb), h, q)
            out[a:a + 4096] = unscale(z, loc[:, :, None], sc[:, :, None])
        if q > 1:
            out.sort(axis=2)
        return out

    def predict_array(self, windows: np.ndarray) -> np.ndarray:
        """Point forecasts (B, horizon) float64 for raw input windows (B, input_size): the only output,
        or the median of a quantile head (the level nearest 0.5 when 0.5 is not among them)."""
        from ..training.trainer import point_column

        return self.predict_outputs(windows)[:, :, point_column(self)]

    def predict(self, data):
        """Forecast ``horizon`` steps after the end of every series of ``data``.

        Returns a ForecastFrame with columns ``unique_id``, ``ds`` and one column named after the model.
        A model trained with a quantile loss adds one column per level, ``<alias>-q-<level>`` (e.g.
        ``MLP-q-0.1``, ``MLP-q-0.5``, ``MLP-q-0.9``), sorted so that they never cross; the main column is
        the median (the level nearest 0.5, the lower on a tie, when 0.5 is not among the levels).
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
        outs = self.predict_outputs(data.y[rows])
        from ..training.trainer import point_column

        cols = {self.alias: outs[:, :, point_column(self)]}
        if self.quantiles:
            for i, q in enumerate(self.quantiles):
                cols[f"{self.alias}-q-{q:g}"] = outs[:, :, i]
        return ForecastFrame.from_arrays(data.ids, data.future_ds(h), cols)

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
            "training_config": json.dumps(self.training_config.to_dict(lossy=True) if self.training_config else None),
            "structure": json.dumps(self._structure()),
        }
        tensors = self.params.state_dict()
        for k, v in self.buffers.items():
            tensors[BUFFER_PREFIX + k] = np.ascontiguousarray(v).copy()
        save_file(tensors, path, metadata=meta)

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
    tconf = None
    if tc:
        try:
            tconf = TrainingConfig.from_dict(tc, drop_unserialisable=True)
        except (TypeError, ValueError, ImportError) as exc:
            import logging

            logging.getLogger("neurodivergent").warning("%s: the training config cannot be rebuilt (%s); "
                                                        "training_config is None", path, exc)
    if "structure" in meta:
        try:
            model._set_structure(json.loads(meta["structure"]))
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"{path} has a damaged model header: {exc}") from None
    elif tconf is not None:  # files written before the structure field: the loss decides the head
        loss = tconf.resolved_loss()
        model._set_structure({"n_outputs": loss.n_outputs,
                              "quantiles": getattr(loss, "quantiles", None) if loss.n_outputs > 1 else None})
    buffers = {k[len(BUFFER_PREFIX):]: v for k, v in tensors.items() if k.startswith(BUFFER_PREFIX)}
    params = {k: v for k, v in tensors.items() if not k.startswith(BUFFER_PREFIX)}
    model.params = ParameterBuffer(model._parameter_specs())
    model.params.load_state_dict(params)
    model._init_buffers()
    if set(buffers) != set(model.buffers):
        raise ValueError(f"{path}: buffers differ from what {name} expects: got {sorted(buffers)[:5]}, "
                         f"expected {sorted(model.buffers)[:5]}")
    for k, v in buffers.items():
        if tuple(v.shape) != model.buffers[k].shape or not np.all(np.isfinite(v)):
            raise ValueError(f"{path}: buffer {k!r} has shape {tuple(v.shape)} or non-finite values")
        model.buffers[k][...] = v
    model.training_logs = logs
    model.training_config = tconf
    return model


__all__ = ["BaseModel", "NotFittedError", "TrainingDivergedError", "load_model", "register"]
