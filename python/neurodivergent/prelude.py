"""What the guide's ``use neuro_divergent::prelude::*`` brings in: ``from neurodivergent.prelude import *``."""
from . import get_num_threads, set_num_threads
from .data.datasets import list_datasets, load_dataset
from .data.forecast import ForecastFrame
from .data.frame import TimeSeriesDataFrame
from .checkpointing.config import CheckpointConfig, CheckpointStrategy, SaveFrequency
from .models.base import load_checkpoint, load_model
from .models.gru import GRU, GRUConfig
from .models.lstm import LSTM, LSTMConfig
from .models.mlp import MLP, MLPConfig
from .models.transformer import Transformer, TransformerConfig
from .models.deepar import DeepAR, DeepARConfig
from .training.likelihood import Likelihood
from .training.augmentation import DataAugmentation
from .training.callbacks import Callback, CallbackResult, ReduceLROnPlateau
from .training.config import EarlyStopping, Metric, Mode, TrainingConfig
from .training.logs import TrainingLogs
from .training.losses import HuberConfig, LossFunction, QuantileConfig, WeightedConfig
from .training.monitor import TrainingMonitor
from .training.visualizer import TrainingVisualizer
from .training.fault_tolerance import FaultTolerantTraining
from .training.optimizers import AdamConfig, AdamWConfig, Optimizer, RMSpropConfig, SGDConfig
from .training.regularization import GradientClipping
from .training.schedulers import LearningRateScheduler
from .validation.cross_validation import (BlockedTimeSeriesCrossValidator, CrossValidationSplitter,
                                          CustomCrossValidator, CVResults, TimeSeriesCrossValidator,
                                          cross_validation)
from .tuning import (AcquisitionFunction, Algorithm, BayesianOptimization, Direction, GridSearch,
                     HyperparameterSpace, Kernel, MultiObjectiveOptimization, RandomSearch)

__all__ = [
    "TimeSeriesDataFrame", "ForecastFrame", "load_dataset", "list_datasets",
    "MLP", "MLPConfig", "LSTM", "LSTMConfig", "GRU", "GRUConfig", "Transformer", "TransformerConfig", "load_model",
    "DeepAR", "DeepARConfig", "Likelihood",
    "TrainingConfig", "EarlyStopping", "TrainingLogs", "Metric", "Mode", "DataAugmentation",
    "Optimizer", "AdamConfig", "AdamWConfig", "SGDConfig", "RMSpropConfig", "LearningRateScheduler",
    "LossFunction", "HuberConfig", "QuantileConfig", "WeightedConfig", "GradientClipping",
    "Callback", "CallbackResult", "ReduceLROnPlateau", "TrainingMonitor", "TrainingVisualizer",
    "set_num_threads", "get_num_threads",
    "TimeSeriesCrossValidator", "BlockedTimeSeriesCrossValidator", "CustomCrossValidator",
    "CrossValidationSplitter", "CVResults", "cross_validation",
    "HyperparameterSpace", "GridSearch", "RandomSearch", "BayesianOptimization", "MultiObjectiveOptimization",
    "AcquisitionFunction", "Kernel", "Direction", "Algorithm",
    "CheckpointConfig", "CheckpointStrategy", "SaveFrequency", "load_checkpoint", "FaultTolerantTraining",
]
