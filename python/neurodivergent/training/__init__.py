"""The training engine: configuration, optimizers, schedules, losses, clipping and penalties, early
stopping, callbacks, monitoring and the loop (see ``docs/training-guide.md``).

Names are imported lazily (``from neurodivergent.training import Optimizer`` loads only what it needs).
"""
from __future__ import annotations

import importlib

_NAMES = {
    # configuration
    "TrainingConfig": "config", "EarlyStopping": "config", "Metric": "config", "Mode": "config",
    "DataAugmentation": "augmentation",
    # optimizers
    "Optimizer": "optimizers", "OptimizerSpec": "optimizers", "AdamConfig": "optimizers",
    "AdamWConfig": "optimizers", "SGDConfig": "optimizers", "RMSpropConfig": "optimizers",
    # schedules
    "LearningRateScheduler": "schedulers", "SchedulerType": "schedulers",
    # losses
    "LossFunction": "losses", "HuberConfig": "losses", "QuantileConfig": "losses", "WeightedConfig": "losses",
    # clipping and penalties
    "GradientClipping": "regularization",
    # callbacks and monitoring
    "Callback": "callbacks", "CallbackResult": "callbacks", "ReduceLROnPlateau": "callbacks",
    "LambdaCallback": "callbacks", "TrainingMonitor": "monitor", "TrainingVisualizer": "visualizer", "TrainingLogs": "logs",
    "TrainingDivergedError": "trainer",
    # fault tolerance
    "FaultTolerantTraining": "fault_tolerance", "TrainingFailedError": "fault_tolerance",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurodivergent.training' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
