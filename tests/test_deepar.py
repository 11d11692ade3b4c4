"""DeepAR: generic model checks (fit, loss decreases, forecast columns and dates, save/load, seeded
repeatability), whole-network gradient vs finite differences (float64), sampling, quantiles and intervals,
likelihoods (StudentT, NegativeBinomial counts), features (lags, calendar, static, exogenous), errors."""
from __future__ import annotations

import numpy as np
import pytest

from neurodivergent import LossFunction, TimeSeriesDataFrame, TrainingConfig, load_dataset, load_model
from neurodivergent.models.deepar import DeepAR, DeepARConfig, default_lags, time_feature_values
from neurodivergent.nn.params import ParameterBuffer
from neurodivergent.nn.tape import Tape
from neurodivergent.training.likelihood import Likelihood


def _cfg(inp=8, h=4, **kw):
    c = DeepARConfig().with_input_size(inp).with_horizon(h).with_hidden_size(kw.pop("hidden", 12))
    for k, v in kw.items():
        c = getattr(c, f"with_{k}")(v)
    return c


def _tc(epochs=6, **kw):
    tc = (TrainingConfig().with_loss_function(LossFunction.NegativeLogLikelihood).with_max_epochs(epochs)
          .with_batch_size(16).with_seed(7).with_verbose(False).with_sample_size(40))
    for k, v in kw.items():
        tc = getattr(tc, f"with_{k}")(v)
    return tc


@pytest.fixture(scope="module")
def macro():
    return load_dataset("us_macro_quarterly")


@pytest.fixture(scope="module")
def fitted(macro):
    train, test = macro.split_last(4)
    model = DeepAR(_cfg())
    logs = model.fit_with_config(train, _tc().with_learning_rate(3e-3))
    return model, logs, train, test


# ------------------------------------------------------------------ generic model check
def test_generic_check(fitted, macro, tmp_path):
    model, logs, train, test = fitted
    losses = logs.history["training_loss"]
    assert len(losses) == 6 and np.all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.3, losses  # NLL can be negative: compare by difference
    fc = model.predict(train)
    a = model.alias
    assert a == "DeepAR"
    assert fc.columns == ["unique_id", "ds", a, f"{a}-median", f"{a}-mean", f"{a}-q-0.1", f"{a}-q-0.5", f"{a}-q-0.9"]
    S, h = macro.n_series, 4
    assert len(fc) == S * h
    yhat = fc.values(a)
    assert yhat.shape == (S, h) and np.all(np.isfinite(yhat))
    np.testing.assert_array_equal(fc["ds"].reshape(S, h), np.stack([test.series_ds(i) for i in range(S)]))
    # save / load: same parameters, config, structure, history and (seeded) forecasts
    path = tmp_path / "deepar.safetensors"
    model.save(str(path))
    again = load_model(str(path))
    assert type(again) is DeepAR and again.config == model.config
    assert again.lags == model.lags and again.likelihood is model.likelihood
    assert again.time_feature_names == model.time_feature_names
    np.testing.assert_array_equal(again.params.data, model.params.data)
    np.testing.assert_array_equal(again.predict(train).values(a), yhat)
    assert again.training_logs.history == logs.history
    assert DeepAR.load(str(path)).training_config.sample_size == 40


def test_seeded_training_is_bitwise_repeatable(fitted):
    model, logs, train, _ = fitted
    twin = DeepAR(_cfg())
    logs2 = twin.fit_with_config(train, _tc().with_learning_rate(3e-3))
    assert logs2.step_losses == logs.step_losses
    np.testing.assert_array_equal(twin.params.data, model.params.data)
    other = DeepAR(_cfg())
    other.fit_with_config(train, _tc(epochs=1).with_seed(8))
    first = DeepAR(_cfg())
    first.fit_with_config(train, _tc(epochs=1))
    assert not np.array_equal(other.params.data, first.params.data)


