"""The training engine end to end: optimizers, schedules, losses, clipping, penalties, early stopping,
augmentation, batch norm, quantile heads and the serialisation of TrainingConfig, on small real data."""
import json
import math

import numpy as np
import pytest

from neurodivergent import MLP, MLPConfig, TrainingConfig, load_dataset, load_model
from neurodivergent.training import (
    AdamWConfig,
    Callback,
    CallbackResult,
    DataAugmentation,
    EarlyStopping,
    GradientClipping,
    HuberConfig,
    LearningRateScheduler,
    LossFunction,
    Metric,
    Mode,
    Optimizer,
    QuantileConfig,
    ReduceLROnPlateau,
    SGDConfig,
    TrainingMonitor,
    WeightedConfig,
)


@pytest.fixture(scope="module")
def data():
    return load_dataset("us_macro_quarterly")


def mlp(**kw):
    cfg = MLPConfig().with_input_size(12).with_horizon(4).with_hidden_size(16)
    for k, v in kw.items():
        cfg = getattr(cfg, f"with_{k}")(v)
    return MLP(cfg)


def tc(**kw):
    c = TrainingConfig().with_max_epochs(3).with_batch_size(64).with_seed(3).with_verbose(False)
    for k, v in kw.items():
        c = getattr(c, f"with_{k}")(v)
    return c


class Recorder(Callback):
    """Records hook calls, parameters at epoch ends, and parameters/gradients around every step."""

    def __init__(self):
        self.events = []
        self.epoch_params = []
        self.steps = []  # (params before, params after, grad used)

    def on_train_begin(self, logs):
        self.events.append(("train_begin",))
        self.prev = self.model.params.data.copy()

    def on_epoch_begin(self, epoch, logs):
        self.events.append(("epoch_begin", epoch))

    def on_batch_end(self, step, logs):
        self.events.append(("batch_end", step))
        now = self.model.params.data.copy()
        self.steps.append((self.prev, now, self.model.params.grad.copy()))
        self.prev = now

    def on_epoch_end(self, epoch, logs):
        self.events.append(("epoch_end", epoch, logs.stopped_early))
        self.epoch_params.append(self.model.params.data.copy())

    def on_train_end(self, logs):
        self.events.append(("train_end", logs.stopped_early))


# ------------------------------------------------------------------------- defaults unchanged
def test_default_training_is_the_plain_adam_mae_loop(data):
    """The engine's defaults reproduce the original loop (Adam 1e-3, MAE, no clipping, no augmentation):
    the first losses of this run were recorded before the engine existed."""
    m = mlp(hidden_size=32, dropout=0.1)
    c = (TrainingConfig().with_max_epochs(3).with_batch_size(16).with_seed(7).with_verbose(False)
         .with_validation_split(0.2))
    logs = m.fit_with_config(data, c)
    assert logs.step_losses[:3] == pytest.approx([2.2523808717669453, 2.261762004956836, 1.9947960100107593],
                                                 rel=1e-6)
    assert logs.history["validation_loss"] == pytest.approx(
        [1.2145856342719574, 1.023196767781567, 0.9700558842723503], rel=1e-5)
    # explicit defaults are the same run, bitwise
    twin = mlp(hidden_size=32, dropout=0.1)
    explicit = (c.with_optimizer(Optimizer.Adam).with_loss_function(LossFunction.MAE).with_data_augmentation(False)
                .with_gradient_clipping(None).with_learning_rate(1e-3))
    logs2 = twin.fit_with_config(data, explicit)
    assert logs2.step_losses == logs.step_losses
    np.testing.assert_array_equal(twin.params.data, m.params.data)
    assert m.training_logs is logs


