"""The training loop shared by every model (point, quantile and, through training hooks, DeepAR's likelihood).

Per step: gather a batch of windows -> scale each window by its input's statistics -> (augmentation)
-> model forward (recording a tape) -> loss value and gradient (C++) -> backward into the flat gradient
buffer -> L1/L2 penalty terms -> clip by value -> clip by norm -> fused optimizer update (C++) with the
step's learning rate -> ``on_batch_end`` callbacks. Per epoch: validation loss and metrics, user
callbacks, early stopping, monitor logs and plots, checkpoints, progress. See
:mod:`neurodivergent.training.config` for the definitions (step, epoch, learning-rate precedence).

**Exact resume.** Everything the loop uses lives in one :class:`_Run` and is captured by
``_Run.capture()`` at a clean point (after a step, or between epochs): the parameters and buffers
(batch-norm statistics), the optimizer's buffers and step count, the position (epoch, step, index of
the next batch in the epoch's shuffled order, the order itself, the epoch's running loss / gradient-norm
sums and its last learning rate), the three random generators (shuffling, dropout / teacher forcing,
augmentation), early stopping (best value, patience counter, best weights), the state of the config's
callbacks (``state_dict()`` / ``load_state_dict()`` when they define them; ReduceLROnPlateau's counters),
the logs (history, per-step losses and rates, the learning-rate override), the checkpoint files kept
and a SHA-256 of the training data. The learning-rate schedules are pure functions of (epoch, step) and
the window scalers are computed per window, so neither has state of its own. ``_Run.apply`` puts a
captured state back; a run resumed in a new process then takes bitwise the same steps.

**Models with a batch of their own.** A model whose training windows are not the plain scaled
``(input, target)`` pairs (DeepAR: lagged targets, calendar / age features, its own scaler and a
negative log-likelihood on likelihood outputs) defines ``_training_hooks(data, config)`` and is given the
whole data frame (``train(..., data=frame)``). The object it returns provides

* ``check(wanted)``: raise a ValueError for recorded metrics (a set of :class:`Metric`) or options it
  cannot honour, before anything is initialised;
* ``fingerprint()``: bytes of every input the network sees besides the target values (features,
  static and exogenous columns), hashed into the data's SHA-256 so that a resume checks them too;
* ``train_step(sampler, idx, tape, dropout_rng, augmentation, augmentation_rng)`` ->
  ``(out, loss_value, d_out)``: the forward pass of training windows ``idx`` recorded on ``tape``, the
  loss and its gradient with respect to ``out`` (the loop then runs backward, penalties, clipping and
  the optimizer step as for every model);
* ``evaluate(sampler)`` -> ``{"validation_loss": ...}``: the validation loss without dropout.

Everything else (positions, optimizer, schedules, the three random generators, early stopping,
callbacks, monitor, visualizer, checkpoints, retries, graceful shutdown) is the shared loop's. The point
and quantile models go through the same interface (``_PointHooks``: scaled windows, augmentation, the
configured loss and its per-row weights), so the step has a single path.
"""
from __future__ import annotations

import datetime
import hashlib
import inspect
import logging
import math
import os
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._backend import core as _core
from .._version import __version__
from ..data.scalers import scale, unscale, window_stats
from ..data.windows import WindowSampler
from ..nn._buffers import release_buffers
from ..nn.tape import Tape
from .callbacks import EarlyStoppingCallback, check_result
from .config import MODEL_DEFAULT, Metric, TrainingConfig, _warmup_factor
from .fault_tolerance import GracefulShutdown, Watchdog
from .logs import TrainingLogs
from .progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    from ..models.base import BaseModel

log = logging.getLogger("neurodivergent")


class TrainingDivergedError(FloatingPointError):
    """The loss or the parameters became NaN / inf; the model is left as it was before ``fit``."""


def validation_steps(lengths: np.ndarray, horizon: int, split: float) -> np.ndarray:
    """Time steps held out at the end of each series for validation (0 when split == 0)."""
    if split <= 0:
        return np.zeros_like(lengths)
    return np.maximum(horizon, np.ceil(split * lengths).astype(np.int64))


def make_samplers(values, offsets, input_size: int, horizon: int,
                  split: float) -> Tuple[WindowSampler, Optional[WindowSampler]]:
    lengths = np.diff(offsets)
    val = validation_steps(lengths, horizon, split)
    train = WindowSampler.for_series(values, offsets, input_size, horizon, end=lengths - val)
    if split <= 0:
        return train, None
    valid = WindowSampler.for_series(values, offsets, input_size, horizon, start=lengths - val)
    return train, valid


# ------------------------------------------------------------------------------------------ helpers
def _target_rows(sampler: WindowSampler, idx: np.ndarray) -> np.ndarray:
    """Flat data rows (B, horizon) of the targets of windows idx (to gather per-row loss weights)."""
    s, t = sampler.locate(idx)
    return (sampler.offsets[s] + t)[:, None] + np.arange(sampler.horizon, dtype=np.int64)[None, :]


def _scaled_batch(sampler: WindowSampler, idx: np.ndarray, scaler: str):
    x, y = sampler.gather(idx)
    loc, sc = window_stats(x, scaler)
    return scale(x, loc, sc), scale(y, loc, sc)


def point_column(model: "BaseModel") -> int:
    """Index, among the model's outputs per step, of the point forecast: the median of a quantile head
    (the level nearest 0.5, the lower one on a tie), the only output otherwise."""
    q = getattr(model, "quantiles", None)
    if not q:
        return 0
    d = [abs(x - 0.5) for x in q]
    return int(min(range(len(q)), key=lambda i: (d[i], q[i])))


