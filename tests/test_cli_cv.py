"""The `neurodivergent cv` subcommand."""
import csv

import numpy as np
import pytest

from neurodivergent import load_dataset
from neurodivergent.cli import main
from neurodivergent.models.mlp import MLP, MLPConfig
from neurodivergent.training.config import TrainingConfig
from neurodivergent.validation.cross_validation import TimeSeriesCrossValidator


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cv_help_lists_the_fold_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["cv", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--n-splits", "--test-size", "--gap-size", "--purge-size", "--sliding", "--alignment",
                "--metrics", "--output", "--predictions"):
        assert opt in out


def test_cv_on_csv_prints_folds_and_writes_the_tables(tmp_path, capsys):
    src = tmp_path / "macro.csv"
    load_dataset("us_macro_quarterly").to_csv(str(src))
    folds_csv, preds_csv = tmp_path / "folds.csv", tmp_path / "preds.csv"
    rc = main(["cv", "--data", str(src), "--horizon", "4", "--input-size", "8", "--hidden-size", "8",
               "--num-layers", "1", "--max-epochs", "2", "--n-splits", "3", "--test-size", "6", "--gap-size", "1",
               "--purge-size", "2", "--metrics", "mae,smape", "--output", str(folds_csv),
               "--predictions", str(preds_csv), "-q"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "3 folds, test_size=6, gap_size=1, purge_size=2, expanding window" in out
    assert "mean +- std" in out and "smape" in out and "mase" not in out
    folds = _read(folds_csv)
    assert [r["fold"] for r in folds] == ["0", "1", "2"]
    # 203 quarters: fold i tests 6 quarters starting at 203 - 6 * (3 - i); training ends 3 quarters earlier
    assert [int(r["train_rows"]) for r in folds] == [10 * (203 - 6 * (3 - i) - 3) for i in range(3)]
    assert all(int(r["test_rows"]) == 60 for r in folds)
    preds = _read(preds_csv)
    assert len(preds) == 180 and list(preds[0]) == ["fold", "unique_id", "ds", "cutoff", "y", "MLP"]
    # the printed scores are those of the library call with the same settings
    data = load_dataset("us_macro_quarterly")
    model = MLP(MLPConfig().with_input_size(8).with_horizon(4).with_hidden_size(8).with_num_layers(1))
    tc = (TrainingConfig().with_seed(0).with_verbose(False).with_max_epochs(2).with_max_steps(1000)
          .with_batch_size(32))
    res = TimeSeriesCrossValidator(n_splits=3, test_size=6, gap_size=1, purge_size=2, verbose=False,
                                   scoring_metrics=["mae", "smape"], season_length=4).cross_validate(model, data, tc)
    np.testing.assert_allclose([float(r["mae"]) for r in folds], res.scores("mae"), rtol=1e-12)


def test_cv_fraction_sliding_and_end_alignment(tmp_path, capsys):
    rc = main(["cv", "--dataset", "air_passengers", "--horizon", "6", "--input-size", "12", "--hidden-size", "8",
               "--max-epochs", "1", "--n-splits", "4", "--test-size", "0.25", "--sliding", "--alignment", "end",
               "--output", str(tmp_path / "f.csv"), "-q"])
    assert rc == 0
    folds = _read(tmp_path / "f.csv")
    # floor(0.25 * 144 / 4) = 9 test steps per fold; sliding: every fold trains on 144 - 36 = 108 steps
    assert [int(r["test_rows"]) for r in folds] == [9] * 4 and {int(r["train_rows"]) for r in folds} == {108}
    assert "sliding window" in capsys.readouterr().out


def test_cv_errors_exit_with_code_2(tmp_path, capsys):
    assert main(["cv", "--dataset", "air_passengers", "--horizon", "12", "--n-splits", "20", "--test-size", "12",
                 "-q"]) == 2
    assert "too many splits" in capsys.readouterr().err
    assert main(["cv", "--dataset", "air_passengers", "--metrics", "mae,r2", "-q"]) == 2
    assert "unknown cross-validation metric" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cv", "--test-size", "1.5"])
    assert "fractional test size" in capsys.readouterr().err