def test_training_learns_a_seasonal_pattern():
    from neurodivergent.validation.probabilistic import coverage, crps_from_samples

    rng = np.random.default_rng(3)
    n, S, h = 150, 4, 12
    t = np.arange(n)
    y = np.concatenate([50 + 10 * (i + 1) * np.sin(2 * np.pi * (t + 3 * i) / 12) + rng.normal(0, 1, n)
                        for i in range(S)])
    data = TimeSeriesDataFrame.from_arrays(np.repeat([f"s{i}" for i in range(S)], n), np.tile(t, S), y, freq=1)
    train, test = data.split_last(h)
    cfg = _cfg(24, h, hidden=16, season_length=12)
    model, fresh = DeepAR(cfg), DeepAR(cfg)
    model.fit_with_config(train, _tc(epochs=40).with_learning_rate(1e-2))
    fresh.fit_with_config(train, _tc(epochs=1).with_max_steps(1))
    assert 12 in model.lags
    yt = test.y.reshape(S, h)
    s_model, s_fresh = model.predict_samples(train), fresh.predict_samples(train)
    crps, crps0 = crps_from_samples(yt, s_model), crps_from_samples(yt, s_fresh)
    assert crps < 0.5 * crps0, (crps, crps0)
    fc = model.predict(train, level=[90])
    assert coverage(yt, fc.values("DeepAR-lo-90"), fc.values("DeepAR-hi-90")) > 0.5


# ------------------------------------------------------------------ gradient of the whole network
@pytest.mark.parametrize("likelihood,layers", [(Likelihood.Gaussian, 2), (Likelihood.StudentT, 1),
                                               (Likelihood.NegativeBinomial, 1)])
def test_network_gradient_matches_finite_differences(likelihood, layers):
    rng = np.random.default_rng(0)
    n = 40
    y = rng.poisson(20, size=2 * n).astype(float)
    data = TimeSeriesDataFrame.from_arrays(np.repeat(["a", "b"], n), np.tile(np.arange(n), 2), y, freq=1)
    model = DeepAR(_cfg(6, 3, hidden=5, num_layers=layers, dropout=0.0, lags=(1, 2, 5)))
    model._set_structure(model._decide_structure(data, _tc().with_likelihood(likelihood)))
    model.params = ParameterBuffer(model._parameter_specs(), dtype=np.float64)
    model._init_parameters(rng)
    from neurodivergent.models.deepar import _DataContext

    ctx = _DataContext(model, data)
    s, t = np.array([0, 1, 1]), np.array([10, 9, 30])
    x, target, scale = model._window_batch(ctx, s, t)
    assert x.dtype == np.float64 and x.shape == (3, 9, model.n_inputs)

    def loss_at(theta):
        old = model.params.data.copy()
        model.params.data[...] = theta
        raw, _ = model._network(x, None, None)
        model.params.data[...] = old
        return model._nll(raw.data, target, scale, grad=False)[0]

    tape = Tape()
    model.params.zero_grad()
    raw, _ = model._network(x, tape, None)
    _, draw = model._nll(raw.data, target, scale)
    tape.backward(raw, draw)
    g = model.params.grad.copy()
    theta = model.params.data.copy()
    idx = rng.choice(theta.size, size=25, replace=False)
    for i in idx:
        e = np.zeros_like(theta)
        e[i] = 1e-6
        fd = (loss_at(theta + e) - loss_at(theta - e)) / 2e-6
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-8), model.params.names


# ------------------------------------------------------------------ sampling, quantiles, intervals
def test_predict_samples_repeatable_and_consistent(fitted):
    model, _, train, _ = fitted
    s1 = model.predict_samples(train)
    assert s1.shape == (train.n_series, 40, 4)
    np.testing.assert_array_equal(s1, model.predict_samples(train))
    s2 = model.predict_samples(train, seed=123)
    assert not np.array_equal(s1, s2)
    s3 = model.predict_samples(train, n_samples=7, seed=123)
    assert s3.shape == (train.n_series, 7, 4)
    fc = model.predict(train, level=[80, 90])
    np.testing.assert_allclose(fc.values("DeepAR"), np.median(s1, axis=1))
    np.testing.assert_allclose(fc.values("DeepAR-mean"), s1.mean(axis=1))
    np.testing.assert_allclose(fc.values("DeepAR-lo-80"), np.quantile(s1, 0.1, axis=1))
    np.testing.assert_allclose(fc.values("DeepAR-hi-90"), np.quantile(s1, 0.95, axis=1))
    with pytest.raises(ValueError, match="n_samples"):
        model.predict_samples(train, n_samples=0)


