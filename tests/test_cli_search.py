"""`neurodivergent search`: a space file in, the results table (and the best configuration) out."""
import csv
import json

import pytest

from neurodivergent import load_dataset
from neurodivergent.cli import main

SPACE = {"parameters": [
    {"name": "model_type", "type": "categorical", "values": ["mlp", "gru"]},
    {"name": "hidden_size", "type": "discrete", "values": [4, 8]},
    {"name": "learning_rate", "type": "continuous", "low": 1e-3, "high": 1e-2, "log_scale": True}]}

TOML = """[[parameters]]
name = "hidden_size"
type = "discrete"
values = [4, 8]

[[parameters]]
name = "num_layers"
type = "discrete"
values = [1, 2]
"""


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_random_search_from_a_json_space(tmp_path, capsys):
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    data = tmp_path / "air.csv"
    load_dataset("air_passengers").to_csv(str(data))
    out, best = tmp_path / "res.csv", tmp_path / "best.json"
    rc = main(["search", "--space", str(space), "--data", str(data), "--method", "random", "--n-trials", "3",
               "--cv-folds", "2", "--horizon", "12", "--max-steps", "8", "--seed", "2", "--output", str(out),
               "--best-config", str(best), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "RandomSearch over model_type, hidden_size, learning_rate" in text and "best: mae" in text
    rows = read(out)
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert {"trial", "model_type", "hidden_size", "learning_rate", "mae", "mae_std"} <= set(rows[0])
    cfg = json.loads(best.read_text())
    assert cfg["score"] == min(float(r["mae"]) for r in rows)
    assert cfg["model_config"]["horizon"] == 12 and cfg["training_config"]["max_steps"] == 8
    assert cfg["model_type"].lower() == cfg["params"]["model_type"]


@pytest.mark.parametrize("method, extra, n", [("grid", [], 4), ("bayes", ["--n-calls", "5", "--n-initial-points", "3"], 4)])
def test_grid_and_bayes_from_a_toml_space(tmp_path, capsys, method, extra, n):
    space = tmp_path / "space.toml"
    space.write_text(TOML)
    out = tmp_path / "res.csv"
    rc = main(["search", "--space", str(space), "--dataset", "air_passengers", "--method", method, *extra,
               "--cv-folds", "1", "--horizon", "12", "--max-steps", "5", "--output", str(out), "-q"])
    assert rc == 0
    rows = read(out)
    # the Bayesian search never repeats a point; the space has only 4
    assert len(rows) == n and len({(r["hidden_size"], r["num_layers"]) for r in rows}) == 4


def test_multi_objective_search_prints_the_front(tmp_path, capsys):
    space = tmp_path / "space.toml"
    space.write_text(TOML)
    rc = main(["search", "--space", str(space), "--dataset", "air_passengers", "--method", "nsga2",
               "--objectives", "accuracy:max:0.8,model_size:min:0.2", "--population-size", "4", "--generations", "1",
               "--cv-folds", "1", "--horizon", "12", "--max-steps", "5", "--output", str(tmp_path / "r.csv"), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Pareto front:" in text and "'model_size'" in text


@pytest.mark.parametrize("args, message", [
    (["--space", "missing.json"], "missing.json"),
    (["--space", "{space}", "--metric", "r2"], "scoring_metric"),
    (["--space", "{bad}"], "hiden_size"),
    (["--space", "{space}", "--method", "nsga2", "--objectives", "accuracy"], "name:min|max"),
])
def test_errors_are_reported_not_raised(tmp_path, capsys, args, message):
    (tmp_path / "space.toml").write_text(TOML)
    (tmp_path / "bad.json").write_text(json.dumps({"parameters": [{"name": "hiden_size", "type": "discrete",
                                                                   "values": [4]}]}))
    args = [a.format(space=tmp_path / "space.toml", bad=tmp_path / "bad.json") for a in args]
    rc = main(["search", *args, "--dataset", "air_passengers", "--horizon", "12", "--max-steps", "2",
               "--output", str(tmp_path / "r.csv"), "-q"])
    assert rc == 2
    assert message in capsys.readouterr().err
