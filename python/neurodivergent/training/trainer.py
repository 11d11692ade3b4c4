"""The training loop shared by every point/quantile-forecast model.

Per step: gather a batch of windows -> scale each window by its input's statistics -> (augmentation)
-> model forward (recording a tape) -> loss value and gradient (C++) -> backward into the flat gradient
buffer -> L1/L2 penalty terms -> clip by value -> clip by norm -> fused optimizer update (C++) with the
step's learning rate -> ``on_batch_end`` callbacks. Per epoch: validation loss and metrics, user
callbacks, early stopping, checkpoints, monitor logs and plots, progress. See
:mod:`neurodivergent.training.config` for the definitions (step, epoch, learning-rate precedence).
"""
from __future__ import annotations

import inspect
import logging
import math
import os
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._backend import core as _core
from ..data.scalers import scale, unscale, window_stats
from ..data.windows import WindowSampler
from ..nn.tape import Tape
from .callbacks import CheckpointCallback, EarlyStoppingCallback, check_result
from .config import MODEL_DEFAULT, Metric, TrainingConfig, _warmup_factor
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


def evaluate_loss(model: "BaseModel", sampler: WindowSampler, config: TrainingConfig,
                  batch: int = 1024) -> float:
    """Mean loss over every window of ``sampler`` (scaled space, no dropout, no per-row weights)."""
    return _Evaluator(model, config.resolved_loss(), None, (), batch)(sampler)["validation_loss"]


