"""Callbacks: hook order, stopping, learning-rate changes from the next step, ReduceLROnPlateau and the
guide's CustomLRScheduler translated to Python."""
import logging
import math

import numpy as np
import pytest

from neurodivergent import MLP, MLPConfig, TrainingConfig, load_dataset
from neurodivergent.training import (
    Callback,
    CallbackResult,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    Metric,
    ReduceLROnPlateau,
    TrainingLogs,
)


@pytest.fixture(scope="module")
def data():
    return load_dataset("us_macro_quarterly")


def mlp():
    return MLP(MLPConfig().with_input_size(12).with_horizon(4).with_hidden_size(16))


def tc(**kw):
    c = TrainingConfig().with_max_epochs(3).with_batch_size(128).with_seed(5).with_verbose(False)
    for k, v in kw.items():
        c = getattr(c, f"with_{k}")(v)
    return c


class Log(Callback):
    def __init__(self, name, events):
        self.name, self.events = name, events

    def on_train_begin(self, logs):
        self.events.append((self.name, "train_begin"))

    def on_epoch_begin(self, epoch, logs):
        self.events.append((self.name, "epoch_begin", epoch))

    def on_batch_end(self, step, logs):
        self.events.append((self.name, "batch_end", step))

    def on_epoch_end(self, epoch, logs):
        self.events.append((self.name, "epoch_end", epoch, len(logs)))

    def on_train_end(self, logs):
        self.events.append((self.name, "train_end"))


def test_hooks_are_called_in_a_deterministic_order(data):
    events = []
    logs = mlp().fit_with_config(data, tc(callbacks=[Log("a", events), Log("b", events)]))
    steps = len(logs.step_losses)
    per_epoch = steps // 3
    expected = [("a", "train_begin"), ("b", "train_begin")]
    s = 0
    for e in range(3):
        expected += [("a", "epoch_begin", e), ("b", "epoch_begin", e)]
        for _ in range(per_epoch):
            expected += [("a", "batch_end", s), ("b", "batch_end", s)]
            s += 1
        expected += [("a", "epoch_end", e, e + 1), ("b", "epoch_end", e, e + 1)]
    expected += [("a", "train_end"), ("b", "train_end")]
    assert events == expected


