"""Searches over forecasting models on a small real dataset (the bundled air_passengers series): the
cross-validated objective, the best configuration, parallel trials and the multi-objective front."""
import numpy as np
import pytest

from neurodivergent import GRU, MLP, TrainingConfig, load_dataset
from neurodivergent.tuning import (BayesianOptimization, Direction, GridSearch, HyperparameterSpace,
                                   MultiObjectiveOptimization, RandomSearch)
from neurodivergent.validation.cross_validation import TimeSeriesCrossValidator

TC = TrainingConfig().with_max_steps(15).with_batch_size(16).with_seed(3)


@pytest.fixture(scope="module")
def air():
    return load_dataset("air_passengers")


def small(search, folds=2):
    return (search.with_horizon(12).with_input_size(24).with_cv_folds(folds).with_training_config(TC)
            .with_verbose(False))


def test_end_to_end_random_search_scores_by_cross_validation(air):
    space = (HyperparameterSpace().add_categorical("model_type", ["mlp", "gru"]).add_discrete("hidden_size", [8, 16])
             .add_continuous("learning_rate", 1e-3, 3e-2, log_scale=True))
    s = small(RandomSearch().with_parameter_space(space).with_n_trials(4).with_seed(1))
    best = s.fit(air)
    res = s.results
    assert len(res) == 4 and all(t.ok for t in res)
    # each trial's value is the mean MAE over TimeSeriesCrossValidator(n_splits=2, test_size=12) folds
    t = res.trials[0]
    cls = {"mlp": MLP, "gru": GRU}[t.params["model_type"]]
    model = cls(cls.config_class().with_input_size(24).with_horizon(12).with_hidden_size(t.params["hidden_size"]))
    cv = TimeSeriesCrossValidator(n_splits=2, test_size=12, verbose=False)
    ref = cv.cross_validate(model, air, config=TC.with_learning_rate(t.params["learning_rate"]).with_verbose(False),
                            metrics=["mae"])
    assert t.value == pytest.approx(ref.mean("mae"), rel=1e-12)
    assert t.extra["mae_std"] == pytest.approx(ref.std("mae"), rel=1e-12)
    assert t.extra["model_size"] > 0 and t.extra["training_time"] > 0
    # the best configuration is the lowest score, and it builds a working model
    assert best.score == min(x.value for x in res) and best.params == res.best_params
    assert best.model_class is cls or best.model_type.lower() == best.params["model_type"]
    assert best.model_config.hidden_size == best.params["hidden_size"]
    assert best.training_config.learning_rate == best.params["learning_rate"]
    assert best.training_config.max_steps == 15
    model = best.build_model()
    model.fit_with_config(air, best.training_config)
    fc = model.predict(air)
    assert fc.values(model.alias).shape == (1, 12) and np.all(np.isfinite(fc.values(model.alias)))
    df = res.to_pandas()
    assert list(df.columns[:5]) == ["trial", "model_type", "hidden_size", "learning_rate", "mae"]


def test_grid_search_fit_with_another_metric(air):
    space = HyperparameterSpace().add_discrete("hidden_size", [4, 16]).add_discrete("num_layers", [1, 2])
    s = small(GridSearch().with_parameter_space(space).with_scoring_metric("smape"), folds=1)
    best = s.fit(air)
    assert [t.params for t in s.results] == list(space.grid())
    assert s.results.objective_names == ["smape"] and best.score == s.results.best_value
    assert best.model_type == "MLP" and best.model_config.num_layers == best.params["num_layers"]


def test_forecasting_trials_are_the_same_with_two_workers(air):
    space = HyperparameterSpace().add_discrete("hidden_size", [4, 8, 16]).add_continuous("dropout", 0.0, 0.3)
    base = small(BayesianOptimization().with_parameter_space(space).with_n_initial_points(3).with_n_calls(5)
                 .with_batch_size(2).with_seed(4).with_threads_per_trial(1), folds=1)
    one = base
    one.fit(air)
    two = base.with_n_jobs(2)
    two.fit(air)
    assert [t.params for t in one.results] == [t.params for t in two.results]
    assert [t.value for t in one.results] == [t.value for t in two.results]


def test_unknown_parameter_fails_before_any_training(air):
    s = small(RandomSearch().with_parameter_space(HyperparameterSpace().add_discrete("hiden_size", [8])))
    with pytest.raises(ValueError, match="'hiden_size'"):
        s.fit(air)
    assert s.results is None
    with pytest.raises(TypeError, match="TimeSeriesDataFrame"):
        s.fit([1, 2, 3])


def test_multi_objective_forecasting_front(air):
    space = HyperparameterSpace().add_discrete("hidden_size", [2, 4, 8, 16, 32, 64])
    mo = small(MultiObjectiveOptimization().with_parameter_space(space)
               .add_objective("accuracy", weight=0.7, direction=Direction.Maximize)
               .add_objective("model_size", weight=0.3, direction=Direction.Minimize)
               .with_population_size(4).with_generations(2).with_seed(0), folds=1)
    front = mo.optimize(air)
    assert len(front) >= 1 and front.objectives == ["accuracy", "model_size"]
    sizes = [t.value[1] for t in front]
    acc = [t.value[0] for t in front]
    # on a front sorted by accuracy, a more accurate model is never also smaller
    order = np.argsort(acc)
    assert all(np.diff(np.array(sizes)[order]) >= 0)
    for t in front:
        assert t.value[0] == pytest.approx(-t.extra["mae"])  # accuracy = minus the CV error
    best = mo.fit(air)
    assert best.score == pytest.approx(-mo.pareto_front.best().value[0])
    with pytest.raises(ValueError, match="unknown forecasting objective"):
        small(MultiObjectiveOptimization().with_parameter_space(space).add_objective("latency")).optimize(air)


def test_a_custom_cross_validator_scores_the_trials(air):
    cv = TimeSeriesCrossValidator(n_splits=2, test_size=6, gap_size=2, verbose=False)
    space = HyperparameterSpace().add_discrete("hidden_size", [4, 8])
    s = small(GridSearch().with_parameter_space(space).with_cross_validator(cv))
    s.fit(air)
    model = MLP(MLP.config_class().with_input_size(24).with_horizon(12).with_hidden_size(4))
    ref = cv.cross_validate(model, air, config=TC.with_verbose(False), metrics=["mae"])
    assert s.results[0].value == pytest.approx(ref.mean("mae"), rel=1e-12)
    with pytest.raises(TypeError, match="cross_validate"):
        GridSearch().with_cross_validator(object())


def test_fit_async_is_the_awaitable_twin(air):
    import asyncio

    space = HyperparameterSpace().add_discrete("hidden_size", [4, 8])
    s = small(GridSearch().with_parameter_space(space), folds=1)
    best = asyncio.run(s.fit_async(air))
    again = small(GridSearch().with_parameter_space(space), folds=1).fit(air)
    assert best.params == again.params and best.score == again.score
