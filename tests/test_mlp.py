import asyncio
import math

import numpy as np
import pytest

from neurodivergent import MLP, MLPConfig, TimeSeriesDataFrame, TrainingConfig, load_dataset
from neurodivergent.models.base import NotFittedError
from neurodivergent.training.trainer import TrainingDivergedError
from tests.model_check import check_model


def small_mlp(**kw):
    cfg = MLPConfig().with_input_size(12).with_horizon(4).with_hidden_size(32)
    for k, v in kw.items():
        cfg = getattr(cfg, f"with_{k}")(v)
    return MLP(cfg)


def test_generic_model_check(tmp_path):
    check_model(small_mlp, tmp_path)


def test_generic_model_check_with_dropout_and_gelu(tmp_path):
    check_model(lambda: small_mlp(dropout=0.1, activation="gelu", num_layers=3), tmp_path)


def test_guide_simple_example_on_air_passengers(tmp_path):
    data = load_dataset("air_passengers")
    path = tmp_path / "data.csv"
    data.to_csv(str(path))
    data = TimeSeriesDataFrame.from_csv(str(path))
    model = MLP(MLPConfig().with_input_size(24).with_hidden_size(128).with_horizon(12))
    model.fit(data, TrainingConfig().with_max_epochs(30).with_verbose(False))
    forecast = model.predict(data)
    assert forecast.columns == ["unique_id", "ds", "MLP"]
    assert len(forecast) == 12
    assert str(forecast["ds"][0]).startswith("1961-01-01")


def test_mlp_beats_seasonal_naive_on_held_out_air_passengers():
    from neurodivergent.validation import metrics as M
    from neurodivergent.validation.baselines import seasonal_naive

    data = load_dataset("air_passengers")
    train, test = data.split_last(12)
    model = MLP(MLPConfig().with_input_size(36).with_horizon(12).with_hidden_size(128))
    model.fit(train, TrainingConfig().with_max_epochs(150).with_seed(1).with_verbose(False))
    yhat = model.predict(train).values("MLP")[0]
    y = test.series_y(0)
    snaive = seasonal_naive(train.series_y(0), 12, 12)
    assert M.mae(y, yhat) < M.mae(y, snaive)


def test_predict_before_fit_and_bad_inputs():
    model = small_mlp()
    data = load_dataset("us_macro_quarterly")
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict(data)
    with pytest.raises(TypeError, match="TimeSeriesDataFrame"):
        model.fit(np.zeros(10))
    with pytest.raises(ValueError, match="input_size"):
        MLP(MLPConfig().with_horizon(3)).fit(data)
    with pytest.raises(TypeError, match="MLPConfig"):
        MLP(TrainingConfig())


def test_too_short_series_rejected_before_training_naming_them():
    data = load_dataset("us_macro_quarterly")
    model = MLP(MLPConfig().with_input_size(200).with_horizon(8))
    with pytest.raises(ValueError, match=r"shorter than input_size \+ horizon = 208"):
        model.fit(data)
    model = MLP(MLPConfig().with_input_size(150).with_horizon(8))
    with pytest.raises(ValueError, match="validation part"):
        model.fit(data, TrainingConfig().with_validation_split(0.5))


def test_validation_split_and_early_stopping_restore_best_weights():
    data = load_dataset("us_macro_quarterly")
    model = small_mlp(hidden_size=64)
    tc = (TrainingConfig().with_max_epochs(200).with_batch_size(8).with_validation_split(0.2)
          .with_early_stopping(patience=3).with_learning_rate(3e-3).with_verbose(False))
    logs = model.fit_with_config(data, tc)
    vl = logs.history["validation_loss"]
    assert logs.stopped_early and len(vl) < 200
    best = int(np.argmin(vl))
    assert logs.best_epoch == best + 1 and len(vl) == best + 1 + 3
    # the restored weights give exactly the best validation loss
    from neurodivergent.training.trainer import evaluate_loss, make_samplers

    _, valid = make_samplers(data.y, data.offsets, 12, 4, 0.2)
    assert evaluate_loss(model, valid, tc) == pytest.approx(vl[best], rel=1e-6)


def test_max_steps_bounds_training():
    data = load_dataset("us_macro_quarterly")
    logs = small_mlp().fit_with_config(data, TrainingConfig().with_max_steps(5).with_verbose(False))
    assert len(logs.step_losses) == 5 and logs.get_metric("step") == 5


def test_diverging_training_raises_and_leaves_model_untouched():
    data = load_dataset("us_macro_quarterly")
    model = small_mlp()
    model.fit_with_config(data, TrainingConfig().with_max_epochs(1).with_verbose(False))
    before = model.params.data.copy()
    with pytest.raises(TrainingDivergedError, match="diverged"):
        model.fit_with_config(data, TrainingConfig().with_learning_rate(1e30).with_loss_function("mse")
                              .with_max_epochs(50).with_verbose(False))
    np.testing.assert_array_equal(model.params.data, before)


def test_fit_async_equals_fit():
    data = load_dataset("us_macro_quarterly")
    tc = TrainingConfig().with_max_epochs(2).with_verbose(False)
    a, b = small_mlp(), small_mlp()
    a.fit_with_config(data, tc)
    asyncio.run(b.fit_with_config_async(data, tc))
    np.testing.assert_array_equal(a.params.data, b.params.data)


@pytest.mark.parametrize("loss", ["mae", "mse", "huber"])
def test_every_loss_trains(loss):
    data = load_dataset("us_macro_quarterly")
    logs = small_mlp().fit_with_config(
        data, TrainingConfig().with_max_epochs(6).with_loss_function(loss).with_verbose(False))
    tl = logs.history["training_loss"]
    assert math.isfinite(tl[-1]) and tl[-1] < tl[0]


def test_checkpoint_every_writes_loadable_models(tmp_path):
    data = load_dataset("us_macro_quarterly")
    tc = (TrainingConfig().with_max_epochs(4).with_checkpoint_every(2)
          .with_checkpoint_dir(str(tmp_path / "ck")).with_verbose(False))
    small_mlp().fit_with_config(data, tc)
    files = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert files == ["mlp_epoch_2.safetensors", "mlp_epoch_4.safetensors"]
    from neurodivergent import load_model

    assert load_model(str(tmp_path / "ck" / files[0])).predict(data).values("MLP").shape == (10, 4)


def test_loading_a_damaged_or_foreign_file_raises(tmp_path):
    from neurodivergent import load_model
    from neurodivergent.checkpointing.safetensors import SafetensorsError, save_file

    p = tmp_path / "x.safetensors"
    save_file({"a": np.zeros(3, np.float32)}, str(p), metadata={"format": "other"})
    with pytest.raises(ValueError, match="not a neurodivergent model"):
        load_model(str(p))
    save_file({"a": np.zeros(3, np.float32)}, str(p),
              metadata={"format": "neurodivergent.model", "format_version": "99", "model_class": "MLP"})
    with pytest.raises(ValueError, match="upgrade"):
        load_model(str(p))
    save_file({"a": np.zeros(3, np.float32)}, str(p),
              metadata={"format": "neurodivergent.model", "format_version": "1", "model_class": "os.system"})
    with pytest.raises(ValueError, match="unknown model class"):
        load_model(str(p))
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(SafetensorsError):
        load_model(str(p))
