import os

import numpy as np
import pytest

from neurodivergent import MLP, MLPConfig, TrainingConfig, TrainingVisualizer, load_dataset


def _fit(tmp_path, vis):
    pytest.importorskip("matplotlib")
    data = load_dataset("us_macro_quarterly")
    model = MLP(MLPConfig().with_input_size(8).with_horizon(4).with_hidden_size(16))
    tc = TrainingConfig().with_max_epochs(3).with_validation_split(0.2).with_visualizer(vis).with_verbose(False)
    return model.fit_with_config(data, tc)


def _png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_visualizer_writes_curves_dashboard_and_architecture(tmp_path):
    out = tmp_path / "plots"
    vis = (TrainingVisualizer().with_live_plotting(True).with_metrics_dashboard(True)
           .with_model_architecture_plot(True).with_save_directory(str(out)))
    _fit(tmp_path, vis)
    files = sorted(os.listdir(out))
    assert files == ["architecture.png", "curves.png", "dashboard.png"]
    assert all(_png(out / f) for f in files)


def test_visualizer_options_select_files_and_plotting_leaves_training_unchanged(tmp_path):
    out = tmp_path / "p"
    logs = _fit(tmp_path, TrainingVisualizer().with_metrics_dashboard(False).with_save_directory(str(out)))
    assert sorted(os.listdir(out)) == ["curves.png"]
    data = load_dataset("us_macro_quarterly")
    plain = MLP(MLPConfig().with_input_size(8).with_horizon(4).with_hidden_size(16))
    ref = plain.fit_with_config(data, TrainingConfig().with_max_epochs(3).with_validation_split(0.2).with_verbose(False))
    assert np.array_equal(ref.step_losses, logs.step_losses)


def test_visualizer_validation():
    with pytest.raises(TypeError, match="live_plotting"):
        TrainingVisualizer().with_live_plotting("yes")
    with pytest.raises(TypeError, match="save_directory"):
        TrainingVisualizer().with_save_directory("")
    with pytest.raises(TypeError, match="visualizer"):
        TrainingConfig().with_visualizer("plots")
