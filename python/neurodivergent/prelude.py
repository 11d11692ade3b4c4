"""What the guide's ``use neuro_divergent::prelude::*`` brings in: ``from neurodivergent.prelude import *``."""
from . import get_num_threads, set_num_threads
from .data.datasets import list_datasets, load_dataset
from .data.forecast import ForecastFrame
from .data.frame import TimeSeriesDataFrame
from .models.base import load_model
from .models.mlp import MLP, MLPConfig
from .training.config import EarlyStopping, TrainingConfig
from .training.logs import TrainingLogs

__all__ = [
    "TimeSeriesDataFrame", "ForecastFrame", "load_dataset", "list_datasets",
    "MLP", "MLPConfig", "load_model",
    "TrainingConfig", "EarlyStopping", "TrainingLogs",
    "set_num_threads", "get_num_threads",
]
