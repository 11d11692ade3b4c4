"""Data layer: validated long-format time series, CSV I/O, frequencies, forecast frames and
bundled datasets. numpy only; pandas / polars are imported lazily by their conversion methods."""

from .datasets import DEFAULT_DATASET, dataset_path, list_datasets, load_dataset
from .forecast import ForecastFrame
from .frame import DEFAULT_SERIES_ID, TimeSeriesDataFrame
from .frequency import Frequency, infer_frequency
from .scalers import SCALERS, window_stats
from .windows import WindowSampler

__all__ = [
    "TimeSeriesDataFrame",
    "ForecastFrame",
    "Frequency",
    "infer_frequency",
    "list_datasets",
    "load_dataset",
    "dataset_path",
    "DEFAULT_DATASET",
    "DEFAULT_SERIES_ID",
    "WindowSampler",
    "window_stats",
    "SCALERS",
]