def test_quantiles_monotone_in_level(fitted):
    model, _, train, _ = fitted
    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    model2 = DeepAR(model.config)
    model2.params, model2.training_logs = model.params, model.training_logs
    model2._set_structure(model._structure())
    model2.training_config = model.training_config.with_quantile_levels(levels)
    fc = model2.predict(train, level=[50, 80, 95])
    q = np.stack([fc.values(f"DeepAR-q-{lv:g}") for lv in levels], axis=-1)
    assert np.all(np.diff(q, axis=-1) >= 0)
    lo = np.stack([fc.values(f"DeepAR-lo-{lv}") for lv in (50, 80, 95)])
    hi = np.stack([fc.values(f"DeepAR-hi-{lv}") for lv in (50, 80, 95)])
    assert np.all(np.diff(lo, axis=0) <= 0) and np.all(np.diff(hi, axis=0) >= 0)
    assert np.all(fc.values("DeepAR-q-0.5") == fc.values("DeepAR"))


# ------------------------------------------------------------------ likelihoods
def _counts(n_series=3, n=60, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    ys = [rng.poisson(5 + 4 * (1 + np.sin(2 * np.pi * t / 7)) * (i + 1)) for i in range(n_series)]
    ids = np.repeat([f"s{i}" for i in range(n_series)], n)
    ds = np.tile(np.datetime64("2021-01-04") + t.astype("timedelta64[D]"), n_series)
    return TimeSeriesDataFrame.from_arrays(ids, ds, np.concatenate(ys).astype(float), freq="D")


def test_negative_binomial_on_counts():
    data = _counts()
    model = DeepAR(_cfg(14, 7))
    logs = model.fit_with_config(data, _tc(epochs=4).with_likelihood(Likelihood.NegativeBinomial))
    assert np.all(np.isfinite(logs.history["training_loss"]))
    s = model.predict_samples(data)
    assert np.all(s >= 0) and np.all(s == np.floor(s))
    assert 7 in model.lags and "day_of_week" in model.time_feature_names
    bad = TimeSeriesDataFrame.from_arrays(data["unique_id"] if False else np.repeat(["a", "b"], 30),
                                          np.tile(np.arange(30), 2), np.r_[np.ones(29), 2.5, np.ones(30)], freq=1)
    with pytest.raises(ValueError, match=r"non-negative integer.*2\.5.*'a'"):
        DeepAR(_cfg(6, 3)).fit_with_config(bad, _tc(epochs=1).with_likelihood("negative_binomial"))


def test_student_t_trains_and_samples(macro):
    model = DeepAR(_cfg(hidden=6))
    logs = model.fit_with_config(macro, _tc(epochs=2).with_likelihood(Likelihood.StudentT))
    assert model.params["head.weight"].shape == (3, 6)
    assert np.all(np.isfinite(logs.step_losses))
    assert np.all(np.isfinite(model.predict_samples(macro, n_samples=5)))


# ------------------------------------------------------------------ features
def test_default_lags_and_time_features():
    assert default_lags("H", 1, 24) == tuple(sorted(set(range(1, 8)) | {23, 24, 25, 47, 48, 49, 71, 72, 73,
                                                                          167, 168, 169}))
    assert 12 in default_lags("M", 1, 12) and 36 in default_lags("M", 1, 12)
    assert default_lags(None, 1, 1) == tuple(range(1, 8))
    ds = np.array(["2024-01-01T00:00", "2024-01-01T23:00", "2024-01-07T12:00", "2024-12-31T00:00"],
                  dtype="datetime64[s]")
    np.testing.assert_allclose(time_feature_values("hour_of_day", ds), [-0.5, 0.5, 12 / 23 - 0.5, -0.5])
    np.testing.assert_allclose(time_feature_values("day_of_week", ds), [-0.5, -0.5, 0.5, 1 / 6 - 0.5])  # Mon, Sun, Tue
    np.testing.assert_allclose(time_feature_values("month_of_year", ds), [-0.5, -0.5, -0.5, 0.5])


def test_static_and_exogenous_features():
    rng = np.random.default_rng(1)
    n, S, h = 40, 2, 4
    ids = np.repeat(["a", "b"], n)
    ds = np.tile(np.arange(n), S)
    temp = rng.normal(size=S * n)
    y = 10 + 2 * temp + rng.normal(scale=0.1, size=S * n)
    data = TimeSeriesDataFrame.from_arrays(ids, ds, y, freq=1, static={"size": {"a": 1.0, "b": 2.0}}, temp=temp)
    model = DeepAR(_cfg(8, h, static_features=("size",), exog_features=("temp",)))
    model.fit_with_config(data, _tc(epochs=2))
    assert model.n_inputs == 7 + 1 + 2 + 1 + 1  # lags, age, log scale and log1p|loc|, static, exog
    with pytest.raises(ValueError, match="futr_exog"):
        model.predict(data)
    fut = {"temp": rng.normal(size=(S, h))}
    fc = model.predict(data, futr_exog=fut)
    assert np.all(np.isfinite(fc.values("DeepAR")))
    with pytest.raises(ValueError, match=r"must have shape \(2, 4\)"):
        model.predict(data, futr_exog={"temp": np.zeros((S, h + 1))})
    with pytest.raises(ValueError, match="not a static column"):
        DeepAR(_cfg(8, h, static_features=("weight",))).fit_with_config(data, _tc(epochs=1))


# ------------------------------------------------------------------ options and errors
def test_guide_config_and_default_loss(macro):
    deepar_training = (TrainingConfig()
                       .with_loss_function(LossFunction.NegativeLogLikelihood)
                       .with_sample_size(100)
                       .with_likelihood(Likelihood.Gaussian)
                       .with_quantile_levels([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
                       .with_max_steps(2).with_verbose(False))
    model = DeepAR(_cfg(hidden=4))
    model.fit_with_config(macro, deepar_training)
    assert len(model.predict(macro).columns) == 3 + 2 + 9
    # the default loss ('mae', i.e. not set) trains by NLL too
    DeepAR(_cfg(hidden=4)).fit(macro, TrainingConfig().with_max_steps(1).with_verbose(False))


def test_refused_options_leave_model_unchanged(macro):
    model = DeepAR(_cfg(hidden=4))
    with pytest.raises(ValueError, match="negative log-likelihood"):
        model.fit_with_config(macro, _tc().with_loss_function(LossFunction.MAE))
    with pytest.raises(ValueError, match="sequence_length"):
        model.fit_with_config(macro, _tc().with_sequence_length(4))
    with pytest.raises(ValueError, match="shorter than input_size"):
        DeepAR(_cfg(200, 4)).fit_with_config(macro, _tc())
    assert model.params is None and not model.is_fitted
    with pytest.raises(NotImplementedError, match="predict\\(data\\)"):
        model.predict_array(np.zeros((1, 8)))
    from neurodivergent.models.base import NotFittedError

    with pytest.raises(NotFittedError, match="no training state to checkpoint: call fit"):
        model.save_checkpoint("x.ckpt")
    with pytest.raises(NotFittedError, match="no training state to resume"):
        model.resume_training(macro)


def test_cli_trains_deepar(tmp_path, capsys):
    from neurodivergent.cli import main

    out = tmp_path / "fc.csv"
    assert main(["train", "--model", "deepar", "--dataset", "air_passengers", "--max-steps", "5", "--hidden-size", "8",
                 "--output", str(out), "-q"]) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert header[:5] == ["unique_id", "ds", "DeepAR", "DeepAR-median", "DeepAR-mean"]
    assert "DeepAR" in capsys.readouterr().out


def test_exports():
    import neurodivergent as nd
    from neurodivergent import prelude

    assert nd.DeepAR is DeepAR and nd.Likelihood is Likelihood
    assert {"DeepAR", "DeepARConfig", "Likelihood"} <= set(prelude.__all__)


def test_validation_split_and_early_stopping(macro):
    model = DeepAR(_cfg(hidden=6))
    tc = _tc(epochs=30).with_validation_split(0.1).with_early_stopping(patience=1, min_delta=10.0)
    logs = model.fit_with_config(macro, tc)
    val = logs.history["validation_loss"]
    assert np.all(np.isfinite(val))
    assert logs.stopped_early and len(val) == 2  # no improvement by 10 nats after the first epoch


# ------------------------------------------------------------------ the shared loop: checkpoints, resume, callbacks
def _run_cfg(epochs=2):
    """Stateful features on: validation, early stopping with best weights, augmentation, AdamW, warmup."""
    from neurodivergent.training import AdamWConfig, Optimizer

    return (_tc(epochs).with_validation_split(0.1).with_early_stopping(patience=5).with_data_augmentation(True)
            .with_optimizer(Optimizer.AdamW(AdamWConfig().with_weight_decay(0.01))).with_warmup_steps(3)
            .with_learning_rate(3e-3))


def test_checkpoint_round_trip_and_resume_continue_like_a_longer_run(macro, tmp_path):
    import neurodivergent as nd

    m = DeepAR(_cfg(hidden=6))
    m.fit_with_config(macro, _run_cfg(2))
    path = str(tmp_path / "deepar.ckpt")
    m.save_checkpoint(path)
    want_samples = m.predict_samples(macro, n_samples=30)
    want = m.predict(macro, level=[80])
    for loaded in (DeepAR.load_checkpoint(path), nd.load_checkpoint(path), load_model(path)):
        assert type(loaded) is DeepAR and loaded.lags == m.lags and loaded.likelihood is m.likelihood
        np.testing.assert_array_equal(loaded.params.data, m.params.data)
        np.testing.assert_array_equal(loaded.predict_samples(macro, n_samples=30), want_samples)
        got = loaded.predict(macro, level=[80])
        assert got.columns == want.columns
        for c in want.columns[2:]:
            np.testing.assert_array_equal(got.values(c), want.values(c))
    # a file whose training config could not be rebuilt samples with the run's seed and sample size all the same
    loaded = nd.load_checkpoint(path)
    loaded.training_config = None
    np.testing.assert_array_equal(loaded.predict_samples(macro), m.predict_samples(macro))
    assert loaded.predict_samples(macro).shape[1] == 40
    # resume from the file (and in-process) = one run of 4 epochs
    longer = DeepAR(_cfg(hidden=6))
    ref = longer.fit_with_config(macro, _run_cfg(4))
    resumed = DeepAR.load_checkpoint(path)
    logs = resumed.resume_training(macro, _run_cfg(4))
    assert logs.step_losses == ref.step_losses and logs.history["validation_loss"] == ref.history["validation_loss"]
    np.testing.assert_array_equal(resumed.params.data, longer.params.data)
    for k, v in longer._train_state[0].items():
        assert resumed._train_state[0][k].tobytes() == v.tobytes(), k
    m.resume_training(macro, _run_cfg(4))
    np.testing.assert_array_equal(m.params.data, longer.params.data)
    # the features are part of the data's fingerprint: other calendar features, other data
    shifted = TimeSeriesDataFrame.from_arrays(np.repeat(macro.ids, macro.lengths), (macro.ds.astype("datetime64[M]") + 1).astype(macro.ds.dtype),
                                              macro.y, freq=macro.freq)
    with pytest.raises(ValueError, match="different data"):
        DeepAR.load_checkpoint(path).resume_training(shifted, _run_cfg(4))
    with pytest.raises(ValueError, match="differs from the checkpoint's in likelihood"):
        DeepAR.load_checkpoint(path).resume_training(macro, _run_cfg(4).with_likelihood(Likelihood.StudentT))


def test_callbacks_monitor_and_checkpoint_strategies_see_deepar_epochs(macro, tmp_path, caplog):
    import logging
    import os

    from neurodivergent.checkpointing import CheckpointConfig, CheckpointStrategy, list_checkpoints
    from neurodivergent.training import Callback, Metric, TrainingMonitor

    class Record(Callback):
        def __init__(self):
            self.epochs, self.steps = [], []

        def on_epoch_end(self, epoch, logs):
            self.epochs.append((epoch, logs.get_metric("validation_loss")))
            if epoch == 1:
                self.model.save_checkpoint(str(tmp_path / "from_callback.ckpt"))

        def on_batch_end(self, step, logs):
            self.steps.append(step)

    rec = Record()
    ck = CheckpointConfig().with_save_directory(str(tmp_path / "ck")).with_keep_last_n(2)
    best = CheckpointConfig().with_save_directory(str(tmp_path / "best")).with_strategy(
        CheckpointStrategy.BestValidationLoss)
    monitor = TrainingMonitor().with_metrics([Metric.TrainingLoss, Metric.ValidationLoss, Metric.GradientNorm])
    m = DeepAR(_cfg(hidden=6))
    with caplog.at_level(logging.INFO, logger="neurodivergent"):
        logs = m.fit_with_config(macro, _tc(4).with_validation_split(0.1).with_callback(rec).with_monitor(monitor)
                                 .with_checkpointing(ck))
    assert [e for e, _ in rec.epochs] == [0, 1, 2, 3]
    assert [v for _, v in rec.epochs] == logs.history["validation_loss"]
    assert rec.steps == list(range(len(logs.step_losses)))
    assert len(logs.history["gradient_norm"]) == 4 and all(g > 0 for g in logs.history["gradient_norm"])
    assert sum("DeepAR epoch" in r.getMessage() and "validation_loss=" in r.getMessage() for r in caplog.records) == 4
    assert sorted(os.listdir(tmp_path / "ck")) == ["deepar_epoch_3.safetensors", "deepar_epoch_4.safetensors"]
    assert [e for _, _, e in list_checkpoints(tmp_path / "ck")] == [3, 4]
    from_cb = DeepAR.load_checkpoint(str(tmp_path / "from_callback.ckpt"))
    assert from_cb.training_logs.history["epoch"] == [1, 2]  # written at the end of epoch 2
    # the best-validation strategy keeps one file per improvement, named after its epoch
    m2 = DeepAR(_cfg(hidden=6))
    logs2 = m2.fit_with_config(macro, _tc(3).with_validation_split(0.1).with_checkpointing(best))
    val = logs2.history["validation_loss"]
    improved = [i + 1 for i, v in enumerate(val) if v < min(val[:i], default=np.inf)]
    assert sorted(os.listdir(tmp_path / "best")) == sorted(f"deepar_best_epoch_{e}.safetensors" for e in improved)


def test_visualizer_draws_deepar_training(macro, tmp_path):
    pytest.importorskip("matplotlib")
    from neurodivergent.training.visualizer import TrainingVisualizer

    vis = TrainingVisualizer().with_model_architecture_plot(True).with_save_directory(str(tmp_path / "plots"))
    DeepAR(_cfg(hidden=4)).fit_with_config(macro, _tc(1).with_max_steps(3).with_visualizer(vis))
    import os

    assert {"curves.png", "architecture.png"} <= set(os.listdir(tmp_path / "plots"))


def test_fault_tolerant_retry_replays_a_failed_epoch_exactly(macro):
    from neurodivergent.training import Callback
    from neurodivergent.training.fault_tolerance import FaultTolerantTraining

    class FailOnce(Callback):
        def __init__(self, epochs):
            self.epochs, self.failed = set(epochs), set()

        def on_epoch_end(self, epoch, logs):
            if epoch in self.epochs and epoch not in self.failed:
                self.failed.add(epoch)
                raise OSError(28, "No space left on device")

    ref = DeepAR(_cfg(hidden=6))
    ref_logs = ref.fit_with_config(macro, _run_cfg(3).with_callback(FailOnce([])))
    m = DeepAR(_cfg(hidden=6))
    ft = FaultTolerantTraining().with_retry_on_failure(1)
    logs = m.fit_with_config(macro, _run_cfg(3).with_fault_tolerance(ft).with_callback(FailOnce([0, 2])))
    assert logs.step_losses == ref_logs.step_losses  # dropout, augmentation and shuffling replayed exactly
    np.testing.assert_array_equal(m.params.data, ref.params.data)
    assert [a["epoch"] for a in m._train_state[1]["failures"]] == [1, 3]


def test_augmentation_and_point_metrics(macro):
    from neurodivergent.training import Metric, TrainingMonitor

    plain = DeepAR(_cfg(hidden=4)).fit_with_config(macro, _tc(1))
    aug = DeepAR(_cfg(hidden=4)).fit_with_config(macro, _tc(1).with_data_augmentation(True))
    assert aug.step_losses[0] != plain.step_losses[0]  # same init and windows, augmented inputs
    with pytest.raises(ValueError, match="NegativeBinomial trains on the raw counts"):
        DeepAR(_cfg(hidden=4)).fit_with_config(macro, _tc(1).with_data_augmentation(True)
                                               .with_likelihood(Likelihood.NegativeBinomial))
    with pytest.raises(ValueError, match="not Metric.MAE, Metric.RMSE"):
        DeepAR(_cfg(hidden=4)).fit_with_config(macro, _tc(1).with_validation_split(0.1).with_monitor(
            TrainingMonitor().with_metrics([Metric.RMSE, Metric.MAE])))
    with pytest.raises(ValueError, match="not Metric.MAE"):
        DeepAR(_cfg(hidden=4)).fit_with_config(macro, _tc(1).with_validation_split(0.1).with_early_stopping(
            patience=2, monitor_metric=Metric.MAE))
