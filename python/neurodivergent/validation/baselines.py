"""The M4 competition's statistical benchmarks needed to score OWA: Naive, seasonal Naive and Naive2.

Written from the M4 competition's published method description (Makridakis, Spiliotis &
Assimakopoulos 2020, The M4 Competition, IJF 36(1), and the organisers' benchmark definitions):

* ``naive``: every future value is the last observed value.
* ``seasonal_naive``: the last full season (``m`` values) repeated.
* ``naive2``: Naive applied to the seasonally adjusted series, re-seasonalised. A series is adjusted only
  if it has at least ``3 * m`` values and is seasonal by the 90% autocorrelation test
  ``|acf_m| > 1.645 * sqrt((1 + 2 * sum_{k=1}^{m-1} acf_k^2) / n)``; the seasonal indices come from a
  classical multiplicative decomposition (centred moving average of order ``m``: a ``2 x m`` MA when
  ``m`` is even; indices averaged per position in the cycle and normalised to mean 1).

All functions take one training series (1-D, returns ``(h,)``) or several: a 2-D ``(S, T)`` array or a
list of 1-D arrays of different lengths (returns ``(S, h)``). Values must be finite (trim padding first).

One deviation for data that M4 never had: multiplicative decomposition needs positive values, so
``naive2`` treats a series with any value ``<= 0`` as non-seasonal (plain Naive) instead of dividing by
zero. All 100,000 M4 series are positive, so the M4 numbers are unaffected.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, List

import numpy as np

from .metrics import _as_series_list, _check_m

__all__ = [
    "naive",
    "seasonal_naive",
    "naive2",
    "seasonality_test",
    "seasonal_indices",
]


def _check_h(h: Any) -> int:
    if isinstance(h, bool) or not isinstance(h, numbers.Integral):
        raise TypeError(f"h (the horizon) must be an int, got {type(h).__name__}")
    if h < 1:
        raise ValueError(f"h (the horizon) must be >= 1, got {h}")
    return int(h)


def _is_single(y_train: Any) -> bool:
    if isinstance(y_train, (list, tuple)):
        return all(np.ndim(s) == 0 for s in y_train)
    return np.ndim(y_train) == 1


def _stack(y_train: Any, forecasts: List[np.ndarray]) -> np.ndarray:
    out = np.stack(forecasts)
    return out[0] if _is_single(y_train) else out


def naive(y_train, h: int) -> np.ndarray:
    """Naive (random walk): the last value repeated ``h`` times."""
    h = _check_h(h)
    series = _as_series_list(y_train, "y_train", min_len=1)
    return _stack(y_train, [np.full(h, s[-1]) for s in series])


def seasonal_naive(y_train, h: int, m: int) -> np.ndarray:
    """Seasonal naive: ``y_hat[T + j] = y[T - m + (j mod m)]`` (each series needs ``>= m`` values)."""
    h = _check_h(h)
    m = _check_m(m)
    series = _as_series_list(y_train, "y_train", min_len=m)
    return _stack(y_train, [np.resize(s[-m:], h) for s in series])


def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations ``acf_1 .. acf_max_lag`` (biased, as R's ``acf``); NaN-free input needed."""
    d = x - x.mean()
    denom = float(d @ d)
    return np.array([float(d[k:] @ d[:-k]) / denom for k in range(1, max_lag + 1)])


def seasonality_test(y, m: int) -> bool:
    """M4's 90% seasonality test of one series: ``n >= 3 m`` and
    ``|acf_m| > 1.645 * sqrt((1 + 2 * sum_{k<m} acf_k^2) / n)``. ``m == 1`` and constant series are
    never seasonal."""
    m = _check_m(m)
    x = _as_series_list(y, "y")
    if len(x) != 1:
        raise ValueError("seasonality_test takes one series (a 1-D array)")
    x = x[0]
    n = x.shape[0]
    if m == 1 or n < 3 * m or np.all(x == x[0]):
        return False
    acf = _acf(x, m)
    limit = 1.645 * math.sqrt((1.0 + 2.0 * float(np.sum(acf[: m - 1] ** 2))) / n)
    return bool(abs(acf[m - 1]) > limit)


def seasonal_indices(y, m: int) -> np.ndarray:
    """Multiplicative seasonal indices of one series by classical decomposition, shape ``(m,)``.

    ``out[p]`` is the index of positions ``t`` with ``t mod m == p`` (``t = 0`` is the first value).
    Trend: centred moving average of order ``m`` (weights ``[1/2, 1, ..., 1, 1/2] / m`` when ``m`` is
    even). Index ``p``: the mean of ``y_t / trend_t`` over the positions where the trend exists,
    then all indices divided by their mean. Needs ``n >= 2 m`` positive values.
    """
    m = _check_m(m)
    x = _as_series_list(y, "y")
    if len(x) != 1:
        raise ValueError("seasonal_indices takes one series (a 1-D array)")
    x = x[0]
    n = x.shape[0]
    if m < 2:
        raise ValueError(f"seasonal_indices needs m >= 2, got {m}")
    if n < 2 * m:
        raise ValueError(f"seasonal_indices needs at least 2*m = {2 * m} values, got {n}")
    if (x <= 0).any():
        raise ValueError("seasonal_indices (multiplicative) needs strictly positive values")
    if m % 2 == 0:
        w = np.concatenate(([0.5], np.ones(m - 1), [0.5])) / m
    else:
        w = np.ones(m) / m
    k = w.shape[0] // 2
    trend = np.convolve(x, w, mode="valid")  # trend[i] is centred on t = i + k
    ratio = x[k : k + trend.shape[0]] / trend
    pos = np.arange(k, k + trend.shape[0]) % m
    sums = np.bincount(pos, weights=ratio, minlength=m)
    counts = np.bincount(pos, minlength=m)
    figure = sums / counts
    return figure / figure.mean()


def _naive2_one(x: np.ndarray, h: int, m: int) -> np.ndarray:
    n = x.shape[0]
    if m > 1 and (x > 0).all() and seasonality_test(x, m):
        si = seasonal_indices(x, m)
        level = x[-1] / si[(n - 1) % m]
        return level * si[(n + np.arange(h)) % m]
    return np.full(h, x[-1])


def naive2(y_train, h: int, m: int) -> np.ndarray:
    """M4's Naive2: Naive on the seasonally adjusted series, re-seasonalised (see the module docs).

    For a seasonal series the forecast is ``y_T / s[T] * s[T + j]`` with ``s`` the multiplicative
    seasonal indices; otherwise (``m == 1``, fewer than ``3 m`` values, not seasonal by the test, or
    any value ``<= 0``) it is plain Naive.
    """
    h = _check_h(h)
    m = _check_m(m)
    series = _as_series_list(y_train, "y_train", min_len=1)
    return _stack(y_train, [_naive2_one(s, h, m) for s in series])
