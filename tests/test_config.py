import dataclasses

import pytest

from neurodivergent import EarlyStopping, MLPConfig, TrainingConfig


def test_builders_return_new_objects_and_leave_original():
    a = TrainingConfig()
    b = a.with_learning_rate(0.01).with_batch_size(64)
    assert a.learning_rate is None and a.base_learning_rate() == 1e-3 and a.batch_size == 32
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


# ------------------------------------------------------------------------- the training engine's fields
from neurodivergent.training import (  # noqa: E402
    DataAugmentation,
    GradientClipping,
    LearningRateScheduler,
    LossFunction,
    Metric,
    Mode,
    Optimizer,
    ReduceLROnPlateau,
    TrainingMonitor,
)


@pytest.mark.parametrize(
    "call, exc, field",
    [
        (lambda c: c.with_l1_regularization(-1e-5), ValueError, "l1_regularization"),
        (lambda c: c.with_l2_regularization(float("inf")), ValueError, "l2_regularization"),
        (lambda c: c.with_dropout(1.0), ValueError, "dropout"),
        (lambda c: c.with_label_smoothing(-0.1), ValueError, "label_smoothing"),
        (lambda c: c.with_sequence_length(0), ValueError, "sequence_length"),
        (lambda c: c.with_teacher_forcing_ratio(1.5), ValueError, "teacher_forcing_ratio"),
        (lambda c: c.with_teacher_forcing_ratio("half"), TypeError, "teacher_forcing_ratio"),
        (lambda c: c.with_warmup_steps(-1), ValueError, "warmup_steps"),
        (lambda c: c.with_attention_dropout(1.0), ValueError, "attention_dropout"),
        (lambda c: c.with_batch_norm(1), TypeError, "batch_norm"),
        (lambda c: c.with_data_augmentation("yes"), TypeError, "data_augmentation"),
        (lambda c: c.with_optimizer("lbfgs"), TypeError, "optimizer"),
        (lambda c: c.with_loss_function(3), TypeError, "loss_function"),
        (lambda c: c.with_learning_rate_scheduler(0.1), TypeError, "learning_rate_scheduler"),
        (lambda c: c.with_gradient_clipping(1.0), TypeError, "gradient_clipping"),
        (lambda c: c.with_gradient_clipping([GradientClipping.ByNorm(1.0), GradientClipping.ByNorm(2.0)]),
         ValueError, "gradient_clipping"),
        (lambda c: c.with_monitor(object()), TypeError, "monitor"),
        (lambda c: c.with_callbacks([1]), TypeError, "callbacks"),
        (lambda c: c.with_callback("cb"), TypeError, "callbacks"),
        (lambda c: c.with_early_stopping(patience=3, mode="sideways"), ValueError, "mode"),
        (lambda c: c.with_early_stopping(patience=3, monitor_metric="accuracy"), ValueError, "monitor_metric"),
    ],
)
def test_engine_fields_raise_at_the_with_call_naming_the_field(call, exc, field):
    with pytest.raises(exc, match=field):
        call(TrainingConfig())


def test_guide_early_stopping_builder_and_shortcut():
    es = (EarlyStopping.new().with_patience(20).with_min_delta(1e-4).with_restore_best_weights(True)
          .with_monitor_metric(Metric.ValidationLoss).with_mode(Mode.Minimize))
    assert es.monitor_metric is Metric.ValidationLoss and es.mode is Mode.Minimize
    c = TrainingConfig().with_early_stopping(es)
    assert c.early_stopping is es
    assert EarlyStopping().monitor_metric is None  # auto: validation loss if any, else training loss
    assert EarlyStopping().resolved_metric(False) is Metric.TrainingLoss
    assert EarlyStopping().with_mode("max").mode is Mode.Maximize


def test_gradient_clipping_builder_adds_replaces_and_removes():
    from neurodivergent.training.config import MODEL_DEFAULT

    c = TrainingConfig()
    assert c.gradient_clipping == MODEL_DEFAULT
    both = (c.with_gradient_clipping(GradientClipping.ByNorm(1.0))
            .with_gradient_clipping(GradientClipping.ByValue(-1.0, 1.0)))
    assert both.gradient_clipping == (GradientClipping.ByValue(-1.0, 1.0), GradientClipping.ByNorm(1.0))
    replaced = both.with_gradient_clipping(GradientClipping.ByNorm(0.5))
    assert replaced.gradient_clipping == (GradientClipping.ByValue(-1.0, 1.0), GradientClipping.ByNorm(0.5))
    assert both.with_gradient_clipping(None).gradient_clipping == ()
    assert both.with_gradient_clipping(MODEL_DEFAULT).gradient_clipping == MODEL_DEFAULT


def test_engine_components_round_trip():
    c = (TrainingConfig().with_optimizer(Optimizer.AdamW).with_learning_rate(None)
         .with_learning_rate_scheduler(LearningRateScheduler.cosine_with_warm_restarts().with_t_0(10).with_t_mult(2))
         .with_loss_function(LossFunction.MSE).with_gradient_clipping(GradientClipping.ByValue(-2.0, 2.0))
         .with_data_augmentation(DataAugmentation().with_jitter(0.05)).with_dropout(0.2).with_batch_norm(True)
         .with_sequence_length(50).with_teacher_forcing_ratio(0.5).with_warmup_steps(40)
         .with_attention_dropout(0.1).with_label_smoothing(0.1).with_l1_regularization(1e-5)
         .with_monitor(TrainingMonitor().with_metrics([Metric.MAE]).with_plot_interval(5))
         .with_callbacks([ReduceLROnPlateau(patience=4)]))
    back = TrainingConfig.from_dict(c.to_dict())
    assert back.to_dict() == c.to_dict()
    assert back.optimizer == Optimizer.AdamW() and back.data_augmentation.jitter == 0.05
    assert TrainingConfig().with_data_augmentation(True).data_augmentation == DataAugmentation()
    assert TrainingConfig().with_data_augmentation(False).data_augmentation is None
    # the old string losses still load
    old = {"loss_function": "huber", "huber_delta": 2.0, "learning_rate": 0.01}
    assert TrainingConfig.from_dict(old).resolved_loss() == LossFunction.Huber(
        __import__("neurodivergent").HuberConfig().with_delta(2.0))


def test_from_dict_in_a_fresh_process_decodes_every_component():
    """Nested loss / scheduler / optimizer / clipping configs decode without the caller importing
    their modules first (a saved model is loaded by a new process)."""
    import json
    import subprocess
    import sys

    from neurodivergent import (GradientClipping, LearningRateScheduler, LossFunction, Optimizer,
                                QuantileConfig, SGDConfig)

    c = (TrainingConfig().with_loss_function(LossFunction.Quantile(QuantileConfig().with_quantiles([0.2, 0.8])))
         .with_optimizer(Optimizer.SGD(SGDConfig().with_momentum(0.9)))
         .with_learning_rate_scheduler(LearningRateScheduler.cosine_annealing().with_t_max(5))
         .with_gradient_clipping(GradientClipping.ByNorm(2.0)))
    code = ("import json, sys; from neurodivergent.training.config import TrainingConfig; "
            "c = TrainingConfig.from_dict(json.loads(sys.argv[1])); print(json.dumps(c.to_dict(), sort_keys=True))")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(c.to_dict())], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(json.dumps(c.to_dict(), sort_keys=True))