def _accepts_targets(model) -> bool:
    try:
        return "y" in inspect.signature(model._forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


# ------------------------------------------------------------------------------------------ the loop
def train(model: "BaseModel", values: np.ndarray, offsets: np.ndarray, config: TrainingConfig, *,
          ds: Optional[np.ndarray] = None, loss: Any = None) -> TrainingLogs:
    cfg_m = model.config
    loss = config.resolved_loss() if loss is None else loss
    check_model_options(model, config, loss)

    rng = np.random.default_rng(config.seed)
    init_rng, data_rng, drop_rng = (np.random.default_rng(s) for s in rng.integers(0, 2**63 - 1, size=3))
    aug = config.data_augmentation
    aug_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xA06]))

    train_s, valid_s = make_samplers(values, offsets, cfg_m.input_size, cfg_m.horizon, config.validation_split)
    if train_s.n_windows == 0:
        raise ValueError("no training windows: every series is too short for input_size + horizon "
                         "(+ the validation part)")
    has_val = valid_s is not None and valid_s.n_windows > 0

    # what to record: the monitor's metrics plus what early stopping watches
    monitor = config.monitor
    wanted = set(monitor.metrics) if monitor is not None else set()
    es = config.early_stopping
    es_metric = es.resolved_metric(has_val) if es is not None else None
    if es_metric is not None:
        if es_metric.needs_validation and not has_val:
            raise ValueError(f"early stopping monitors Metric.{es_metric.name}, which is computed on the validation "
                             "windows: set with_validation_split(...) > 0 or monitor Metric.TrainingLoss")
        wanted.add(es_metric)
    want_gnorm = Metric.GradientNorm in wanted
    runner = None
    if monitor is not None:
        from .monitor import MonitorRunner

        runner = MonitorRunner(monitor, has_val, type(model).__name__)

    scheduler = config.learning_rate_scheduler
    warmup = config.warmup_steps
    if scheduler is not None:
        if warmup and getattr(scheduler, "warmup_steps", 0):
            raise ValueError("warmup is set twice (TrainingConfig.warmup_steps and the scheduler's "
                             "with_warmup_steps): set it in one place")
        if getattr(scheduler, "initial_lr", None) is None and hasattr(scheduler, "with_base_lr"):
            scheduler = scheduler.with_base_lr(config.base_learning_rate())
    clips = _clippings(model, config)
    l1, l2 = config.l1_regularization, config.l2_regularization
    if clips or l1 or l2:
        from . import regularization as R

    row_weights = None
    if callable(getattr(loss, "compute_weights", None)):
        if ds is None:
            raise ValueError(f"{loss!r} needs the data's timestamps (ds) to compute its weights")
        row_weights = np.asarray(loss.compute_weights(ds, values), dtype=np.float64)
    evaluator = _Evaluator(model, loss, row_weights, sorted(wanted, key=lambda m: m.value))
    pass_targets = _accepts_targets(model)

    # parameters, optimizer
    model._init_parameters(init_rng)
    model._init_buffers()
    pb = model.params
    spec = config.resolved_optimizer()
    base_lr = config.base_learning_rate()
    opt = spec.bind(pb.data)

    steps_per_epoch = math.ceil(train_s.n_windows / config.batch_size)
    total_steps = steps_per_epoch * config.max_epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)

    logs = TrainingLogs()
    callbacks: List[Any] = list(config.callbacks)
    es_cb = None
    if es is not None:
        es_cb = EarlyStoppingCallback(es, es_metric, model._snapshot_state, model._restore_state)
        callbacks.append(es_cb)
    if config.checkpoint_every:
        callbacks.append(CheckpointCallback(config.checkpoint_every,
                                            lambda ep: _save_checkpoint(model, config, logs, ep)))
    if config.visualizer is not None:
        callbacks.append(config.visualizer.callback())
    for cb in callbacks:
        cb.model = model
    # only callbacks that override on_batch_end are called per step (keeps the step loop lean)
    from .callbacks import Callback

    batch_cbs = [cb for cb in callbacks if getattr(type(cb), "on_batch_end", None) is not Callback.on_batch_end]

    step = 0
    bar = Progress(total_steps, desc=type(model).__name__, enabled=config.verbose)
    tape = Tape()
    dpred_buf: Dict[Tuple[int, ...], np.ndarray] = {}
    model._fit_config = config
    try:
        for cb in callbacks:
            cb.on_train_begin(logs)
        for epoch in range(config.max_epochs):
            if step >= total_steps:
                break
            for cb in callbacks:
                cb.on_epoch_begin(epoch, logs)
            t0 = time.perf_counter()
            order = train_s.epoch_order(data_rng)
            ep_loss, ep_n, gn_sum, gn_n = 0.0, 0, 0.0, 0
            stop = False
            lr = base_lr
            for a in range(0, len(order), config.batch_size):
                if step >= total_steps:
                    break
                # the step's learning rate (module docstring of config.py: precedence)
                if logs._lr_override is not None:
                    lr = logs._lr_override
                else:
                    lr = float(scheduler.lr_at(epoch, step)) if scheduler is not None else base_lr
                    if warmup:
                        lr *= _warmup_factor(warmup, step)
                idx = order[a: a + config.batch_size]
                x, y = _scaled_batch(train_s, idx, cfg_m.scaler)
                if aug is not None:
                    x, y = aug.apply(x, y, aug_rng)
                w = None
                if row_weights is not None:
                    w = row_weights[_target_rows(train_s, idx)].astype(np.float32)
                pb.zero_grad()
                out = model._forward(x, tape, drop_rng, y=y) if pass_targets else model._forward(x, tape, drop_rng)
                buf = dpred_buf.get(out.data.shape)
                if buf is None:
                    buf = dpred_buf[out.data.shape] = np.empty_like(out.data)
                loss_value, dpred = loss.value_and_grad(out.data, y, w, out=buf)
                if not math.isfinite(loss_value):
                    raise TrainingDivergedError(
                        f"training diverged: loss is {loss_value} at epoch {epoch + 1}, step {step + 1}; "
                        f"lower the learning rate (now {lr:g}) or check the data")
                tape.backward(out, dpred)
                if l1 or l2:
                    R.add_penalties(pb.grad, pb.data, l1, l2)
                if clips:
                    info = R.apply_clipping(pb.grad, clips)
                    if want_gnorm:
                        nb = info.get("norm_before") if isinstance(info, dict) else None
                        gn_sum += float(nb) if nb is not None else math.sqrt(_core.sum_squares(pb.grad))
                        gn_n += 1
                elif want_gnorm:
                    gn_sum += math.sqrt(_core.sum_squares(pb.grad))
                    gn_n += 1
                opt.step(pb.grad, lr=lr)
                logs.step_losses.append(loss_value)
                logs.step_lrs.append(lr)
                ep_loss += loss_value * len(idx)
                ep_n += len(idx)
                bar.update(1, f"loss {loss_value:.4f}")
                for cb in batch_cbs:
                    if check_result(cb, "on_batch_end", cb.on_batch_end(step, logs)):
                        stop = True
                        logs.stopped_by = logs.stopped_by or type(cb).__name__
                step += 1
                if stop:
                    break
            if ep_n == 0:
                break
            if not np.all(np.isfinite(pb.data)):
                raise TrainingDivergedError(f"training diverged: parameters became non-finite in epoch {epoch + 1}")
            entry: Dict[str, Any] = dict(epoch=epoch + 1, step=step, training_loss=ep_loss / ep_n, learning_rate=lr)
            if has_val:
                entry.update(evaluator(valid_s))
            if want_gnorm and gn_n:
                entry["gradient_norm"] = gn_sum / gn_n
            entry["epoch_time"] = time.perf_counter() - t0
            logs.append(**entry)
            if runner is None:
                log.info("epoch %d step %d %s", epoch + 1, step,
                         " ".join(f"{k}={v:.6g}" for k, v in entry.items() if k not in ("epoch", "step")))
            for cb in callbacks:
                if check_result(cb, "on_epoch_end", cb.on_epoch_end(epoch, logs)):
                    stop = True
                    logs.stopped_by = logs.stopped_by or type(cb).__name__
            if runner is not None:
                runner.on_epoch_end(epoch, logs)
            if stop:
                break
        if es_cb is not None:
            es_cb.restore_best()
        for cb in callbacks:
            cb.on_train_end(logs)
        if runner is not None:
            runner.on_train_end(logs)
    finally:
        bar.close()
        model._fit_config = None
        for cb in callbacks:
            cb.model = None
    return logs


def _save_checkpoint(model: "BaseModel", config: TrainingConfig, logs: TrainingLogs, epoch: int) -> None:
    os.makedirs(config.checkpoint_dir, exist_ok=True)
    saved = (model.training_logs, model.training_config)
    model.training_logs, model.training_config = logs, config
    try:
        model.save(os.path.join(config.checkpoint_dir, f"{type(model).__name__.lower()}_epoch_{epoch}.safetensors"))
    finally:
        model.training_logs, model.training_config = saved