def check_model_options(model: "BaseModel", config: TrainingConfig, loss: Any) -> None:
    """Raise a ValueError for any training option the model or the loss cannot honour."""
    name = type(model).__name__
    if config.label_smoothing > 0 and not getattr(loss, "defines_label_smoothing", False):
        raise ValueError(f"label_smoothing={config.label_smoothing} is set but the loss {loss!r} does not define "
                         "label smoothing (no regression loss does; it is a classification technique): "
                         "remove with_label_smoothing or use a loss that defines it")
    checks = [("teacher_forcing_ratio", config.teacher_forcing_ratio is not None, "teacher_forcing",
               "it is used by recurrent sequence-to-sequence models (LSTM / GRU with mode='seq2seq')"),
              ("sequence_length", config.sequence_length is not None, "sequence_length",
               "it is used by recurrent models; this model reads input_size values"),
              ("attention_dropout", config.attention_dropout > 0, "attention_dropout",
               "it is used by attention models (Transformer)"),
              ("batch_norm", config.batch_norm, "batch_norm", "batch normalisation is implemented for the MLP")]
    for field, is_set, feature, why in checks:
        if is_set and not model._supports(feature):
            raise ValueError(f"{field}={getattr(config, field)!r} is set but {name} does not support it ({why}); "
                             f"remove with_{field}")


def _clippings(model: "BaseModel", config: TrainingConfig) -> Tuple[Any, ...]:
    clips = config.gradient_clipping
    if isinstance(clips, str) and clips == MODEL_DEFAULT:
        d = getattr(model, "default_gradient_clipping", None)
        if d is None:
            return ()
        return config.with_gradient_clipping(list(d) if isinstance(d, (list, tuple)) else d).gradient_clipping
    return tuple(clips)


class _Evaluator:
    """Loss (scaled space) and original-scale metrics over every window of a sampler, no dropout."""

    def __init__(self, model, loss, row_weights, metrics: Sequence[Metric], batch: int = 1024):
        self.model = model
        self.loss = loss
        self.row_weights = row_weights
        self.metrics = [m for m in metrics if m in (Metric.MAE, Metric.MAPE, Metric.RMSE, Metric.SMAPE)]
        self.batch = batch

    def __call__(self, sampler: WindowSampler) -> Dict[str, float]:
        model, n = self.model, sampler.n_windows
        total, count = 0.0, 0.0
        ys, yhats = [], []
        col, q = point_column(model), model.n_outputs
        for a in range(0, n, self.batch):
            idx = np.arange(a, min(n, a + self.batch))
            x, y = sampler.gather(idx)
            loc, sc = window_stats(x, model.config.scaler)
            xs, ysc = scale(x, loc, sc), scale(y, loc, sc)
            pred = model._forward(xs, None, None).data
            w = None
            if self.row_weights is not None:
                w = self.row_weights[_target_rows(sampler, idx)].astype(np.float32)
            wsum = float(w.sum()) if w is not None else float(ysc.size)
            if wsum > 0:
                total += self.loss.value(pred, ysc, w) * wsum
                count += wsum
            if self.metrics:
                point = pred.reshape(len(idx), -1, q)[:, :, col]
                ys.append(y)
                yhats.append(unscale(point, loc, sc))
        out = {"validation_loss": total / count if count > 0 else 0.0}
        if self.metrics:
            from ..validation import metrics as M

            yy, hh = np.concatenate(ys), np.concatenate(yhats)
            fns = {Metric.MAE: M.mae, Metric.MAPE: M.mape, Metric.RMSE: M.rmse, Metric.SMAPE: M.smape}
            for m in self.metrics:
                out[m.value] = float(fns[m](yy, hh))
        return out


class _PointHooks:
    """The training hooks of the point and quantile models (module docstring): batches of scaled
    ``(input, target)`` windows, the model's forward, the configured loss (with its per-row weights when
    the loss computes them from the timestamps). DeepAR brings its own object with the same methods."""

    def __init__(self, model, loss, row_weights, metrics: Sequence[Metric]):
        self.model, self.loss, self.row_weights = model, loss, row_weights
        self.scaler = model.config.scaler
        self.pass_targets = _accepts_targets(model)
        self.evaluate = _Evaluator(model, loss, row_weights, metrics)
        self.dpred_buf: Dict[Tuple[int, ...], np.ndarray] = {}

    def check(self, wanted) -> None:
        return None

    def fingerprint(self) -> Optional[bytes]:
        return None

    def train_step(self, sampler, idx, tape, dropout_rng, augmentation, augmentation_rng):
        x, y = _scaled_batch(sampler, idx, self.scaler)
        if augmentation is not None:
            x, y = augmentation.apply(x, y, augmentation_rng)
        w = None
        if self.row_weights is not None:
            w = self.row_weights[_target_rows(sampler, idx)].astype(np.float32)
        out = (self.model._forward(x, tape, dropout_rng, y=y) if self.pass_targets
               else self.model._forward(x, tape, dropout_rng))
        buf = self.dpred_buf.get(out.data.shape)
        if buf is None:
            buf = self.dpred_buf[out.data.shape] = np.empty_like(out.data)
        loss_value, dpred = self.loss.value_and_grad(out.data, y, w, out=buf)
        return out, loss_value, dpred


def evaluate_loss(model: "BaseModel", sampler: WindowSampler, config: TrainingConfig,
                  batch: int = 1024) -> float:
    """Mean loss over every window of ``sampler`` (scaled space, no dropout, no per-row weights)."""
    return _Evaluator(model, config.resolved_loss(), None, (), batch)(sampler)["validation_loss"]


