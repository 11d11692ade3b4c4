import subprocess
import sys

import numpy as np
import pytest

import neurodivergent
from neurodivergent import TimeSeriesDataFrame, load_dataset
from neurodivergent.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert neurodivergent.__version__ in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for opt in ("--data", "--horizon", "--input-size", "--model", "--max-epochs", "--output"):
        assert opt in out


def test_datasets_lists_bundled(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "air_passengers" in out and "us_macro_quarterly" in out


def test_train_on_csv_prints_metrics_and_writes_forecast(tmp_path, capsys):
    src = tmp_path / "macro.csv"
    load_dataset("us_macro_quarterly").to_csv(str(src))
    out_csv = tmp_path / "fc.csv"
    model_file = tmp_path / "m.safetensors"
    rc = main(["train", "--data", str(src), "--horizon", "4", "--input-size", "8", "--model", "mlp",
               "--max-epochs", "3", "--hidden-size", "32", "--output", str(out_csv),
               "--save-model", str(model_file), "-q"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "MAE" in out and "sMAPE" in out and "MASE" in out and "SeasonalNaive(m=4)" in out
    fc = TimeSeriesDataFrame.from_csv(str(out_csv), target_col="MLP")
    assert fc.n_series == 10 and set(fc.lengths) == {4}

    # predict with the saved model reproduces the forecast of the trained model on the same data
    full = load_dataset("us_macro_quarterly")
    train, _ = full.split_last(4)
    train_csv = tmp_path / "train.csv"
    train.to_csv(str(train_csv))
    out2 = tmp_path / "fc2.csv"
    assert main(["predict", "--model-file", str(model_file), "--data", str(train_csv), "--output", str(out2)]) == 0
    fc2 = TimeSeriesDataFrame.from_csv(str(out2), target_col="MLP")
    np.testing.assert_allclose(fc2.y, fc.y, rtol=1e-6)


def test_bad_input_gives_a_clear_error_and_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("unique_id,ds,y\na,1,1.0\na,2,oops\n")
    assert main(["train", "--data", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "oops" in err
    assert main(["train", "--data", str(tmp_path / "missing.csv"), "-q"]) == 2
    assert main(["train", "--dataset", "nope", "-q"]) == 2
    assert "air_passengers" in capsys.readouterr().err


def test_console_script_module_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "neurodivergent", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and neurodivergent.__version__ in r.stdout