def test_user_callbacks_run_before_early_stopping(data):
    seen = []

    class Watch(Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(logs.stopped_early)

        def on_train_end(self, logs):
            seen.append(("end", logs.stopped_early))

    es = EarlyStopping().with_patience(1).with_monitor_metric(Metric.LearningRate)  # a constant: stops at once
    logs = mlp().fit_with_config(data, tc(max_epochs=10, early_stopping=es, callbacks=[Watch()]))
    assert len(logs) == 2 and logs.stopped_early and logs.stopped_by == "EarlyStoppingCallback"
    assert seen == [False, False, ("end", True)]  # the user callback ran before early stopping decided


def test_stop_from_epoch_end_and_from_batch_end(data):
    logs = mlp().fit_with_config(data, tc(max_epochs=10, callbacks=[
        LambdaCallback(on_epoch_end=lambda e, logs: CallbackResult.Stop if e == 2 else CallbackResult.Continue)]))
    assert len(logs) == 3 and logs.stopped_by == "LambdaCallback"
    calls = []

    class StopAtStep(Callback):
        def on_batch_end(self, step, logs):
            calls.append(step)
            return CallbackResult.Stop if step == 4 else None

        def on_epoch_end(self, epoch, logs):
            calls.append(("epoch_end", epoch))

    logs = mlp().fit_with_config(data, tc(max_epochs=10, callbacks=[StopAtStep()]))
    assert len(logs.step_losses) == 5 and len(logs) == 1
    assert calls == [0, 1, 2, 3, 4, ("epoch_end", 0)]  # the epoch is closed, then training ends


def test_every_callback_sees_the_epoch_end_when_one_stops(data):
    events = []
    stop = LambdaCallback(on_epoch_end=lambda e, logs: CallbackResult.Stop)
    mlp().fit_with_config(data, tc(callbacks=[stop, Log("after", events)]))
    assert ("after", "epoch_end", 0, 1) in events and ("after", "train_end") in events


def test_set_learning_rate_takes_effect_from_the_next_step(data):
    class At(Callback):
        def on_batch_end(self, step, logs):
            if step == 5:
                logs.set_learning_rate(1e-4)

    logs = mlp().fit_with_config(data, tc(learning_rate=1e-3, callbacks=[At()]))
    assert logs.step_lrs[:6] == [1e-3] * 6 and set(logs.step_lrs[6:]) == {1e-4}

    class AtEpoch(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 0:
                logs.set_learning_rate(logs.get_metric("learning_rate") / 10)

    sched = LearningRateScheduler.exponential_decay().with_decay_rate(0.5).with_decay_steps(1)
    logs = mlp().fit_with_config(data, tc(learning_rate=1e-2, learning_rate_scheduler=sched,
                                          callbacks=[AtEpoch()]))
    n = len(logs.step_lrs) // 3
    assert set(logs.step_lrs[:n]) == {1e-2}
    # the override replaces the schedule from the next step on and stays
    assert logs.step_lrs[n:] == pytest.approx([1e-3] * (len(logs.step_lrs) - n))
    assert logs.history["learning_rate"] == pytest.approx([1e-2, 1e-3, 1e-3])


def test_set_learning_rate_validates():
    logs = TrainingLogs()
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="learning_rate"):
            logs.set_learning_rate(bad)
    with pytest.raises(TypeError):
        logs.set_learning_rate("fast")
    logs.set_learning_rate(np.float32(0.5))
    assert logs.learning_rate_override == 0.5


# The guide's CustomLRScheduler, translated: a Callback subclass whose on_epoch_end reads the
# validation loss and the learning rate from the logs and sets a new rate.
class CustomLRScheduler(Callback):
    def __init__(self, initial_lr, patience, factor):
        self.initial_lr = initial_lr
        self.patience = patience
        self.factor = factor
        self.best_loss = math.inf
        self.wait = 0
        self.reductions = []

    def on_epoch_end(self, epoch, logs):
        current_loss = logs.get_metric("validation_loss", math.inf)
        if current_loss < self.best_loss:
            self.best_loss = current_loss
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                new_lr = logs.get_metric("learning_rate") * self.factor
                logs.set_learning_rate(new_lr)
                self.wait = 0
                self.reductions.append((epoch, new_lr))
                logging.getLogger("neurodivergent").info("Reduced learning rate to %.6f", new_lr)
        return CallbackResult.Continue


def test_the_guides_custom_lr_scheduler(data):
    cb = CustomLRScheduler(initial_lr=0.02, patience=1, factor=0.5)
    logs = mlp().fit_with_config(data, tc(max_epochs=12, learning_rate=0.02, validation_split=0.2, callbacks=[cb]))
    assert cb.reductions, logs.history["validation_loss"]
    n = len(logs.step_lrs) // 12
    lr = 0.02
    for epoch in range(12):
        assert logs.step_lrs[epoch * n:(epoch + 1) * n] == pytest.approx([lr] * n)
        for e, new in cb.reductions:
            if e == epoch:
                lr = new


def test_reduce_lr_on_plateau(data):
    cb = ReduceLROnPlateau(patience=1, factor=0.5, min_lr=0.002, monitor=Metric.ValidationLoss)
    logs = mlp().fit_with_config(data, tc(max_epochs=15, learning_rate=0.05, validation_split=0.2, callbacks=[cb]))
    lrs = logs.history["learning_rate"]
    assert cb.reductions >= 1 and min(lrs) >= 0.002 and lrs[-1] < 0.05
    # each reduction follows an epoch without improvement of the validation loss
    vl = logs.history["validation_loss"]
    for i in range(1, len(lrs)):
        if lrs[i] < lrs[i - 1]:
            assert vl[i - 1] >= min(vl[:i - 1], default=math.inf) - 1e-4
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.5)
    with pytest.raises(ValueError, match="patience"):
        ReduceLROnPlateau(patience=0)
    with pytest.raises(ValueError, match="monitor"):
        ReduceLROnPlateau(monitor="accuracy")


def test_config_callbacks_builders():
    a, b = ReduceLROnPlateau(), LambdaCallback()
    c = TrainingConfig().with_callbacks([a]).with_callback(b)
    assert c.callbacks == (a, b)
    assert TrainingConfig().with_callback(a).with_callbacks([b]).callbacks == (b,)
    with pytest.raises(TypeError, match=r"callbacks\[0\] must be a Callback"):
        TrainingConfig().with_callbacks([lambda e, logs: None])