def _accepts_targets(model) -> bool:
    try:
        return "y" in inspect.signature(model._forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


# ------------------------------------------------------------------------------------------ state
def _enc(x: Any) -> Any:
    """JSON-safe copy: non-finite floats become {"__float__": "nan" | "inf" | "-inf"}; numpy scalars become
    Python numbers (floats round-trip exactly through JSON: their repr is the shortest exact form)."""
    if isinstance(x, (bool, type(None), str)):
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else {"__float__": repr(x)}
    if isinstance(x, dict):
        return {str(k): _enc(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_enc(v) for v in x]
    raise TypeError(f"cannot store {type(x).__name__} {x!r} in a checkpoint's training state")


def _dec(x: Any) -> Any:
    if isinstance(x, dict):
        if set(x) == {"__float__"}:
            v = x["__float__"]
            if v not in ("nan", "inf", "-inf"):
                raise ValueError(f"bad float {v!r} in the training state")
            return float(v)
        return {k: _dec(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_dec(v) for v in x]
    return x


def data_fingerprint(values: np.ndarray, offsets: np.ndarray, extra: Optional[bytes] = None) -> str:
    """SHA-256 of the training data (series boundaries and values, then ``extra``: the other inputs of a
    model with training hooks): a resume must see the same data."""
    h = hashlib.sha256(np.ascontiguousarray(offsets, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    if extra:
        h.update(extra)
    return h.hexdigest()


def _rng_state(g: np.random.Generator) -> Dict[str, Any]:
    return _enc(g.bit_generator.state)


def _set_rng(g: np.random.Generator, st: Any, what: str) -> None:
    want = type(g.bit_generator).__name__
    if not isinstance(st, dict) or st.get("bit_generator") != want:
        raise ValueError(f"training state: the {what} random generator state is not a {want} state")
    try:
        g.bit_generator.state = _dec(st)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"training state: bad {what} random generator state: {exc}") from None


_PLATEAU_FIELDS = ("best", "wait", "cooldown_left", "reductions")


def _callback_state(cb: Any) -> Optional[Dict[str, Any]]:
    """State of a callback that has any: ``state_dict()`` when it defines one, the counters of the
    built-in ReduceLROnPlateau; None for stateless callbacks."""
    from .callbacks import ReduceLROnPlateau

    if callable(getattr(cb, "state_dict", None)):
        return cb.state_dict()
    if isinstance(cb, ReduceLROnPlateau):
        return {k: getattr(cb, k) for k in _PLATEAU_FIELDS}
    return None


def _load_callback_state(cb: Any, st: Dict[str, Any]) -> None:
    from .callbacks import ReduceLROnPlateau

    if callable(getattr(cb, "load_state_dict", None)):
        cb.load_state_dict(st)
    elif isinstance(cb, ReduceLROnPlateau):
        for k in _PLATEAU_FIELDS:
            setattr(cb, k, st[k])


def logs_from_state(tensors: Dict[str, np.ndarray], state: Dict[str, Any]) -> TrainingLogs:
    """The TrainingLogs recorded in a checkpoint's training state."""
    d = _dec(state["logs"])
    logs = TrainingLogs()
    logs.history = {k: list(v) for k, v in d["history"].items()}
    logs.step_losses = [float(x) for x in tensors.get("logs/step_losses", np.zeros(0))]
    logs.step_lrs = [float(x) for x in tensors.get("logs/step_lrs", np.zeros(0))]
    logs.stopped_early = bool(d["stopped_early"])
    logs.stopped_by = d["stopped_by"]
    logs.best_epoch = d["best_epoch"]
    logs._lr_override = d["lr_override"]
    return logs


# ------------------------------------------------------------------------------------------ checkpoints
class _Checkpointer:
    """Writes the checkpoints of a CheckpointConfig and keeps the right files (checkpointing/config.py)."""

    def __init__(self, run: "_Run", ck: Any):
        from ..checkpointing.atomic import remove_stale_temporaries
        from ..checkpointing.files import SUFFIXES

        self.run, self.ck = run, ck
        self.prefix = type(run.model).__name__.lower()
        self.suffix = SUFFIXES[ck.compression]
        self.files: List[str] = []  # written by this run (and the runs it resumes), oldest first
        self.best = math.inf
        os.makedirs(ck.save_directory, exist_ok=True)
        # what a killed writer of an earlier run left behind (only our own names)
        remove_stale_temporaries(ck.save_directory, lambda name: name.startswith(self.prefix + "_"))

    def state(self) -> Dict[str, Any]:
        return {"files": list(self.files), "best": _enc(self.best)}

    def load_state(self, st: Dict[str, Any]) -> None:
        self.files = [f for f in st.get("files", []) if isinstance(f, str) and os.path.exists(f)]
        self.best = float(_dec(st.get("best", {"__float__": "inf"})))

    def due(self, per_epoch: bool, count: int) -> bool:
        f = self.ck.save_frequency
        return f.per_epoch == per_epoch and count % f.n == 0

    def save_point(self, per_epoch: bool) -> None:
        from ..checkpointing.config import CheckpointStrategy

        run = self.run
        tag = f"epoch_{run.epoch}" if per_epoch else f"step_{run.step}"
        if self.ck.strategy is CheckpointStrategy.BestValidationLoss:
            logs = run.logs
            value = logs.get_metric("validation_loss" if run.has_val else "training_loss")
            if value is None or not (value < self.best):
                return
            self.best = float(value)
            tag = "best_" + tag
        path = os.path.join(self.ck.save_directory, f"{self.prefix}_{tag}{self.suffix}")
        if path in self.files:
            self.files.remove(path)
        self.files.append(path)
        run.write_checkpoint(path, self.ck.compression, self.ck.metadata)
        keep = self.ck.kept
        if keep is not None and len(self.files) > keep:
            from ..checkpointing.atomic import fsync_dir

            old, self.files = self.files[:-keep], self.files[-keep:]
            for p in old:
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
            fsync_dir(self.ck.save_directory)


# ------------------------------------------------------------------------------------------ the loop
class _Run:
    """One training run: every piece of state the loop uses, so that it can be captured at a clean
    point (after a step, at an epoch boundary) and put back, in this process or a new one."""

    def __init__(self, model: "BaseModel", values: np.ndarray, offsets: np.ndarray, config: TrainingConfig,
                 ds: Optional[np.ndarray], loss: Any, data: Any = None):
        self.model, self.config = model, config
        cfg_m = model.config
        self.loss = loss = config.resolved_loss() if loss is None else loss
        check_model_options(model, config, loss)
        make_hooks = getattr(model, "_training_hooks", None)
        if make_hooks is not None and data is None:
            raise ValueError(f"{type(model).__name__} builds its own training batches: train(..., data=frame) "
                             "needs the whole data frame")
        own_hooks = make_hooks(data, config) if make_hooks is not None else None

        rng = np.random.default_rng(config.seed)
        self.init_rng, self.data_rng, self.drop_rng = (np.random.default_rng(s)
                                                       for s in rng.integers(0, 2**63 - 1, size=3))
        self.aug = config.data_augmentation
        self.aug_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xA06]))

        self.train_s, self.valid_s = make_samplers(values, offsets, cfg_m.input_size, cfg_m.horizon,
                                                   config.validation_split)
        if self.train_s.n_windows == 0:
            raise ValueError("no training windows: every series is too short for input_size + horizon "
                             "(+ the validation part)")
        self.has_val = has_val = self.valid_s is not None and self.valid_s.n_windows > 0
        self.fingerprint = data_fingerprint(values, offsets,
                                            own_hooks.fingerprint() if own_hooks is not None else None)

        # what to record: the monitor's metrics plus what early stopping watches
        monitor = config.monitor
        wanted = set(monitor.metrics) if monitor is not None else set()
        es = config.early_stopping
        es_metric = es.resolved_metric(has_val) if es is not None else None
        if es_metric is not None:
            if es_metric.needs_validation and not has_val:
                raise ValueError(f"early stopping monitors Metric.{es_metric.name}, which is computed on the "
                                 "validation windows: set with_validation_split(...) > 0 or monitor Metric.TrainingLoss")
            wanted.add(es_metric)
        self.want_gnorm = Metric.GradientNorm in wanted
        if own_hooks is not None:
            own_hooks.check(wanted)
        self.runner = None
        if monitor is not None:
            from .monitor import MonitorRunner

            self.runner = MonitorRunner(monitor, has_val, type(model).__name__)

        scheduler = config.learning_rate_scheduler
        self.warmup = config.warmup_steps
        if scheduler is not None:
            if self.warmup and getattr(scheduler, "warmup_steps", 0):
                raise ValueError("warmup is set twice (TrainingConfig.warmup_steps and the scheduler's "
                                 "with_warmup_steps): set it in one place")
            if getattr(scheduler, "initial_lr", None) is None and hasattr(scheduler, "with_base_lr"):
                scheduler = scheduler.with_base_lr(config.base_learning_rate())
        self.scheduler = scheduler
        self.clips = _clippings(model, config)
        self.l1, self.l2 = config.l1_regularization, config.l2_regularization

        if own_hooks is None:
            row_weights = None
            if callable(getattr(loss, "compute_weights", None)):
                if ds is None:
                    raise ValueError(f"{loss!r} needs the data's timestamps (ds) to compute its weights")
                row_weights = np.asarray(loss.compute_weights(ds, values), dtype=np.float64)
            own_hooks = _PointHooks(model, loss, row_weights, sorted(wanted, key=lambda m: m.value))
        self.hooks = own_hooks

        self.ckpt_cfg = config.resolved_checkpointing()
        self.ft = config.fault_tolerance
        self.base_lr = config.base_learning_rate()
        self.steps_per_epoch = math.ceil(self.train_s.n_windows / config.batch_size)
        total = self.steps_per_epoch * config.max_epochs
        self.total_steps = min(total, config.max_steps) if config.max_steps is not None else total

        # position in the run
        self.epoch = 0  # index of the current epoch (= epochs finished when not in_epoch)
        self.step = 0  # optimizer steps taken
        self.in_epoch = False
        self.order: Optional[np.ndarray] = None
        self.pos = 0  # index in order of the next batch's first window
        self.ep_loss, self.ep_n, self.gn_sum, self.gn_n = 0.0, 0, 0.0, 0
        self.lr = self.base_lr
        self.stop = False
        self.epoch_elapsed = 0.0
        self.phase = "setup"  # setup | clean | epoch_end | final
        self.failures: List[Dict[str, Any]] = []
        self.pending: List[Tuple[str, Any, bool]] = []  # save_checkpoint calls deferred to the epoch's end
        self.run_started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    # ------------------------------------------------------------------ setup of parameters and callbacks
    def start(self, resume: Optional[Tuple[Dict[str, np.ndarray], Dict[str, Any]]]) -> None:
        model, config = self.model, self.config
        if resume is None:
            model._init_parameters(self.init_rng)
        model._init_buffers()
        self.pb = model.params
        self.spec = config.resolved_optimizer()
        self.opt = self.spec.bind(self.pb.data)
        self.logs = TrainingLogs()
        self.callbacks: List[Any] = list(config.callbacks)
        self.user_callbacks = list(config.callbacks)
        self.es_cb = None
        es = config.early_stopping
        if es is not None:
            self.es_cb = EarlyStoppingCallback(es, es.resolved_metric(self.has_val), model._snapshot_state,
                                               model._restore_state)
            self.callbacks.append(self.es_cb)
        if config.visualizer is not None:
            self.callbacks.append(config.visualizer.callback())
        for cb in self.callbacks:
            cb.model = model
        from .callbacks import Callback

        # only callbacks that override on_batch_end are called per step (keeps the step loop lean)
        self.batch_cbs = [cb for cb in self.callbacks
                          if getattr(type(cb), "on_batch_end", None) is not Callback.on_batch_end]
        self.checkpointer = _Checkpointer(self, self.ckpt_cfg) if self.ckpt_cfg is not None else None
        self.tape = Tape()
        # a resumed run is not at a clean point until its state is back (saves requested by on_train_begin
        # are then written at the first epoch's end)
        self.phase = "clean" if resume is None else "setup"
        for cb in self.callbacks:
            cb.on_train_begin(self.logs)
        if resume is not None:
            self.apply(*resume)
            self.phase = "clean"

    # ------------------------------------------------------------------ capture / apply
    def capture(self) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
        """Copies of everything the loop needs to continue from here (tensors and JSON state)."""
        if self.phase not in ("clean", "final"):
            raise RuntimeError("the training state can only be captured between steps or between epochs")
        model, logs = self.model, self.logs
        tensors = model._checkpoint_tensors()
        for k, v in self.opt.state_dict().items():
            if isinstance(v, np.ndarray):
                tensors["optimizer/" + k] = v
        if self.in_epoch:
            tensors["trainer/order"] = np.asarray(self.order, dtype=np.int64).copy()
        tensors["logs/step_losses"] = np.asarray(logs.step_losses, dtype=np.float64)
        tensors["logs/step_lrs"] = np.asarray(logs.step_lrs, dtype=np.float64)
        es_state = None
        if self.es_cb is not None:
            es_state = {"best": self.es_cb.best, "wait": self.es_cb.wait,
                        "has_best_state": self.es_cb.best_state is not None}
            if self.es_cb.best_state is not None:
                data, bufs = self.es_cb.best_state
                tensors["early_stopping/params"] = data.copy()
                for k, v in bufs.items():
                    tensors["early_stopping/buffers/" + k] = np.ascontiguousarray(v).copy()
        cbs = []
        for i, cb in enumerate(self.user_callbacks):
            st = _callback_state(cb)
            if st is not None:
                cbs.append({"index": i, "class": type(cb).__name__, "state": st})
        state = {
            "position": {"epoch": self.epoch, "step": self.step, "in_epoch": self.in_epoch, "batch_start": self.pos,
                         "stop": self.stop, "epoch_loss_sum": self.ep_loss, "epoch_windows": self.ep_n,
                         "gradient_norm_sum": self.gn_sum, "gradient_norm_count": self.gn_n,
                         "learning_rate": self.lr, "epoch_elapsed": self.epoch_elapsed,
                         "steps_per_epoch": self.steps_per_epoch},
            "optimizer": {"name": self.opt.name, "step_count": self.opt.step_count},
            "rng": {"data": _rng_state(self.data_rng), "dropout": _rng_state(self.drop_rng),
                    "augmentation": _rng_state(self.aug_rng)},
            "early_stopping": es_state,
            "callbacks": cbs,
            "logs": {"history": logs.history, "stopped_early": logs.stopped_early, "stopped_by": logs.stopped_by,
                     "best_epoch": logs.best_epoch, "lr_override": logs._lr_override},
            "checkpoints": self.checkpointer.state() if self.checkpointer is not None else None,
            "data_sha256": self.fingerprint,
            "failures": self.failures,
        }
        return tensors, _enc(state)

    def apply(self, tensors: Dict[str, np.ndarray], state: Dict[str, Any]) -> None:
        """Put back a captured state (checks every part before changing anything it cannot undo)."""
        model = self.model
        st = _dec(state)
        pos = st["position"]
        if st.get("data_sha256") != self.fingerprint:
            raise ValueError("the checkpoint was written while training on different data (its SHA-256 differs): "
                             "resume with the data of the interrupted run")
        if pos["steps_per_epoch"] != self.steps_per_epoch:
            raise ValueError(f"the checkpoint's epochs have {pos['steps_per_epoch']} steps, this run's "
                             f"{self.steps_per_epoch}: batch size or data differ")
        if st["optimizer"]["name"] != self.opt.name:
            raise ValueError(f"the checkpoint holds {st['optimizer']['name']} optimizer state, the config uses "
                             f"{self.opt.name}")
        opt_state = {k[len("optimizer/"):]: v for k, v in tensors.items() if k.startswith("optimizer/")}
        opt_state["step_count"] = st["optimizer"]["step_count"]
        self.opt.load_state_dict(opt_state)
        if "trainer/params" in tensors:  # a final state whose model tensors hold the restored best weights
            model.params.data[...] = tensors["trainer/params"]
            src = {k[len("trainer/buffers/"):]: v for k, v in tensors.items() if k.startswith("trainer/buffers/")}
        else:
            model._load_checkpoint_tensors(tensors)
            src = None
        if src is not None:
            for k, v in src.items():
                model.buffers[k][...] = v
        _set_rng(self.data_rng, st["rng"]["data"], "data (shuffling)")
        _set_rng(self.drop_rng, st["rng"]["dropout"], "dropout")
        _set_rng(self.aug_rng, st["rng"]["augmentation"], "augmentation")
        restored = logs_from_state(tensors, state)
        logs = self.logs
        logs.history, logs.step_losses, logs.step_lrs = restored.history, restored.step_losses, restored.step_lrs
        logs.stopped_early, logs.best_epoch, logs._lr_override = (restored.stopped_early, restored.best_epoch,
                                                                  restored._lr_override)
        # a run stopped by a signal continues when resumed
        logs.stopped_by = None if restored.stopped_by in GracefulShutdown.SIGNALS else restored.stopped_by
        es_state = st.get("early_stopping")
        if (es_state is None) != (self.es_cb is None):
            raise ValueError("early stopping is " + ("on" if self.es_cb is not None else "off") +
                             " in the config but " + ("off" if es_state is None else "on") + " in the checkpoint")
        if self.es_cb is not None:
            self.es_cb.best, self.es_cb.wait = float(es_state["best"]), int(es_state["wait"])
            if es_state["has_best_state"]:
                bufs = {k[len("early_stopping/buffers/"):]: v.copy() for k, v in tensors.items()
                        if k.startswith("early_stopping/buffers/")}
                self.es_cb.best_state = (tensors["early_stopping/params"].astype(self.pb.dtype), bufs)
            else:
                self.es_cb.best_state = None
        by_index = {c["index"]: c for c in st.get("callbacks", [])}
        for i, cb in enumerate(self.user_callbacks):
            c = by_index.get(i)
            if c is None:
                continue
            if c["class"] != type(cb).__name__:
                raise ValueError(f"callback {i} is a {type(cb).__name__} but the checkpoint holds the state of a "
                                 f"{c['class']}")
            _load_callback_state(cb, c["state"])
        if self.checkpointer is not None and st.get("checkpoints"):
            self.checkpointer.load_state(st["checkpoints"])
        self.epoch, self.step = int(pos["epoch"]), int(pos["step"])
        self.in_epoch, self.pos, self.stop = bool(pos["in_epoch"]), int(pos["batch_start"]), bool(pos["stop"])
        self.order = tensors["trainer/order"].copy() if self.in_epoch else None
        self.ep_loss, self.ep_n = float(pos["epoch_loss_sum"]), int(pos["epoch_windows"])
        self.gn_sum, self.gn_n = float(pos["gradient_norm_sum"]), int(pos["gradient_norm_count"])
        self.lr, self.epoch_elapsed = float(pos["learning_rate"]), float(pos["epoch_elapsed"])
        self.failures = list(st.get("failures", []))

    # ------------------------------------------------------------------ checkpoint files
    def training_metadata(self) -> Dict[str, Any]:
        import platform

        last = {k: v[-1] for k, v in self.logs.history.items() if v}
        return {"config": self.config.to_dict(lossy=True), "metrics": _enc(last), "epoch": self.epoch,
                "step": self.step, "run_started": self.run_started,
                "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "library_version": __version__, "python_version": platform.python_version(),
                "numpy_version": np.__version__}

    def write_checkpoint(self, path: str, compression: Optional[str], metadata: bool = True) -> None:
        tensors, state = self.capture()
        self.model._write_checkpoint(path, tensors, state, self.config, compression=compression,
                                     training_metadata=self.training_metadata() if metadata else None)

    def request_save(self, path: str, compression: Optional[str]) -> bool:
        """``model.save_checkpoint`` during training: now at a clean point, else at the epoch's end.
        Returns True when written now."""
        if self.phase == "clean":
            self.write_checkpoint(path, compression)
            return True
        if self.phase == "final":  # on_train_end: the state at the end of the run
            tensors, state = self.final_state
            self.model._write_checkpoint(path, tensors, state, self.config, compression=compression,
                                         training_metadata=self.training_metadata())
            return True
        self.pending.append((path, compression, True))
        return False

    # ------------------------------------------------------------------ the loop
    def one_epoch(self, shutdown: "GracefulShutdown", watchdog: "Watchdog") -> bool:
        """Run (the rest of) one epoch, its end and its checkpoints; True when training is over."""
        config, logs = self.config, self.logs
        pb, opt, bs = self.pb, self.opt, config.batch_size
        if self.stop:
            return True
        if not self.in_epoch:
            if self.epoch >= config.max_epochs or self.step >= self.total_steps:
                return True
            for cb in self.callbacks:
                cb.on_epoch_begin(self.epoch, logs)
            self.order = self.train_s.epoch_order(self.data_rng)
            self.in_epoch, self.pos = True, 0
            self.ep_loss, self.ep_n, self.gn_sum, self.gn_n = 0.0, 0, 0.0, 0
            self.lr, self.epoch_elapsed = self.base_lr, 0.0
        t0 = time.perf_counter() - self.epoch_elapsed
        epoch, order = self.epoch, self.order
        ck = self.checkpointer
        l1, l2, clips, want_gnorm = self.l1, self.l2, self.clips, self.want_gnorm
        hooks = self.hooks
        if clips or l1 or l2:
            from . import regularization as R
        while self.pos < len(order) and self.step < self.total_steps and not self.stop:
            step = self.step
            # the step's learning rate (module docstring of config.py: precedence)
            if logs._lr_override is not None:
                lr = logs._lr_override
            else:
                lr = float(self.scheduler.lr_at(epoch, step)) if self.scheduler is not None else self.base_lr
                if self.warmup:
                    lr *= _warmup_factor(self.warmup, step)
            idx = order[self.pos: self.pos + bs]
            pb.zero_grad()
            out, loss_value, dpred = hooks.train_step(self.train_s, idx, self.tape, self.drop_rng, self.aug,
                                                      self.aug_rng)
            if not math.isfinite(loss_value):
                raise TrainingDivergedError(
                    f"training diverged: loss is {loss_value} at epoch {epoch + 1}, step {step + 1}; "
                    f"lower the learning rate (now {lr:g}) or check the data")
            self.tape.backward(out, dpred)
            if l1 or l2:
                R.add_penalties(pb.grad, pb.data, l1, l2)
            if clips:
                info = R.apply_clipping(pb.grad, clips)
                if want_gnorm:
                    nb = info.get("norm_before") if isinstance(info, dict) else None
                    self.gn_sum += float(nb) if nb is not None else math.sqrt(_core.sum_squares(pb.grad))
                    self.gn_n += 1
            elif want_gnorm:
                self.gn_sum += math.sqrt(_core.sum_squares(pb.grad))
                self.gn_n += 1
            opt.step(pb.grad, lr=lr)
            logs.step_losses.append(loss_value)
            logs.step_lrs.append(lr)
            self.ep_loss += loss_value * len(idx)
            self.ep_n += len(idx)
            self.lr = lr
            self.pos += bs
            self.step += 1
            watchdog.beat()
            self.bar.update(1, f"loss {loss_value:.4f}")
            for cb in self.batch_cbs:
                if check_result(cb, "on_batch_end", cb.on_batch_end(step, logs)):
                    self.stop = True
                    logs.stopped_by = logs.stopped_by or type(cb).__name__
            self.epoch_elapsed = time.perf_counter() - t0
            if ck is not None and ck.due(False, self.step):
                ck.save_point(per_epoch=False)
            if shutdown.requested:
                self.shutdown_checkpoint(shutdown.requested)
                return True
        # ---- the epoch's end
        if self.ep_n == 0:
            return True
        if not np.all(np.isfinite(pb.data)):
            raise TrainingDivergedError(f"training diverged: parameters became non-finite in epoch {epoch + 1}")
        entry: Dict[str, Any] = dict(epoch=epoch + 1, step=self.step, training_loss=self.ep_loss / self.ep_n,
                                     learning_rate=self.lr)
        self.phase = "epoch_end"
        if self.has_val:
            entry.update(self.hooks.evaluate(self.valid_s))
            watchdog.beat()
        if want_gnorm and self.gn_n:
            entry["gradient_norm"] = self.gn_sum / self.gn_n
        entry["epoch_time"] = time.perf_counter() - t0
        logs.append(**entry)
        if self.runner is None:
            log.info("epoch %d step %d %s", epoch + 1, self.step,
                     " ".join(f"{k}={v:.6g}" for k, v in entry.items() if k not in ("epoch", "step")))
        for cb in self.callbacks:
            if check_result(cb, "on_epoch_end", cb.on_epoch_end(epoch, logs)):
                self.stop = True
                logs.stopped_by = logs.stopped_by or type(cb).__name__
        if self.runner is not None:
            self.runner.on_epoch_end(epoch, logs)
        self.in_epoch, self.order, self.pos = False, None, 0
        self.epoch += 1
        self.phase = "clean"
        pending, self.pending = self.pending, []
        for path, compression, _ in pending:
            self.write_checkpoint(path, compression)
        if ck is not None and ck.due(True, self.epoch):
            ck.save_point(per_epoch=True)
        if shutdown.requested:
            self.shutdown_checkpoint(shutdown.requested)
            return True
        return self.stop

    def shutdown_checkpoint(self, signame: str) -> None:
        from ..checkpointing.files import SUFFIXES

        ck = self.ckpt_cfg
        directory = ck.save_directory if ck is not None else (self.ft.checkpoint_directory if self.ft else "checkpoints")
        compression = ck.compression if ck is not None else None
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{type(self.model).__name__.lower()}_interrupted_step_{self.step}"
                                       f"{SUFFIXES[compression]}")
        self.write_checkpoint(path, compression)
        self.shutdown_path = path
        log.warning("%s: training state written to %s; resume with neurodivergent.load_checkpoint(path)"
                    ".resume_training(data, config)", signame, path)
        self.logs.stopped_by = signame

    def run(self) -> Tuple[TrainingLogs, Tuple[Dict[str, np.ndarray], Dict[str, Any]]]:
        from .fault_tolerance import TrainingFailedError, Watchdog

        config, model = self.config, self.model
        ft = self.ft
        retries = ft.retry_on_failure if ft is not None else 0
        self.bar = Progress(self.total_steps, desc=type(model).__name__, enabled=config.verbose)
        self.bar.n = self.step
        shutdown = GracefulShutdown(bool(ft is not None and ft.graceful_shutdown))
        watchdog = Watchdog(ft.health_check_interval if ft is not None else None, self.pb.data, type(model).__name__)
        try:
            with shutdown, watchdog:
                good = self.capture() if retries else None
                in_a_row = 0
                while True:
                    try:
                        done = self.one_epoch(shutdown, watchdog)
                    except Exception as exc:
                        if not retries:
                            raise
                        self.phase = "clean"
                        self.pending = []
                        self.failures.append({"attempt": len(self.failures) + 1, "epoch": self.epoch + 1,
                                              "step": self.step, "error": type(exc).__name__, "message": str(exc)})
                        attempts = list(self.failures)
                        in_a_row += 1
                        if in_a_row > retries:
                            raise TrainingFailedError(
                                f"training failed in epoch {self.epoch + 1} after {retries} "
                                f"retr{'y' if retries == 1 else 'ies'}: {type(exc).__name__}: {exc}; "
                                f"{len(attempts)} failure(s) in this run (see .attempts)", attempts) from exc
                        log.warning("epoch %d failed (%s: %s); retry %d of %d from the last good state",
                                    self.epoch + 1, type(exc).__name__, exc, in_a_row, retries)
                        self.apply(*good)
                        self.failures = attempts
                        self.bar.n = self.step
                        continue
                    in_a_row = 0
                    if done:
                        break
                    if retries:
                        good = self.capture()
                self.phase = "final"
                final = self.capture()
                if self.es_cb is not None and self.es_cb.es.restore_best_weights and self.es_cb.best_state is not None:
                    tensors, state = final
                    tensors["trainer/params"] = self.pb.data.copy()
                    for k, v in model.buffers.items():
                        tensors["trainer/buffers/" + k] = np.ascontiguousarray(v).copy()
                    self.es_cb.restore_best()
                    tensors.update(model._checkpoint_tensors())
                self.final_state = final
                for cb in self.callbacks:
                    cb.on_train_end(self.logs)
                if self.runner is not None:
                    self.runner.on_train_end(self.logs)
        finally:
            self.bar.close()
            for cb in self.callbacks:
                cb.model = None
        if watchdog.reports:
            self.logs.health_reports = list(watchdog.reports)
        return self.logs, final


