"""neurodivergent: neural time-series forecasting with hand-written C++ kernels and a numpy-only runtime.

>>> from neurodivergent.prelude import *
>>> data = load_dataset("air_passengers")                                  # doctest: +SKIP
>>> model = MLP(MLPConfig().with_input_size(24).with_hidden_size(128).with_horizon(12))
>>> model.fit(data)                                                        # doctest: +SKIP
>>> forecast = model.predict(data)   # unique_id, ds, MLP                  # doctest: +SKIP
"""
from __future__ import annotations

import logging as _logging

from ._version import __version__
from ._backend import get_num_threads, set_num_threads

_logging.getLogger("neurodivergent").addHandler(_logging.NullHandler())

_LAZY = {
    # data
    "TimeSeriesDataFrame": ("data.frame", "TimeSeriesDataFrame"),
    "ForecastFrame": ("data.forecast", "ForecastFrame"),
    "load_dataset": ("data.datasets", "load_dataset"),
    "list_datasets": ("data.datasets", "list_datasets"),
    # models
    "MLP": ("models.mlp", "MLP"),
    "MLPConfig": ("models.mlp", "MLPConfig"),
    "LSTM": ("models.lstm", "LSTM"),
    "LSTMConfig": ("models.lstm", "LSTMConfig"),
    "GRU": ("models.gru", "GRU"),
    "GRUConfig": ("models.gru", "GRUConfig"),
    "Transformer": ("models.transformer", "Transformer"),
    "TransformerConfig": ("models.transformer", "TransformerConfig"),
    "DeepAR": ("models.deepar", "DeepAR"),
    "DeepARConfig": ("models.deepar", "DeepARConfig"),
    "load_model": ("models.base", "load_model"),
    "load_checkpoint": ("models.base", "load_checkpoint"),
    # training
    "TrainingConfig": ("training.config", "TrainingConfig"),
    "EarlyStopping": ("training.config", "EarlyStopping"),
    "TrainingLogs": ("training.logs", "TrainingLogs"),
    "Metric": ("training.config", "Metric"),
    "Mode": ("training.config", "Mode"),
    "DataAugmentation": ("training.augmentation", "DataAugmentation"),
    "Optimizer": ("training.optimizers", "Optimizer"),
    "AdamConfig": ("training.optimizers", "AdamConfig"),
    "AdamWConfig": ("training.optimizers", "AdamWConfig"),
    "SGDConfig": ("training.optimizers", "SGDConfig"),
    "RMSpropConfig": ("training.optimizers", "RMSpropConfig"),
    "LearningRateScheduler": ("training.schedulers", "LearningRateScheduler"),
    "LossFunction": ("training.losses", "LossFunction"),
    "Likelihood": ("training.likelihood", "Likelihood"),
    "HuberConfig": ("training.losses", "HuberConfig"),
    "QuantileConfig": ("training.losses", "QuantileConfig"),
    "WeightedConfig": ("training.losses", "WeightedConfig"),
    "GradientClipping": ("training.regularization", "GradientClipping"),
    "Callback": ("training.callbacks", "Callback"),
    "CallbackResult": ("training.callbacks", "CallbackResult"),
    "ReduceLROnPlateau": ("training.callbacks", "ReduceLROnPlateau"),
    "TrainingMonitor": ("training.monitor", "TrainingMonitor"),
    "TrainingVisualizer": ("training.visualizer", "TrainingVisualizer"),
    "FaultTolerantTraining": ("training.fault_tolerance", "FaultTolerantTraining"),
    "TrainingFailedError": ("training.fault_tolerance", "TrainingFailedError"),
    # checkpointing
    "CheckpointConfig": ("checkpointing.config", "CheckpointConfig"),
    "CheckpointStrategy": ("checkpointing.config", "CheckpointStrategy"),
    "SaveFrequency": ("checkpointing.config", "SaveFrequency"),
    # metrics
    "metrics": ("validation.metrics", None),
    # hyperparameter search
    "HyperparameterSpace": ("tuning.space", "HyperparameterSpace"),
    "GridSearch": ("tuning.grid", "GridSearch"),
    "RandomSearch": ("tuning.random_search", "RandomSearch"),
    "BayesianOptimization": ("tuning.bayes", "BayesianOptimization"),
    "MultiObjectiveOptimization": ("tuning.nsga2", "MultiObjectiveOptimization"),
    "AcquisitionFunction": ("tuning.acquisition", "AcquisitionFunction"),
    "Kernel": ("tuning.gp", "Kernel"),
    "Direction": ("tuning.nsga2", "Direction"),
    "Algorithm": ("tuning.nsga2", "Algorithm"),
}

__all__ = ["__version__", "get_num_threads", "set_num_threads", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        m = importlib.import_module(f".{mod}", __name__)
        value = m if attr is None else getattr(m, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurodivergent' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
