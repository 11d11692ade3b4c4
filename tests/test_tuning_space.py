"""The search space: building, validation, grids, sampling, unit codes, files; parameter routing."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodivergent.tuning import HyperparameterSpace
from neurodivergent.tuning.forecast import build_configs, check_space


def guide_space():
    return (HyperparameterSpace()
            .add_categorical("model_type", ["MLP", "LSTM", "GRU"])
            .add_discrete("hidden_size", [64, 128, 256, 512])
            .add_discrete("num_layers", [1, 2, 3, 4])
            .add_continuous("learning_rate", 1e-5, 1e-1, log_scale=True)
            .add_continuous("dropout", 0.0, 0.5))


def test_builders_are_immutable_and_keep_order():
    a = HyperparameterSpace()
    b = a.add_discrete("hidden_size", [32, 16])
    assert len(a) == 0 and b.names == ["hidden_size"]
    assert b["hidden_size"].values == (16, 32)  # sorted
    s = guide_space()
    assert s.names == ["model_type", "hidden_size", "num_layers", "learning_rate", "dropout"]
    assert s.n_features == 3 + 1 + 1 + 1 + 1


@pytest.mark.parametrize("make, match", [
    (lambda: HyperparameterSpace().add_continuous("lr", 1e-3, 1e-4), "low < high"),
    (lambda: HyperparameterSpace().add_continuous("lr", 0.0, 1.0, log_scale=True), "log_scale needs low > 0"),
    (lambda: HyperparameterSpace().add_continuous("lr", 0.0, float("inf")), "finite"),
    (lambda: HyperparameterSpace().add_discrete("h", []), "at least one value"),
    (lambda: HyperparameterSpace().add_discrete("h", [1, 1]), "duplicate"),
    (lambda: HyperparameterSpace().add_discrete("h", 5), "list"),
    (lambda: HyperparameterSpace().add_discrete("h", ["a"]), "finite numbers"),
    (lambda: HyperparameterSpace().add_categorical("m", "mlp"), "list"),
    (lambda: HyperparameterSpace().add_categorical("m", [[1]]), "str, bool or finite numbers"),
    (lambda: HyperparameterSpace().add_discrete("h", [1]).add_continuous("h", 0, 1), "defined twice"),
    (lambda: HyperparameterSpace().add_discrete("", [1]), "non-empty str"),
])
def test_bad_dimensions_name_the_problem(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_grid_resolution_order_and_log_spacing():
    s = (HyperparameterSpace().add_categorical("m", ["a", "b"])
         .add_continuous("lr", 1e-4, 1e-2, log_scale=True).add_continuous("p", 0.0, 0.5))
    g = list(s.grid(3))
    assert len(g) == s.grid_size(3) == 2 * 3 * 3
    assert g[0] == {"m": "a", "lr": 1e-4, "p": 0.0}
    assert g[1]["p"] == 0.25 and g[2]["p"] == 0.5  # last dimension varies fastest
    assert sorted({p["lr"] for p in g}) == pytest.approx([1e-4, 1e-3, 1e-2], rel=1e-12)
    assert [p["m"] for p in g[:9]] == ["a"] * 9
    assert list(s.grid(1))[0]["lr"] == pytest.approx(1e-3)  # midpoint in log space
    with pytest.raises(ValueError, match="resolution"):
        list(s.grid(0))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), low=st.floats(1e-6, 10.0), width=st.floats(1e-3, 1e3))
def test_samples_stay_inside_and_round_trip(seed, low, width):
    s = (HyperparameterSpace().add_continuous("a", low, low + width)
         .add_continuous("b", low, low + width, log_scale=True)
         .add_discrete("c", [3, 1, 7]).add_categorical("d", ["x", 2, True]))
    rng = np.random.default_rng(seed)
    for _ in range(5):
        p = s.sample(rng)
        s.validate(p)
        assert low <= p["a"] <= low + width and low <= p["b"] <= low + width
        assert p["c"] in (1, 3, 7) and p["d"] in ("x", 2, True)
        u = s.to_unit(p)
        assert np.all((u >= 0) & (u <= 1))
        back = s.from_unit(u)
        assert back["c"] == p["c"] and back["d"] == p["d"]
        assert back["a"] == pytest.approx(p["a"], rel=1e-9, abs=1e-9)
        assert back["b"] == pytest.approx(p["b"], rel=1e-9)
        x = s.encode(p)
        assert x.shape == (s.n_features,) and x[3:].sum() == 1.0  # one-hot categorical
        dec = s.decode(x)
        assert dec["c"] == p["c"] and dec["d"] == p["d"]


def test_log_scale_sampling_is_uniform_in_log_space():
    s = HyperparameterSpace().add_continuous("lr", 1e-5, 1e-1, log_scale=True)
    rng = np.random.default_rng(0)
    x = np.log10([s.sample(rng)["lr"] for _ in range(4000)])
    assert abs(np.mean(x < -3) - 0.5) < 0.03  # half the mass below the log midpoint 1e-3
    assert abs(np.mean(x < -4) - 0.25) < 0.03


def test_validate_rejects_points_outside_the_space():
    s = guide_space()
    p = s.sample(np.random.default_rng(1))
    s.validate(p)
    with pytest.raises(ValueError, match="missing"):
        s.validate({k: v for k, v in p.items() if k != "dropout"})
    with pytest.raises(ValueError, match="outside"):
        s.validate({**p, "dropout": 0.9})
    with pytest.raises(ValueError, match="not one of"):
        s.validate({**p, "hidden_size": 65})


def test_dict_json_and_toml_round_trip(tmp_path):
    s = guide_space()
    assert HyperparameterSpace.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    (tmp_path / "s.json").write_text(json.dumps(s.to_dict()))
    assert HyperparameterSpace.from_file(str(tmp_path / "s.json")) == s
    (tmp_path / "s.toml").write_text(
        '[[parameters]]\nname = "model_type"\ntype = "categorical"\nvalues = ["MLP", "LSTM", "GRU"]\n'
        '[[parameters]]\nname = "hidden_size"\ntype = "discrete"\nvalues = [64, 128, 256, 512]\n'
        '[[parameters]]\nname = "num_layers"\ntype = "discrete"\nvalues = [1, 2, 3, 4]\n'
        '[[parameters]]\nname = "learning_rate"\ntype = "continuous"\nlow = 1e-5\nhigh = 1e-1\nlog_scale = true\n'
        '[[parameters]]\nname = "dropout"\ntype = "continuous"\nlow = 0.0\nhigh = 0.5\n')
    assert HyperparameterSpace.from_file(str(tmp_path / "s.toml")) == s


@pytest.mark.parametrize("doc, match", [
    ({"params": []}, "list 'parameters'"),
    ({"parameters": [{"name": "a", "type": "float", "low": 0, "high": 1}]}, "type must be"),
    ({"parameters": [{"name": "a", "type": "continuous", "low": 0, "high": 1, "step": 2}]}, "unknown keys"),
    ({"parameters": [{"name": "a", "type": "continuous", "low": 1, "high": 0}]}, "parameters\\[0\\]"),
])
def test_bad_space_files(doc, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        HyperparameterSpace.from_dict(doc)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        HyperparameterSpace.from_file(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match=".json or .toml"):
        HyperparameterSpace.from_file(str(tmp_path / "space.yaml"))


# ------------------------------------------------------------------ names -> model / training configs
def test_parameters_go_to_the_right_config():
    from neurodivergent import GRU, MLP, TrainingConfig

    params = {"model_type": "GRU", "hidden_size": 32, "num_layers": 2, "learning_rate": 3e-3,
              "dropout": 0.1, "batch_size": 16, "decoder_layers": 0}
    cls, m, t = build_configs(params, horizon=6, input_size=12, training_config=TrainingConfig())
    assert cls is GRU
    assert (m.hidden_size, m.num_layers, m.dropout, m.decoder_layers, m.horizon, m.input_size) == (32, 2, 0.1, 0, 6, 12)
    assert (t.learning_rate, t.batch_size, t.dropout) == (3e-3, 16, None)
    # explicit sides; a float for an int field is rounded
    cls, m, t = build_configs({"training.dropout": 0.2, "hidden_size": 31.6, "max_steps": 9.2},
                              horizon=6, input_size=12, training_config=None, default_model="mlp")
    assert cls is MLP and m.dropout == 0.0 and t.dropout == 0.2 and m.hidden_size == 32 and t.max_steps == 9


def test_unknown_names_and_values_fail_before_the_search():
    from neurodivergent import TrainingConfig

    tc = TrainingConfig()
    with pytest.raises(ValueError, match="'hiden_size'"):
        check_space(HyperparameterSpace().add_discrete("hiden_size", [8]), horizon=4, input_size=8,
                    training_config=tc, default_model="mlp")
    with pytest.raises(ValueError, match="unknown model 'Prophet'"):
        check_space(HyperparameterSpace().add_categorical("model_type", ["mlp", "Prophet"]), horizon=4,
                    input_size=8, training_config=tc, default_model="mlp")
    with pytest.raises(ValueError, match="'dropout' = 1.0"):
        check_space(HyperparameterSpace().add_continuous("dropout", 0.0, 1.0).add_categorical("model_type", ["lstm"]),
                    horizon=4, input_size=8, training_config=tc, default_model="mlp")
    # a field only the LSTM/GRU configs have cannot be searched together with the MLP
    with pytest.raises(ValueError, match="'decoder_layers'.*MLPConfig"):
        check_space(HyperparameterSpace().add_categorical("model_type", ["gru", "mlp"]).add_discrete("decoder_layers", [0, 1]),
                    horizon=4, input_size=8, training_config=tc, default_model="mlp")