def train(model: "BaseModel", values: np.ndarray, offsets: np.ndarray, config: TrainingConfig, *,
          ds: Optional[np.ndarray] = None, loss: Any = None,
          resume: Optional[Tuple[Dict[str, np.ndarray], Dict[str, Any]]] = None, data: Any = None) -> TrainingLogs:
    """Train ``model`` (its ParameterBuffer exists) on the CSR data; with ``resume`` = ``(tensors, state)``
    of a checkpoint, continue that run instead of initialising. ``data``: the whole data frame, for a
    model with training hooks (module docstring). The final training state is left in
    ``model._train_state`` (what ``model.save_checkpoint`` writes after ``fit``)."""
    run = _Run(model, values, offsets, config, ds, loss, data)
    model._fit_config = config
    model._active_run = run
    try:
        run.start(resume)
        logs, final = run.run()
    finally:
        model._fit_config = None
        model._active_run = None
        release_buffers()  # the kernels' reusable arrays (nn/_buffers.py): a finished run keeps no memory
    model._train_state = final
    return logs


_POSITION_KEYS = {"epoch": int, "step": int, "in_epoch": bool, "batch_start": int, "stop": bool,
                  "epoch_loss_sum": (int, float), "epoch_windows": int, "gradient_norm_sum": (int, float),
                  "gradient_norm_count": int, "learning_rate": (int, float), "epoch_elapsed": (int, float),
                  "steps_per_epoch": int}


