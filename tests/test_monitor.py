"""TrainingMonitor: validated config, metrics recorded, logging every N epochs (never print), PNG plots
written atomically with matplotlib, and a clear ImportError without it."""
import logging
import sys

import numpy as np
import pytest

from neurodivergent import MLP, MLPConfig, TrainingConfig, load_dataset
from neurodivergent.training import Metric, TrainingMonitor


@pytest.fixture(scope="module")
def data():
    return load_dataset("us_macro_quarterly")


def fit(data, monitor, **kw):
    c = (TrainingConfig().with_max_epochs(4).with_batch_size(128).with_seed(1).with_verbose(False)
         .with_monitor(monitor))
    for k, v in kw.items():
        c = getattr(c, f"with_{k}")(v)
    model = MLP(MLPConfig().with_input_size(12).with_horizon(4).with_hidden_size(16))
    return model.fit_with_config(data, c)


def test_monitor_config_validation():
    m = TrainingMonitor()
    assert m.metrics == (Metric.TrainingLoss, Metric.ValidationLoss, Metric.LearningRate)
    assert TrainingMonitor().with_metrics(["mae", "MAPE"]).metrics == (Metric.MAE, Metric.MAPE)
    with pytest.raises(ValueError, match="metrics"):
        m.with_metrics([Metric.MAE, "accuracy"])
    with pytest.raises(ValueError, match="twice"):
        m.with_metrics([Metric.MAE, Metric.MAE])
    with pytest.raises(TypeError, match="metrics"):
        m.with_metrics(Metric.MAE)
    with pytest.raises(ValueError, match="log_interval"):
        m.with_log_interval(0)
    with pytest.raises(ValueError, match="plot_interval"):
        m.with_plot_interval(-1)
    with pytest.raises(TypeError, match="save_plots"):
        m.with_save_plots("yes")
    assert TrainingMonitor.from_dict(m.with_metrics(list(Metric)).to_dict()) == m.with_metrics(list(Metric))
    with pytest.raises(TypeError, match="monitor"):
        TrainingConfig().with_monitor("loud")


def test_metrics_are_recorded_and_logged_every_n_epochs(data, caplog, capsys):
    mon = (TrainingMonitor().with_metrics([Metric.TrainingLoss, Metric.ValidationLoss, Metric.MAE, Metric.MAPE,
                                           Metric.LearningRate, Metric.EpochTime, Metric.GradientNorm])
           .with_log_interval(2))
    with caplog.at_level(logging.INFO, logger="neurodivergent"):
        logs = fit(data, mon, validation_split=0.2)
    for k in ("training_loss", "validation_loss", "mae", "mape", "learning_rate", "epoch_time", "gradient_norm"):
        assert len(logs.history[k]) == 4, k
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert len(lines) == 2 and "epoch 2 " in lines[0] and "epoch 4 " in lines[1]
    assert "mae=" in lines[0] and "validation_loss=" in lines[0]
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_validation_metrics_without_a_validation_part_warn(data, caplog):
    with caplog.at_level(logging.WARNING, logger="neurodivergent"):
        logs = fit(data, TrainingMonitor().with_metrics([Metric.MAE]))
    assert "validation part" in caplog.text and "mae" not in logs.history


def test_save_plots_without_matplotlib_is_a_clear_import_error(data, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    mon = TrainingMonitor().with_save_plots(True).with_plot_directory(str(tmp_path / "plots"))
    with pytest.raises(ImportError, match=r"neurodivergent\[plot\]"):
        fit(data, mon)
    assert not (tmp_path / "plots").exists()


def test_plots_are_written(data, tmp_path):
    pytest.importorskip("matplotlib")
    d = tmp_path / "plots"
    mon = (TrainingMonitor().with_metrics([Metric.TrainingLoss, Metric.ValidationLoss, Metric.MAE,
                                           Metric.LearningRate])
           .with_plot_interval(2).with_save_plots(True).with_plot_directory(str(d)))
    fit(data, mon, validation_split=0.2)
    names = sorted(p.name for p in d.iterdir())
    assert names == ["loss.png", "metrics.png"]  # no temporary files left behind
    for n in names:
        assert (d / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_interval_without_save_plots_writes_nothing(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit(data, TrainingMonitor().with_plot_interval(1))
    assert not (tmp_path / "training_plots").exists()
    assert np.isfinite(0)
