"""Forecast evaluation: M4 metrics and the M4 statistical benchmarks (numpy only)."""
from .baselines import naive, naive2, seasonal_indices, seasonal_naive, seasonality_test
from .metrics import (
    METRICS,
    evaluate,
    mae,
    mape,
    mase,
    mse,
    owa,
    quantile_loss,
    rmse,
    scaled_quantile_loss,
    smape,
)

__all__ = [
    "mae",
    "mse",
    "rmse",
    "mape",
    "smape",
    "mase",
    "owa",
    "quantile_loss",
    "scaled_quantile_loss",
    "evaluate",
    "METRICS",
    "naive",
    "seasonal_naive",
    "naive2",
    "seasonality_test",
    "seasonal_indices",
]