def validate_state(path: Any, tensors: Dict[str, np.ndarray], state: Any) -> None:
    """Raise a CheckpointError unless ``state`` (a checkpoint's JSON training state) has every part the
    loop needs, with the right types, and the tensors it refers to."""
    from ..checkpointing.files import CheckpointError

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: damaged training state: {what}")

    if not isinstance(state, dict):
        raise bad("not an object")
    for key, typ in (("position", dict), ("optimizer", dict), ("rng", dict), ("logs", dict),
                     ("callbacks", list), ("data_sha256", str), ("failures", list)):
        if not isinstance(state.get(key), typ):
            raise bad(f"{key!r} is missing or not a {typ.__name__}")
    pos = _dec(state["position"])
    for k, typ in _POSITION_KEYS.items():
        v = pos.get(k)
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise bad(f"position.{k} is {v!r}")
        if typ is int and v < 0:
            raise bad(f"position.{k} is negative")
    if pos["in_epoch"]:
        order = tensors.get("trainer/order")
        if order is None or order.ndim != 1 or order.dtype.kind != "i":
            raise bad("the epoch's window order (trainer/order) is missing")
    opt = state["optimizer"]
    if not isinstance(opt.get("name"), str) or not isinstance(opt.get("step_count"), int) or opt["step_count"] < 0:
        raise bad("optimizer name / step_count")
    for name in ("data", "dropout", "augmentation"):
        if not isinstance(state["rng"].get(name), dict):
            raise bad(f"rng.{name} is missing")
    logs = _dec(state["logs"])
    if not isinstance(logs.get("history"), dict) or not all(isinstance(v, list) for v in logs["history"].values()):
        raise bad("logs.history")
    for k in ("stopped_early", "stopped_by", "best_epoch", "lr_override"):
        if k not in logs:
            raise bad(f"logs.{k} is missing")
    for k in ("logs/step_losses", "logs/step_lrs"):
        v = tensors.get(k)
        if v is None or v.ndim != 1 or v.dtype.kind != "f":
            raise bad(f"tensor {k} is missing")
    es = state.get("early_stopping")
    if es is not None:
        if not isinstance(es, dict) or not isinstance(es.get("wait"), int) or "best" not in es:
            raise bad("early_stopping")
        if es.get("has_best_state") and "early_stopping/params" not in tensors:
            raise bad("early stopping's best weights are missing")
    for c in state["callbacks"]:
        if not isinstance(c, dict) or not isinstance(c.get("index"), int) or not isinstance(c.get("class"), str):
            raise bad("callbacks")
