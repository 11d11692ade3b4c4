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
from ..checkpointing.files import (CHECKPOINT_FORMAT, FORMAT_VERSION, MODEL_FORMAT, CheckpointError, check_format,
                                   read_file, write_file)
from ..data.scalers import scale, unscale, window_stats
from ..nn.params import ParameterBuffer
from ..nn.tape import Tape, Var
from ..training.config import TrainingConfig
from ..training.logs import TrainingLogs
from ..training.trainer import TrainingDivergedError, train, validation_steps

MODEL_FORMAT_VERSION = FORMAT_VERSION
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
        # (tensors, JSON state) of the end of the last training run or of a loaded checkpoint: what
        # save_checkpoint writes and resume_training continues from
        self._train_state: Optional[Tuple[Dict[str, np.ndarray], Dict[str, Any]]] = None
        self._saved_training_config: Optional[Dict[str, Any]] = None  # lossy dict of a loaded checkpoint
        self._active_run: Any = None  # the training run in progress (trainer._Run)

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
        return self._train(data, config, loss, None)

    def _train(self, data, config: TrainingConfig, loss, resume) -> TrainingLogs:
        previous = (self.params, self.training_logs, self.training_config, self._structure(), self.buffers,
                    self._train_state, self._saved_training_config)
        try:
            if resume is None:
                self._set_structure({"n_outputs": int(loss.n_outputs),
                                     "quantiles": getattr(loss, "quantiles", None) if loss.n_outputs > 1 else None,
                                     "batch_norm": config.batch_norm})
            self.params = ParameterBuffer(self._parameter_specs())
            logs = train(self, data.y, data.offsets, config, ds=data.ds, loss=loss, resume=resume)
        except BaseException:
            # nothing half-trained survives a failure: the model is as it was before fit
            (self.params, self.training_logs, self.training_config, structure, self.buffers,
             self._train_state, self._saved_training_config) = previous
            self._set_structure(structure)
            raise
        self.training_logs = logs
        self.training_config = config
        self._saved_training_config = None
        return logs

    # ---------------------------------------------------------------- checkpoints and resume
    # fields that may differ between the interrupted run's config and the resuming one: limits, output,
    # checkpointing and fault tolerance; every other field changes the steps and must be equal
    RESUME_MAY_CHANGE = ("max_epochs", "max_steps", "verbose", "checkpointing", "checkpoint_every", "checkpoint_dir",
                         "fault_tolerance", "monitor", "visualizer")

    def save_checkpoint(self, path: str, compression: Optional[str] = None) -> None:
        """Write a checkpoint: the model plus the complete training state, from which
        :meth:`resume_training` continues bitwise identically (also in a new process).

        After ``fit`` (or ``load_checkpoint``) it holds the state at the end of that run. Called from a
        callback during training, it holds the state after the current step (``on_batch_end``,
        ``on_epoch_begin``, ``on_train_begin``); from ``on_epoch_end`` it is written once the epoch is
        complete (after every callback, the monitor and early stopping), so that it holds a clean epoch
        boundary; from ``on_train_end`` it holds the end of the run. ``compression``: None, ``"gzip"`` or ``"lzma"`` (default: from the suffix, ``.gz`` /
        ``.xz``); see :mod:`neurodivergent.checkpointing`."""
        path = str(path)
        if compression is None:
            compression = "gzip" if path.endswith(".gz") else "lzma" if path.endswith(".xz") else None
        run = self._active_run
        if run is not None:
            run.request_save(path, compression)
            return
        if self._train_state is None:
            raise NotFittedError(f"{type(self).__name__} has no training state to checkpoint: call fit(data) or "
                                 "load a checkpoint (a model loaded with load_model has none)")
        tensors, state = self._train_state
        config = self.training_config
        self._write_checkpoint(path, tensors, state, config, compression=compression, training_metadata=None,
                               config_dict=self._saved_training_config)

    def discard_training_state(self) -> None:
        """Free the training state kept after ``fit`` / ``load_checkpoint`` (optimizer moments, best
        weights, per-step logs: about three times the parameters' memory with Adam). Prediction and
        ``save`` still work; ``save_checkpoint`` and ``resume_training`` no longer do."""
        self._train_state = None

    def _checkpoint_tensors(self) -> Dict[str, np.ndarray]:
        """Copies of the parameters (by name) and buffers (``buffers/<name>``)."""
        tensors = self.params.state_dict()
        for k, v in self.buffers.items():
            tensors[BUFFER_PREFIX + k] = np.ascontiguousarray(v).copy()
        return tensors

    def _load_checkpoint_tensors(self, tensors: Dict[str, np.ndarray]) -> None:
        params = {k: v for k, v in tensors.items() if "/" not in k}
        self.params.load_state_dict(params)
        for k in self.buffers:
            v = tensors.get(BUFFER_PREFIX + k)
            if v is None or tuple(v.shape) != self.buffers[k].shape:
                raise CheckpointError(f"buffer {k!r} is missing from the checkpoint or has the wrong shape")
            self.buffers[k][...] = v

    def _model_metadata(self, fmt: str, config: Optional[TrainingConfig],
                        config_dict: Optional[Dict[str, Any]] = None) -> Dict[str, str]:
        if config_dict is None and config is not None:
            config_dict = config.to_dict(lossy=True)
        return {
            "format": fmt,
            "format_version": str(FORMAT_VERSION),
            "library_version": __version__,
            "model_class": type(self).__name__,
            "model_config": json.dumps(self.config.to_dict(), sort_keys=True),
            "training_config": json.dumps(config_dict, allow_nan=False),
            "structure": json.dumps(self._structure()),
        }

    def _write_checkpoint(self, path: str, tensors: Dict[str, np.ndarray], state: Dict[str, Any],
                          config: Optional[TrainingConfig], *, compression: Optional[str],
                          training_metadata: Optional[Dict[str, Any]], config_dict=None) -> None:
        meta = self._model_metadata(CHECKPOINT_FORMAT, config, config_dict)
        meta["training_state"] = json.dumps(state, allow_nan=False)
        if training_metadata is not None:
            meta["training_metadata"] = json.dumps(training_metadata, allow_nan=False)
        try:
            write_file(path, tensors, meta, compression=compression, create=True)
        except FileExistsError:
            write_file(path, tensors, meta, compression=compression)

    @classmethod
    def load_checkpoint(cls, path: str) -> "BaseModel":
        """Load a checkpoint written by :meth:`save_checkpoint` or automatic checkpointing; the model
        predicts at once and :meth:`resume_training` continues the run."""
        model = load_checkpoint(path)
        if not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__} checkpoint, not a {cls.__name__}: use "
                            f"{type(model).__name__}.load_checkpoint or neurodivergent.load_checkpoint")
        return model

    def resume_training(self, data, config: Optional[TrainingConfig] = None) -> TrainingLogs:
        """Continue the run of a checkpoint (or of the last ``fit``) on the same ``data``; the steps
        taken are bitwise those the uninterrupted run takes. ``config`` defaults to the run's own; a
        different one may change only :attr:`RESUME_MAY_CHANGE` (e.g. a larger ``max_epochs`` trains
        further); user callbacks that could not be saved are not compared (pass the same ones). Returns the logs of the whole run (the resumed part appended)."""
        if self._train_state is None:
            raise NotFittedError(f"{type(self).__name__} has no training state to resume: load a checkpoint with "
                                 f"{type(self).__name__}.load_checkpoint(path) (or fit first)")
        saved = self._saved_training_config
        if saved is None and self.training_config is not None:
            saved = self.training_config.to_dict(lossy=True)
        if config is None:
            if self.training_config is None:
                raise ValueError("the checkpoint's training config cannot be rebuilt (it holds components that "
                                 "could not be saved): pass the config to resume_training(data, config)")
            config = self.training_config
        if not isinstance(config, TrainingConfig):
            raise TypeError(f"config must be a TrainingConfig, got {type(config).__name__}")
        if saved is not None:
            new = config.to_dict(lossy=True)
            # user callbacks that cannot be saved are not compared (pass the same ones again)
            saved, new = dict(saved), dict(new)
            for d in (saved, new):
                d["callbacks"] = [c for c in d.get("callbacks") or []
                                  if not (isinstance(c, dict) and "__unserialisable__" in c)]
            differ = sorted(k for k in set(saved) | set(new)
                            if k not in self.RESUME_MAY_CHANGE and saved.get(k) != new.get(k))
            if differ:
                raise ValueError(f"the config differs from the checkpoint's in {', '.join(differ)}: a resumed run must "
                                 f"train the same way (only {', '.join(self.RESUME_MAY_CHANGE)} may change)")
        self._check_training_data(data, config)
        return self._train(data, config, config.resolved_loss(), self._train_state)

    async def resume_training_async(self, data, config: Optional[TrainingConfig] = None) -> TrainingLogs:
        """Awaitable twin of :meth:`resume_training` (runs in a worker thread)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.resume_training, data, config)

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

    def predict(self, data, level=None):
        """Forecast ``horizon`` steps after the end of every series of ``data``.

        Returns a ForecastFrame with columns ``unique_id``, ``ds`` and one column named after the model.
        A model trained with a quantile loss adds one column per level, ``<alias>-q-<level>`` (e.g.
        ``MLP-q-0.1``, ``MLP-q-0.5``, ``MLP-q-0.9``), sorted so that they never cross; the main column is
        the median (the level nearest 0.5, the lower on a tie, when 0.5 is not among the levels).
        ``level=[80, 90]`` (quantile models only) adds prediction intervals ``<alias>-lo-80`` /
        ``<alias>-hi-80`` (the 0.1 and 0.9 quantiles; between trained levels they are interpolated
        linearly, outside them a ValueError says which levels to train).
        """
        from ..data.forecast import ForecastFrame
        from ..data.frame import TimeSeriesDataFrame
        from ..validation.probabilistic import check_levels, intervals_from_quantiles

        self._require_fitted()
        levels = check_levels(level)
        if levels and not self.quantiles:
            raise ValueError(f"level={list(levels)} asks for prediction intervals, but {type(self).__name__} was "
                             "trained for point forecasts: train with LossFunction.Quantile(QuantileConfig()"
                             ".with_quantiles([...])) covering the interval bounds (e.g. 0.1 and 0.9 for 80%)")
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
            for lv, (lo, hi) in intervals_from_quantiles(outs, self.quantiles, levels).items():
                cols[f"{self.alias}-lo-{lv:g}"] = lo
                cols[f"{self.alias}-hi-{lv:g}"] = hi
        return ForecastFrame.from_arrays(data.ids, data.future_ds(h), cols)

    # ---------------------------------------------------------------- persistence
    def save(self, path: str) -> None:
        """Write a safetensors-compatible model file for inference: the parameters (and buffers) as
        tensors; the config, structure and training history as JSON strings in the header's metadata,
        with the format version, the library version and a SHA-256 (see
        :mod:`neurodivergent.checkpointing.files`). Written atomically. It holds no training state:
        :meth:`save_checkpoint` writes one that training can resume from."""
        self._require_fitted()
        meta = self._model_metadata(MODEL_FORMAT, self.training_config, self._saved_training_config
                                    if self.training_config is None else None)
        meta["training_logs"] = json.dumps(self.training_logs.to_dict() if self.training_logs else {})
        write_file(path, self._checkpoint_tensors(), meta)

    @classmethod
    def load(cls, path: str) -> "BaseModel":
        """Load a model file (``save``) or the model of a checkpoint file, checking its class."""
        model = load_model(path)
        if not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def __repr__(self) -> str:
        state = "fitted" if self.params is not None else "not fitted"
        return f"{type(self).__name__}({self.config!r}, {state})"


# modules of the library's own models, imported (when present) before a file's class name is looked up:
# a fixed list in code, never a name taken from a file
_BUILTIN_MODEL_MODULES = ("mlp", "lstm", "gru", "transformer", "deepar")


def _import_builtin_models() -> None:
    import importlib

    for mod in _BUILTIN_MODEL_MODULES:
        full = f"{__package__}.{mod}"
        try:
            importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:
                raise


def _rebuild(path: str, tensors: Dict[str, np.ndarray], meta: Dict[str, str]) -> BaseModel:
    """The model of a model or checkpoint file; the class comes from the closed registry ``_MODELS``."""
    name = meta.get("model_class")
    if name not in _MODELS:
        _import_builtin_models()
    if name not in _MODELS:
        raise CheckpointError(f"{path} holds an unknown model class {name!r}; known: {', '.join(sorted(_MODELS))}")
    cls = _MODELS[name]
    try:
        config = cls.config_class.from_dict(json.loads(meta["model_config"]))
        tc = json.loads(meta.get("training_config", "null"))
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} has a damaged model header: {exc!r}") from None
    model = cls(config)
    tconf = None
    if tc:
        try:
            tconf = TrainingConfig.from_dict(tc, drop_unserialisable=True)
        except (TypeError, ValueError, ImportError, KeyError) as exc:
            import logging

            logging.getLogger("neurodivergent").warning("%s: the training config cannot be rebuilt (%s); "
                                                        "training_config is None", path, exc)
    try:
        if "structure" in meta:
            model._set_structure(json.loads(meta["structure"]))
        elif tconf is not None:  # files written before the structure field: the loss decides the head
            loss = tconf.resolved_loss()
            model._set_structure({"n_outputs": loss.n_outputs,
                                  "quantiles": getattr(loss, "quantiles", None) if loss.n_outputs > 1 else None})
        model.params = ParameterBuffer(model._parameter_specs())
    except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path} has a damaged model header: {exc!r}") from None
    buffers = {k[len(BUFFER_PREFIX):]: v for k, v in tensors.items() if k.startswith(BUFFER_PREFIX)}
    params = {k: v for k, v in tensors.items() if "/" not in k}
    try:
        model.params.load_state_dict(params)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if not all(np.all(np.isfinite(v)) for v in params.values()):
        raise CheckpointError(f"{path}: parameters hold NaN or inf")
    model._init_buffers()
    if set(buffers) != set(model.buffers):
        raise CheckpointError(f"{path}: buffers differ from what {name} expects: got {sorted(buffers)[:5]}, "
                              f"expected {sorted(model.buffers)[:5]}")
    for k, v in buffers.items():
        if tuple(v.shape) != model.buffers[k].shape or not np.all(np.isfinite(v)):
            raise CheckpointError(f"{path}: buffer {k!r} has shape {tuple(v.shape)} or non-finite values")
        model.buffers[k][...] = v
    model.training_config = tconf
    if tconf is None and tc:
        model._saved_training_config = tc
    return model


def load_model(path: str) -> BaseModel:
    """Load any saved model (``model.save``) or the model of a checkpoint, ready to predict; the class
    comes from a closed registry, never from code in the file. Damaged files, files of an unknown format
    or of a newer format version raise a :class:`~neurodivergent.checkpointing.CheckpointError` (a
    ValueError) saying so."""
    tensors, meta = read_file(path)
    check_format(path, meta)
    model = _rebuild(path, tensors, meta)
    if meta["format"] == CHECKPOINT_FORMAT:
        from ..training.trainer import logs_from_state, validate_state

        state = _state_of(path, meta)
        validate_state(path, tensors, state)
        model.training_logs = logs_from_state(tensors, state)
    else:
        try:
            model.training_logs = TrainingLogs.from_dict(json.loads(meta.get("training_logs", "{}")) or {})
        except (TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{path} has a damaged model header: {exc!r}") from None
    return model


def _state_of(path: str, meta: Dict[str, str]) -> Dict[str, Any]:
    try:
        state = json.loads(meta["training_state"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: the checkpoint's training state is missing or damaged: {exc!r}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: the checkpoint's training state is not a JSON object")
    return state


def load_checkpoint(path: str) -> BaseModel:
    """Load a checkpoint of any model (the class from the closed registry of model classes): the
    model predicts at once and ``model.resume_training(data, config)`` continues its run."""
    tensors, meta = read_file(path)
    check_format(path, meta, accepted=(CHECKPOINT_FORMAT,))
    model = _rebuild(path, tensors, meta)
    from ..training.trainer import logs_from_state, validate_state

    state = _state_of(path, meta)
    validate_state(path, tensors, state)
    model.training_logs = logs_from_state(tensors, state)
    model._train_state = (tensors, state)
    if model._saved_training_config is None:
        model._saved_training_config = json.loads(meta.get("training_config", "null"))
    return model


__all__ = ["BaseModel", "NotFittedError", "TrainingDivergedError", "load_model", "load_checkpoint", "register"]
