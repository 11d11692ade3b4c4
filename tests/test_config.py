import dataclasses

import pytest

from neurodivergent import EarlyStopping, MLPConfig, TrainingConfig


def test_builders_return_new_objects_and_leave_original():
    a = TrainingConfig()
    b = a.with_learning_rate(0.01).with_batch_size(64)
    assert a.learning_rate == 1e-3 and a.batch_size == 32
    assert b.learning_rate == 0.01 and b.batch_size == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.learning_rate = 1.0  # type: ignore[misc]


def test_new_equals_constructor():
    assert TrainingConfig.new() == TrainingConfig()
    assert MLPConfig.new() == MLPConfig()


@pytest.mark.parametrize(
    "call, exc, field",
    [
        (lambda c: c.with_learning_rate(-1e-3), ValueError, "learning_rate"),
        (lambda c: c.with_learning_rate(float("nan")), ValueError, "learning_rate"),
        (lambda c: c.with_learning_rate("fast"), TypeError, "learning_rate"),
        (lambda c: c.with_batch_size(0), ValueError, "batch_size"),
        (lambda c: c.with_batch_size(3.5), TypeError, "batch_size"),
        (lambda c: c.with_max_epochs(True), TypeError, "max_epochs"),
        (lambda c: c.with_validation_split(1.0), ValueError, "validation_split"),
        (lambda c: c.with_validation_split(-0.1), ValueError, "validation_split"),
        (lambda c: c.with_loss_function("hinge"), ValueError, "loss_function"),
        (lambda c: c.with_seed(-1), ValueError, "seed"),
        (lambda c: c.with_verbose("yes"), TypeError, "verbose"),
        (lambda c: c.with_early_stopping(patience=0), ValueError, "patience"),
        (lambda c: c.with_max_steps(0), ValueError, "max_steps"),
    ],
)
def test_invalid_values_raise_at_the_with_call_naming_the_field(call, exc, field):
    with pytest.raises(exc, match=field):
        call(TrainingConfig())


def test_model_config_validation():
    with pytest.raises(ValueError, match="hidden_size"):
        MLPConfig().with_hidden_size(0)
    with pytest.raises(ValueError, match="activation"):
        MLPConfig().with_activation("swish")
    with pytest.raises(ValueError, match="scaler"):
        MLPConfig().with_scaler("zscore")
    with pytest.raises(ValueError, match="dropout"):
        MLPConfig().with_dropout(1.0)


def test_early_stopping_shortcut_and_object():
    c = TrainingConfig().with_early_stopping(patience=15)
    assert c.early_stopping == EarlyStopping().with_patience(15)
    es = EarlyStopping().with_patience(20).with_min_delta(1e-4).with_restore_best_weights(False)
    assert TrainingConfig().with_early_stopping(es).early_stopping is es
    assert TrainingConfig().with_early_stopping(7).early_stopping.patience == 7
    assert c.with_early_stopping(None).early_stopping is None


def test_dict_round_trip_including_nested():
    c = (TrainingConfig().with_max_epochs(7).with_learning_rate(0.02).with_validation_split(0.2)
         .with_early_stopping(patience=3).with_loss_function("huber"))
    d = c.to_dict()
    assert d["early_stopping"]["patience"] == 3
    assert TrainingConfig.from_dict(d) == c
    m = MLPConfig().with_input_size(24).with_horizon(12).with_alias("net")
    assert MLPConfig.from_dict(m.to_dict()) == m


def test_from_dict_rejects_unknown_and_invalid():
    with pytest.raises(ValueError, match="unknown TrainingConfig fields: colour"):
        TrainingConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="learning_rate"):
        TrainingConfig.from_dict({"learning_rate": -1})
