"""The training loop shared by every point-forecast model.

Per step: gather a batch of windows -> scale each window by its input's statistics -> model forward
(recording a tape) -> loss value and gradient (C++) -> backward into the flat gradient buffer ->
fused Adam update (C++). Per epoch: validation loss, early stopping, checkpoints, logs, progress.
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np

from .._backend import core as _core
from ..data.scalers import scale, window_stats
from ..data.windows import WindowSampler
from ..nn.tape import Tape
from .config import TrainingConfig
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


def _loss(kind: str, delta: float, pred: np.ndarray, target: np.ndarray, grad: Optional[np.ndarray]) -> float:
    value = _core.loss_forward(kind, pred, target, None, delta)
    if grad is not None:
        _core.loss_backward(kind, grad, pred, target, None, delta, 1.0)
    return float(value)


def _scaled_batch(sampler: WindowSampler, idx: np.ndarray, scaler: str):
    x, y = sampler.gather(idx)
    loc, sc = window_stats(x, scaler)
    return scale(x, loc, sc), scale(y, loc, sc)


def evaluate_loss(model: "BaseModel", sampler: WindowSampler, config: TrainingConfig,
                  batch: int = 1024) -> float:
    """Mean loss over every window of ``sampler`` (scaled space, no dropout)."""
    total, count = 0.0, 0
    n = sampler.n_windows
    for a in range(0, n, batch):
        idx = np.arange(a, min(n, a + batch))
        x, y = _scaled_batch(sampler, idx, model.config.scaler)
        pred = model._forward(x, None, None).data
        total += _loss(config.loss_function, config.huber_delta, pred, y, None) * len(idx)
        count += len(idx)
    return total / max(count, 1)


def train(model: "BaseModel", values: np.ndarray, offsets: np.ndarray, config: TrainingConfig) -> TrainingLogs:
    cfg_m = model.config
    rng = np.random.default_rng(config.seed)
    init_rng, data_rng, drop_rng = (np.random.default_rng(s) for s in rng.integers(0, 2**63 - 1, size=3))
    model._init_parameters(init_rng)
    pb = model.params
    m = np.zeros_like(pb.data)
    v = np.zeros_like(pb.data)

    train_s, valid_s = make_samplers(values, offsets, cfg_m.input_size, cfg_m.horizon, config.validation_split)
    if train_s.n_windows == 0:
        raise ValueError("no training windows: every series is too short for input_size + horizon "
                         "(+ the validation part)")
    steps_per_epoch = math.ceil(train_s.n_windows / config.batch_size)
    total_steps = steps_per_epoch * config.max_epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)

    logs = TrainingLogs()
    es = config.early_stopping
    best, best_params, wait = math.inf, None, 0
    step = 0
    bar = Progress(total_steps, desc=type(model).__name__, enabled=config.verbose)
    tape = Tape()
    try:
        for epoch in range(config.max_epochs):
            t0 = time.perf_counter()
            order = train_s.epoch_order(data_rng)
            ep_loss, ep_n = 0.0, 0
            for a in range(0, len(order), config.batch_size):
                if step >= total_steps:
                    break
                idx = order[a: a + config.batch_size]
                x, y = _scaled_batch(train_s, idx, cfg_m.scaler)
                pb.zero_grad()
                out = model._forward(x, tape, drop_rng)
                dpred = np.empty_like(out.data)
                loss = _loss(config.loss_function, config.huber_delta, out.data, y, dpred)
                if not math.isfinite(loss):
                    raise TrainingDivergedError(
                        f"training diverged: loss is {loss} at epoch {epoch + 1}, step {step + 1}; "
                        f"lower the learning rate (now {config.learning_rate}) or check the data")
                tape.backward(out, dpred)
                step += 1
                _core.adam_step(pb.data, pb.grad, m, v, step, config.learning_rate, 0.9, 0.999, 1e-8, 0.0, False)
                logs.step_losses.append(loss)
                ep_loss += loss * len(idx)
                ep_n += len(idx)
                bar.update(1, f"loss {loss:.4f}")
            if ep_n == 0:
                break
            if not np.all(np.isfinite(pb.data)):
                raise TrainingDivergedError(f"training diverged: parameters became non-finite in epoch {epoch + 1}")
            train_loss = ep_loss / ep_n
            entry = dict(epoch=epoch + 1, step=step, training_loss=train_loss,
                         learning_rate=config.learning_rate)
            monitored = train_loss
            if valid_s is not None and valid_s.n_windows > 0:
                entry["validation_loss"] = evaluate_loss(model, valid_s, config)
                monitored = entry["validation_loss"]
            entry["epoch_time"] = time.perf_counter() - t0
            logs.append(**entry)
            log.info("epoch %d step %d %s", epoch + 1, step,
                     " ".join(f"{k}={v:.6g}" for k, v in entry.items() if k not in ("epoch", "step")))
            if config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0:
                os.makedirs(config.checkpoint_dir, exist_ok=True)
                model.save(os.path.join(config.checkpoint_dir, f"{type(model).__name__.lower()}_epoch_{epoch + 1}.safetensors"))
            if es is not None:
                if monitored < best - es.min_delta:
                    best, wait, logs.best_epoch = monitored, 0, epoch + 1
                    if es.restore_best_weights:
                        best_params = pb.data.copy()
                else:
                    wait += 1
                    if wait >= es.patience:
                        logs.stopped_early = True
                        break
            if step >= total_steps:
                break
    finally:
        bar.close()
    if es is not None and es.restore_best_weights and best_params is not None:
        pb.data[...] = best_params
    return logs