# ------------------------------------------------------------------------- learning rates
def test_learning_rate_precedence(data):
    sgd = Optimizer.SGD(SGDConfig().with_learning_rate(0.02))
    logs = mlp().fit_with_config(data, tc(max_steps=4, optimizer=sgd))
    assert logs.step_lrs == [0.02] * 4  # the optimizer's rate when TrainingConfig.learning_rate is None
    logs = mlp().fit_with_config(data, tc(max_steps=4, optimizer=sgd, learning_rate=0.005))
    assert logs.step_lrs == [0.005] * 4  # TrainingConfig.learning_rate wins
    sched = LearningRateScheduler.step_decay().with_step_size(1).with_gamma(0.5)
    logs = mlp().fit_with_config(data, tc(optimizer=sgd, learning_rate=0.04, learning_rate_scheduler=sched))
    per_epoch = logs.history["learning_rate"]
    assert per_epoch == pytest.approx([0.04, 0.02, 0.01])  # the schedule starts from the base rate
    sched = sched.with_initial_lr(0.1)
    logs = mlp().fit_with_config(data, tc(optimizer=sgd, learning_rate=0.04, learning_rate_scheduler=sched))
    assert logs.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])  # explicit initial_lr wins


def test_scheduled_rates_are_what_the_optimizer_used(data):
    """With plain SGD a step changes the parameters by exactly -lr * grad: check every step's rate."""
    sgd = Optimizer.SGD(SGDConfig().with_learning_rate(0.05))
    sched = LearningRateScheduler.cosine_annealing().with_initial_lr(0.05).with_min_lr(0.001).with_t_max(3)
    rec = Recorder()
    c = tc(optimizer=sgd, learning_rate_scheduler=sched, warmup_steps=10, callbacks=[rec])
    logs = mlp().fit_with_config(data, c)
    n = len(logs.step_lrs)
    per_epoch = n // 3
    assert n == 3 * per_epoch
    for s, lr in enumerate(logs.step_lrs):
        expected = sched.lr_at(s // per_epoch) * min(1.0, (s + 1) / 10)
        assert lr == pytest.approx(expected, rel=1e-12)
        before, after, grad = rec.steps[s]
        np.testing.assert_allclose(after - before, -np.float32(lr) * grad, rtol=1e-5, atol=1e-7)


def test_warmup_twice_is_refused(data):
    sched = LearningRateScheduler.fixed(0.01).with_warmup_steps(5)
    with pytest.raises(ValueError, match="warmup"):
        mlp().fit_with_config(data, tc(learning_rate_scheduler=sched, warmup_steps=5))


@pytest.mark.parametrize("opt", [Optimizer.Adam, Optimizer.AdamW, Optimizer.SGD, Optimizer.RMSprop,
                                 Optimizer.AdamW(AdamWConfig().with_weight_decay(0.01))])
def test_every_optimizer_trains(data, opt):
    logs = mlp().fit_with_config(data, tc(max_epochs=4, optimizer=opt, learning_rate=3e-3))
    tl = logs.history["training_loss"]
    assert np.all(np.isfinite(tl)) and tl[-1] < tl[0]


# ------------------------------------------------------------------------- clipping and penalties
def _one_sgd_step(data, **kw):
    rec = Recorder()
    c = tc(max_steps=1, optimizer=Optimizer.SGD(SGDConfig().with_learning_rate(0.1)), callbacks=[rec], **kw)
    mlp().fit_with_config(data, c)
    before, after, grad = rec.steps[0]
    return before, after, grad


def test_clipping_and_penalties_reach_the_optimizer(data):
    b0, a0, g0 = _one_sgd_step(data)
    norm = float(np.linalg.norm(g0.astype(np.float64)))
    # a huge max_norm changes nothing, a tiny one bounds the update's norm
    b1, a1, _ = _one_sgd_step(data, gradient_clipping=GradientClipping.ByNorm(1e6))
    np.testing.assert_array_equal(a1, a0)
    b2, a2, _ = _one_sgd_step(data, gradient_clipping=GradientClipping.ByNorm(1e-3))
    step = np.linalg.norm((a2 - b2).astype(np.float64))
    assert step == pytest.approx(0.1 * 1e-3, rel=1e-3) and norm > 1e-2
    # by value: every element of the update is bounded
    b3, a3, g3 = _one_sgd_step(data, gradient_clipping=GradientClipping.ByValue(-1e-4, 1e-4))
    assert np.max(np.abs(g3)) <= np.float32(1e-4) and np.mean(np.abs(g3) == np.float32(1e-4)) > 0.5
    np.testing.assert_allclose(a3 - b3, -0.1 * g3, rtol=0, atol=1e-7)  # float32 rounding of the difference
    # both kinds (as the guide calls with_gradient_clipping twice): value first, then norm
    c = (TrainingConfig().with_gradient_clipping(GradientClipping.ByNorm(1e-3))
         .with_gradient_clipping(GradientClipping.ByValue(-1e-4, 1e-4)))
    assert [type(x).__name__ for x in c.gradient_clipping] == ["ClipByValue", "ClipByNorm"]
    b4, a4, _ = _one_sgd_step(data, gradient_clipping=list(c.gradient_clipping))
    assert np.linalg.norm((a4 - b4).astype(np.float64)) <= 0.1 * 1e-3 * (1 + 1e-2)
    # L2 adds l2 * p, L1 adds l1 * sign(p) to the gradient before the update
    b5, a5, _ = _one_sgd_step(data, l2_regularization=0.5)
    np.testing.assert_allclose((a5 - b5) - (a0 - b0), -0.1 * 0.5 * b0, rtol=1e-4, atol=1e-6)
    b6, a6, _ = _one_sgd_step(data, l1_regularization=0.01)
    np.testing.assert_allclose((a6 - b6) - (a0 - b0), -0.1 * 0.01 * np.sign(b0), rtol=1e-4, atol=1e-6)


def test_gradient_norm_metric_is_before_clipping(data):
    mon = TrainingMonitor().with_metrics([Metric.TrainingLoss, Metric.GradientNorm])
    logs = mlp().fit_with_config(data, tc(monitor=mon, gradient_clipping=GradientClipping.ByNorm(1e-3)))
    gn = logs.history["gradient_norm"]
    assert len(gn) == 3 and min(gn) > 1e-3  # the clipped norm would be <= 1e-3


# ------------------------------------------------------------------------- early stopping
CASES = [
    (None, Mode.Minimize),
    (Metric.ValidationLoss, Mode.Minimize),
    (Metric.TrainingLoss, Mode.Minimize),
    (Metric.MAE, Mode.Minimize),
    (Metric.MAPE, Mode.Minimize),
    (Metric.RMSE, Mode.Minimize),
    (Metric.SMAPE, Mode.Minimize),
    (Metric.ValidationLoss, Mode.Maximize),
    (Metric.GradientNorm, Mode.Maximize),
    (Metric.LearningRate, Mode.Minimize),
]


@pytest.mark.parametrize("metric, mode", CASES)
def test_early_stopping_stops_at_the_right_epoch_and_restores_the_best_weights(data, metric, mode):
    patience, min_delta = 3, 1e-4
    es = (EarlyStopping.new().with_patience(patience).with_min_delta(min_delta).with_restore_best_weights(True)
          .with_monitor_metric(metric).with_mode(mode))
    rec = Recorder()
    c = tc(max_epochs=40, validation_split=0.2, early_stopping=es, callbacks=[rec], learning_rate=5e-3)
    model = mlp()
    logs = model.fit_with_config(data, c)
    key = (metric or Metric.ValidationLoss).value
    values = logs.history[key]
    # replay the rule
    best, best_i, wait, stop = (math.inf if mode is Mode.Minimize else -math.inf), None, 0, None
    for i, v in enumerate(values):
        better = v < best - min_delta if mode is Mode.Minimize else v > best + min_delta
        if better:
            best, best_i, wait = v, i, 0
        else:
            wait += 1
            if wait >= patience:
                stop = i
                break
    assert logs.best_epoch == best_i + 1
    if stop is not None:
        assert logs.stopped_early and len(values) == stop + 1 == best_i + 1 + patience
    else:
        assert not logs.stopped_early and len(values) == 40
    np.testing.assert_array_equal(model.params.data, rec.epoch_params[best_i])


def test_early_stopping_on_validation_metric_needs_a_validation_part(data):
    es = EarlyStopping().with_monitor_metric(Metric.MAE)
    with pytest.raises(ValueError, match="validation"):
        mlp().fit_with_config(data, tc(early_stopping=es))
    # the default monitor falls back to the training loss without a validation part
    logs = mlp().fit_with_config(data, tc(early_stopping=EarlyStopping().with_patience(2)))
    assert logs.best_epoch is not None


# ------------------------------------------------------------------------- options a model cannot honour
def test_label_smoothing_with_a_regression_loss_is_an_error(data):
    model = mlp()
    with pytest.raises(ValueError, match="label_smoothing"):
        model.fit_with_config(data, tc(label_smoothing=0.1))
    assert model.params is None  # nothing half-built survives


@pytest.mark.parametrize("field, value", [("attention_dropout", 0.1), ("teacher_forcing_ratio", 0.5),
                                          ("sequence_length", 8)])
def test_options_the_mlp_cannot_honour_raise(data, field, value):
    with pytest.raises(ValueError, match=f"{field}.*MLP does not support"):
        mlp().fit_with_config(data, tc(**{field: value}))


# ------------------------------------------------------------------------- dropout override, augmentation
def test_dropout_override(data):
    a = mlp(dropout=0.3)
    a.fit_with_config(data, tc(dropout=0.0))
    b = mlp(dropout=0.0)
    b.fit_with_config(data, tc())
    np.testing.assert_array_equal(a.params.data, b.params.data)
    c = mlp(dropout=0.0)
    c.fit_with_config(data, tc(dropout=0.3))
    d = mlp(dropout=0.3)
    d.fit_with_config(data, tc())
    np.testing.assert_array_equal(c.params.data, d.params.data)
    assert not np.array_equal(c.params.data, b.params.data)
    assert c.config.dropout == 0.0  # the model config is untouched


def test_augmentation_changes_training_and_is_seeded(data):
    base = mlp()
    base.fit_with_config(data, tc())
    off = mlp()
    off.fit_with_config(data, tc(data_augmentation=False))
    np.testing.assert_array_equal(base.params.data, off.params.data)
    a, b = mlp(), mlp()
    la = a.fit_with_config(data, tc(data_augmentation=True))
    lb = b.fit_with_config(data, tc(data_augmentation=DataAugmentation()))
    assert la.step_losses == lb.step_losses
    assert not np.array_equal(a.params.data, base.params.data)
    rng = np.random.default_rng(0)
    x, y = np.ones((4, 6), np.float32), np.ones((4, 2), np.float32)
    xa, ya = DataAugmentation().with_jitter(0.0).apply(x, y, rng)
    np.testing.assert_allclose(xa[:, :1], ya[:, :1])  # input and target scaled together
    assert np.all((xa >= 0.9 - 1e-6) & (xa <= 1.1 + 1e-6)) and len(np.unique(xa[:, 0])) == 4


# ------------------------------------------------------------------------- losses
def test_quantile_mlp_predicts_monotone_quantile_columns(data, tmp_path):
    train, test = data.split_last(4)
    q = LossFunction.Quantile(QuantileConfig().with_quantiles([0.1, 0.5, 0.9]))
    model = mlp(hidden_size=32)
    model.fit_with_config(train, tc(max_epochs=15, loss_function=q, learning_rate=3e-3))
    assert model.n_outputs == 3 and model.output_size == 12
    fc = model.predict(train)
    assert fc.columns == ["unique_id", "ds", "MLP", "MLP-q-0.1", "MLP-q-0.5", "MLP-q-0.9"]
    lo, med, hi = fc.values("MLP-q-0.1"), fc.values("MLP-q-0.5"), fc.values("MLP-q-0.9")
    assert np.all(lo <= med) and np.all(med <= hi)
    np.testing.assert_array_equal(fc.values("MLP"), med)
    # the raw head is already ordered almost everywhere after a little training
    ends = train.offsets[1:]
    rows = ends[:, None] + np.arange(-12, 0)[None, :]
    from neurodivergent.data.scalers import scale, window_stats

    x = train.y[rows]
    loc, sc = window_stats(x, "standard")
    raw = model._forward(scale(x, loc, sc), None, None).data.reshape(len(x), 4, 3)
    assert np.mean(np.diff(raw, axis=2) >= 0) > 0.9
    # the interval is informative: wider than zero and covering most held-out points
    y = np.stack([test.series_y(i) for i in range(test.n_series)])
    assert np.mean((y >= lo) & (y <= hi)) > 0.4 and np.all(hi - lo > 0)
    path = tmp_path / "q.safetensors"
    model.save(str(path))
    again = load_model(str(path))
    assert again.n_outputs == 3 and again.quantiles == (0.1, 0.5, 0.9)
    fc2 = again.predict(train)
    assert fc2.columns == fc.columns
    for col in fc.columns[2:]:
        np.testing.assert_array_equal(fc2.values(col), fc.values(col))


def test_quantile_main_column_without_a_median(data):
    q = LossFunction.Quantile(QuantileConfig().with_quantiles([0.2, 0.4, 0.9]))
    model = mlp()
    model.fit_with_config(data, tc(max_epochs=1, loss_function=q))
    fc = model.predict(data)
    np.testing.assert_array_equal(fc.values("MLP"), fc.values("MLP-q-0.4"))  # the level nearest 0.5


@pytest.mark.parametrize("loss", [LossFunction.MSE, LossFunction.Huber(HuberConfig().with_delta(0.5)), "quantile"])
def test_losses_train(data, loss):
    logs = mlp().fit_with_config(data, tc(max_epochs=4, loss_function=loss, learning_rate=3e-3))
    tl = logs.history["training_loss"]
    assert np.all(np.isfinite(tl)) and tl[-1] < tl[0]


def test_weighted_loss_sees_real_timestamps_and_values(data):
    seen = {}

    def recent(timestamp, value):
        seen["ts"], seen["y"] = timestamp, value
        return (timestamp >= np.datetime64("1990-01-01")).astype(float)

    loss = LossFunction.Weighted(WeightedConfig().with_base_loss(LossFunction.MSE).with_weight_function(recent))
    model = mlp()
    logs = model.fit_with_config(data, tc(loss_function=loss, validation_split=0.2))
    assert seen["ts"].dtype.kind == "M" and np.array_equal(seen["y"], data.y)
    assert np.all(np.isfinite(logs.history["training_loss"]))
    # rows weighted 0 do not count: a function that zeroes everything before the end trains on less
    logs_all = mlp().fit_with_config(data, tc(loss_function=LossFunction.MSE, validation_split=0.2))
    assert logs.step_losses != logs_all.step_losses


def test_negative_log_likelihood_is_refused_for_a_point_model(data):
    with pytest.raises(ValueError, match="likelihood"):
        mlp().fit_with_config(data, tc(loss_function=LossFunction.NegativeLogLikelihood))


# ------------------------------------------------------------------------- batch norm
def test_batch_norm_trains_and_saves_identically(data, tmp_path):
    model = mlp(num_layers=2)
    logs = model.fit_with_config(data, tc(max_epochs=4, batch_norm=True, validation_split=0.2))
    tl = logs.history["training_loss"]
    assert tl[-1] < tl[0]
    assert "layers.0.bn.weight" in model.params and "layers.1.bn.bias" in model.params
    rm = model.buffers["layers.0.bn.running_mean"]
    assert np.any(rm != 0) and np.any(model.buffers["layers.0.bn.running_var"] != 1)
    path = tmp_path / "bn.safetensors"
    model.save(str(path))
    again = load_model(str(path))
    assert again.batch_norm
    np.testing.assert_array_equal(again.buffers["layers.0.bn.running_mean"], rm)
    np.testing.assert_array_equal(again.predict(data).values("MLP"), model.predict(data).values("MLP"))
    # inference uses the running statistics: a single window predicts the same alone or in a batch
    fc_all = model.predict_array(data.y[np.arange(12)][None, :].repeat(3, 0))
    np.testing.assert_array_equal(fc_all[0], model.predict_array(data.y[np.arange(12)][None, :])[0])


def test_batch_norm_layer_gradients_match_finite_differences():
    from neurodivergent.nn import layers
    from neurodivergent.nn.params import ParameterBuffer
    from neurodivergent.nn.tape import Tape

    rng = np.random.default_rng(0)
    pb = ParameterBuffer([("g", (5,)), ("b", (5,))], dtype=np.float64)
    pb["g"][...] = rng.uniform(0.5, 1.5, 5)
    pb["b"][...] = rng.normal(size=5)
    x = rng.normal(size=(7, 5))
    w = rng.normal(size=(7, 5))

    def f(xv):
        rm, rv = np.zeros(5), np.ones(5)
        return float((layers.batch_norm(Tape(), pb, Tape().var(xv), "g", "b", rm, rv).data * w).sum())

    tape = Tape()
    xv = tape.var(x)
    out = layers.batch_norm(tape, pb, xv, "g", "b", np.zeros(5), np.ones(5))
    grads = tape.backward(out, w)
    dx = grads[xv.id]
    eps = 1e-6
    num = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            xp, xm = x.copy(), x.copy()
            xp[i, j] += eps
            xm[i, j] -= eps
            num[i, j] = (f(xp) - f(xm)) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-5, atol=1e-7)
    g0 = pb["g"].copy()
    dg = pb.grad_of("g").copy()
    num_g = np.zeros(5)
    for j in range(5):
        pb["g"][j] = g0[j] + eps
        fp = f(x)
        pb["g"][j] = g0[j] - eps
        fm = f(x)
        pb["g"][j] = g0[j]
        num_g[j] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(dg, num_g, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------- everything on, twice
def everything(tmp_path):
    q = LossFunction.Quantile(QuantileConfig().with_quantiles([0.1, 0.5, 0.9]).with_weights([1.0, 2.0, 1.0]))
    mon = (TrainingMonitor().with_metrics(list(Metric)).with_log_interval(2))
    return (TrainingConfig().with_max_epochs(4).with_batch_size(32).with_seed(11).with_verbose(False)
            .with_validation_split(0.2)
            .with_optimizer(Optimizer.AdamW(AdamWConfig().with_weight_decay(0.01)))
            .with_learning_rate_scheduler(LearningRateScheduler.cosine_annealing().with_t_max(4))
            .with_warmup_steps(7)
            .with_loss_function(q)
            .with_gradient_clipping(GradientClipping.ByNorm(1.0))
            .with_gradient_clipping(GradientClipping.ByValue(-0.5, 0.5))
            .with_l1_regularization(1e-5).with_l2_regularization(1e-4)
            .with_dropout(0.1).with_batch_norm(True).with_data_augmentation(True)
            .with_early_stopping(EarlyStopping().with_patience(3).with_monitor_metric(Metric.MAE))
            .with_callback(ReduceLROnPlateau(patience=1, factor=0.5))
            .with_monitor(mon)
            .with_checkpoint_every(2).with_checkpoint_dir(str(tmp_path / "ck")))


def test_seeded_runs_are_bitwise_equal_with_every_feature_on(data, tmp_path):
    c = everything(tmp_path)
    a, b = mlp(), mlp()
    la = a.fit_with_config(data, c)
    lb = b.fit_with_config(data, c.with_callbacks([ReduceLROnPlateau(patience=1, factor=0.5)]))
    assert la.step_losses == lb.step_losses and la.step_lrs == lb.step_lrs
    np.testing.assert_array_equal(a.params.data, b.params.data)
    for k in a.buffers:
        np.testing.assert_array_equal(a.buffers[k], b.buffers[k])
    for k in ("mae", "mape", "rmse", "smape", "gradient_norm", "epoch_time", "validation_loss"):
        assert len(la.history[k]) == len(la)
    path = tmp_path / "all.safetensors"
    a.save(str(path))
    again = load_model(str(path))
    assert again.training_config.to_dict() == c.to_dict()
    np.testing.assert_array_equal(again.predict(data).values("MLP-q-0.9"), a.predict(data).values("MLP-q-0.9"))
    ck = sorted((tmp_path / "ck").iterdir())
    assert [p.name for p in ck] == ["mlp_epoch_2.safetensors", "mlp_epoch_4.safetensors"][:len(ck)] and ck
    from_ck = load_model(str(ck[0]))
    assert from_ck.batch_norm and from_ck.quantiles == (0.1, 0.5, 0.9)
    assert from_ck.predict(data).columns == a.predict(data).columns
    other = mlp()
    other.fit_with_config(data, c.with_seed(12))
    assert not np.array_equal(other.params.data, a.params.data)


def test_validation_metrics_are_in_the_original_scale(data):
    from neurodivergent.training.trainer import make_samplers
    from neurodivergent.validation import metrics as M

    mon = TrainingMonitor().with_metrics([Metric.MAE, Metric.RMSE, Metric.SMAPE, Metric.MAPE])
    model = mlp()
    logs = model.fit_with_config(data, tc(validation_split=0.2, monitor=mon))
    _, valid = make_samplers(data.y, data.offsets, 12, 4, 0.2)
    x, y = valid.gather(np.arange(valid.n_windows))
    yhat = model.predict_array(x)
    assert logs.get_metric(Metric.MAE) == pytest.approx(M.mae(y, yhat), rel=1e-9)
    assert logs.get_metric("rmse") == pytest.approx(M.rmse(y, yhat), rel=1e-9)
    assert logs.get_metric("smape") == pytest.approx(M.smape(y, yhat), rel=1e-9)
    assert logs.get_metric("mape") == pytest.approx(M.mape(y, yhat), rel=1e-9)


# ------------------------------------------------------------------------- serialisation
def test_training_config_round_trips_with_every_component(tmp_path):
    c = everything(tmp_path)
    d = c.to_dict()
    text = json.dumps(d)
    back = TrainingConfig.from_dict(json.loads(text))
    assert back.to_dict() == d
    for f in ("optimizer", "learning_rate_scheduler", "loss_function", "gradient_clipping", "monitor",
              "early_stopping", "data_augmentation"):
        assert getattr(back, f) == getattr(c, f), f
    assert isinstance(back.callbacks[0], ReduceLROnPlateau) and back.callbacks[0].patience == 1


def test_unserialisable_callbacks_are_named_and_dropped_on_load(data, tmp_path):
    class Mine(Callback):
        pass

    c = tc(callbacks=[Mine()])
    with pytest.raises(ValueError, match=r"callbacks\[0\] \(Mine\)"):
        c.to_dict()
    d = c.to_dict(lossy=True)
    assert d["callbacks"] == [{"__unserialisable__": "Mine"}]
    with pytest.raises(ValueError, match="Mine"):
        TrainingConfig.from_dict(d)
    assert TrainingConfig.from_dict(d, drop_unserialisable=True).callbacks == ()
    model = mlp()
    model.fit_with_config(data, c.with_max_epochs(1))
    model.save(str(tmp_path / "m.safetensors"))
    assert load_model(str(tmp_path / "m.safetensors")).training_config.callbacks == ()


def test_a_callback_that_returns_garbage_is_a_type_error(data):
    class Bad(Callback):
        def on_epoch_end(self, epoch, logs):
            return "stop"

    with pytest.raises(TypeError, match="Bad.on_epoch_end must return CallbackResult"):
        mlp().fit_with_config(data, tc(callbacks=[Bad()]))


def test_stop_from_a_callback(data):
    class StopAt(Callback):
        def on_epoch_end(self, epoch, logs):
            return CallbackResult.Stop if epoch == 1 else None

    logs = mlp().fit_with_config(data, tc(max_epochs=10, callbacks=[StopAt()]))
    assert len(logs) == 2 and logs.stopped_by == "StopAt" and not logs.stopped_early


def test_model_default_clipping_is_used_unless_overridden():
    from neurodivergent.training.trainer import _clippings

    class Clipped(MLP):
        default_gradient_clipping = GradientClipping.ByNorm(1.0)

    m = Clipped(mlp().config)
    assert _clippings(m, TrainingConfig()) == (GradientClipping.ByNorm(1.0),)
    assert _clippings(m, TrainingConfig().with_gradient_clipping(None)) == ()
    assert _clippings(m, TrainingConfig().with_gradient_clipping(GradientClipping.ByValue(-1.0, 1.0))) == (
        GradientClipping.ByValue(-1.0, 1.0),)
    assert _clippings(mlp(), TrainingConfig()) == ()
