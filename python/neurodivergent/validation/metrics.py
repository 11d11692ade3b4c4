"""Forecast accuracy metrics, with the M4 competition's definitions (numpy only).

Every function takes plain arrays. ``y`` (actuals) and ``y_hat`` (forecasts) may have any shape as long
as the two shapes match; ``(S, h)`` (series by horizon) is the usual one. Scalars come back as Python
floats; pass ``axis`` to the point-wise metrics to get per-row values instead.

Rules for the awkward cases (never a silent ``inf``, never a ``RuntimeWarning``):

* Inputs must be numeric, non-empty and finite: anything else raises ``TypeError`` / ``ValueError``
  naming the argument (M4's right-padded training rows must be trimmed of their NaN padding first).
* **MAPE** divides by ``|y|``. If any ``y == 0`` the result is ``NaN`` (per reduced slice when ``axis``
  is given), unless ``skip_zeros=True``: then those points are left out of the mean, and the result is
  ``NaN`` only when every point is zero.
* **sMAPE** (M4): ``200 * |y - y_hat| / (|y| + |y_hat|)``. A point where ``y == y_hat == 0`` is a perfect
  forecast and counts as 0 (the denominator is zero only there).
* **MASE** (M4): each series' mean absolute error divided by the mean absolute seasonal difference
  ``mean_{t >= m} |y_t - y_{t-m}|`` of *that series'* training part. A constant (period-``m``-periodic)
  training series has scale 0: that series' MASE is ``NaN``. The average over series then follows
  ``nan_policy``: ``"propagate"`` (default, the average is ``NaN``), ``"omit"`` (average the others;
  ``NaN`` if none is left) or ``"raise"`` (``ValueError`` naming the series).
* **OWA** (M4): ``(sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) / 2`` on the *averaged* metrics.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

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
]

NAN_POLICIES = ("propagate", "omit", "raise")

Axis = Union[None, int, Sequence[int]]


# --------------------------------------------------------------------------------------------- helpers
def _as_float(x: Any, name: str, *, allow_empty: bool = False) -> np.ndarray:
    """A float64 copy-or-view of ``x``; numeric, finite and non-empty, else an error naming ``name``."""
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}")
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if a.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    if not np.isfinite(a).all():
        bad = np.flatnonzero(~np.isfinite(a.ravel()))
        first = np.unravel_index(int(bad[0]), a.shape) if a.ndim else ()
        first_s = tuple(int(i) for i in first)
        raise ValueError(
            f"{name} has {bad.size} non-finite value(s) (NaN/inf), first at index {first_s}"
        )
    return a


def _pair(y: Any, y_hat: Any, name_hat: str = "y_hat"):
    ya = _as_float(y, "y")
    yh = _as_float(y_hat, name_hat)
    if ya.shape != yh.shape:
        raise ValueError(f"{name_hat} has shape {yh.shape}, but y has shape {ya.shape}; they must match")
    return ya, yh


def _reduce(values: np.ndarray, axis: Axis):
    out = values.mean(axis=_axis(axis, values.ndim))
    return float(out) if np.ndim(out) == 0 else out


def _axis(axis: Axis, ndim: int):
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not -ndim <= a < ndim:
            raise ValueError(f"axis {axis!r} is out of range for arrays with {ndim} dimension(s)")
    return tuple(int(a) for a in axes)


def _check_m(m: Any) -> int:
    if isinstance(m, bool) or not isinstance(m, (numbers.Integral,)):
        raise TypeError(f"m (the seasonal period) must be an int, got {type(m).__name__}")
    if m < 1:
        raise ValueError(f"m (the seasonal period) must be >= 1, got {m}")
    return int(m)


def _check_nan_policy(nan_policy: str) -> str:
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    return nan_policy


def _name_series(idx: Sequence[int]) -> str:
    idx = [int(i) for i in idx]
    shown = ", ".join(str(i) for i in idx[:5])
    return shown if len(idx) <= 5 else f"{shown}, ... ({len(idx)} in all)"


def _as_series_list(y_train: Any, name: str = "y_train", min_len: int = 1) -> List[np.ndarray]:
    """Several training series: a 2-D array (one row each), or a list of 1-D arrays of any lengths.

    A 1-D array (or a flat list of numbers) is one series.
    """
    if isinstance(y_train, (list, tuple)):
        if len(y_train) == 0:
            raise ValueError(f"{name} is empty")
        dims = {np.ndim(s) for s in y_train}
        if dims == {0}:
            series = [_as_float(y_train, name)]
        elif dims == {1}:
            series = [_as_float(s, f"{name}[{i}]") for i, s in enumerate(y_train)]
        else:
            raise ValueError(
                f"{name} must be a list of 1-D arrays (one per series) or a flat list of numbers; "
                f"got elements with {sorted(dims)} dimensions"
            )
    else:
        a = _as_float(y_train, name)
        if a.ndim == 1:
            series = [a]
        elif a.ndim == 2:
            series = [a[i] for i in range(a.shape[0])]
        else:
            raise ValueError(f"{name} must be 1-D (one series) or 2-D (one row per series), got shape {a.shape}")
    short = [i for i, s in enumerate(series) if s.shape[0] < min_len]
    if short:
        raise ValueError(
            f"{name}: series {_name_series(short)} have fewer than {min_len} value(s) "
            f"(the first has {series[short[0]].shape[0]})"
        )
    return series


def _per_series(ya: np.ndarray) -> np.ndarray:
    """View actuals/forecasts as (S, k): 1-D is one series, otherwise the first axis indexes series."""
    return ya.reshape(1, -1) if ya.ndim <= 1 else ya.reshape(ya.shape[0], -1)


def _seasonal_scales(y_train: Any, m: int, n_series: int) -> np.ndarray:
    series = _as_series_list(y_train, "y_train", min_len=m + 1)
    if len(series) != n_series:
        raise ValueError(
            f"y_train holds {len(series)} series but y holds {n_series} (the first axis of y indexes series)"
        )
    return np.array([np.abs(s[m:] - s[:-m]).mean() for s in series])


def _aggregate(per_series: np.ndarray, zero_scale: np.ndarray, nan_policy: str, what: str):
    if zero_scale.any() and nan_policy == "raise":
        bad = np.flatnonzero(zero_scale)
        raise ValueError(
            f"{what} is undefined for series {_name_series(bad)}: their training part is constant at "
            f"lag m (scale 0)"
        )
    if nan_policy == "omit":
        keep = ~zero_scale
        return float(per_series[keep].mean()) if keep.any() else math.nan
    return math.nan if zero_scale.any() else float(per_series.mean())


def _safe_divide(num: np.ndarray, den: np.ndarray) -> tuple:
    """num / den where den != 0, 0 elsewhere, plus the mask of zero denominators (no warnings)."""
    zero = den == 0
    return np.where(zero, 0.0, num / np.where(zero, 1.0, den)), zero


# --------------------------------------------------------------------------------------------- metrics
def mae(y, y_hat, *, axis: Axis = None):
    """Mean absolute error ``mean|y - y_hat|``."""
    ya, yh = _pair(y, y_hat)
    return _reduce(np.abs(ya - yh), axis)


def mse(y, y_hat, *, axis: Axis = None):
    """Mean squared error ``mean (y - y_hat)^2``."""
    ya, yh = _pair(y, y_hat)
    return _reduce((ya - yh) ** 2, axis)


def rmse(y, y_hat, *, axis: Axis = None):
    """Root mean squared error ``sqrt(mse)`` (the root is taken after the mean over ``axis``)."""
    out = mse(y, y_hat, axis=axis)
    return math.sqrt(out) if isinstance(out, float) else np.sqrt(out)


def mape(y, y_hat, *, skip_zeros: bool = False, axis: Axis = None):
    """Mean absolute percentage error ``100 * mean |y - y_hat| / |y|``, in percent.

    If any ``y == 0`` the result is ``NaN`` (per reduced slice with ``axis``): MAPE is undefined there.
    With ``skip_zeros=True`` those points are excluded; the result is ``NaN`` only if all points are zero.
    """
    ya, yh = _pair(y, y_hat)
    ratio, zero = _safe_divide(np.abs(ya - yh), np.abs(ya))
    ax = _axis(axis, ya.ndim)
    if skip_zeros:
        total = ratio.sum(axis=ax)
        count = (~zero).sum(axis=ax)
        out, empty = _safe_divide(100.0 * total, count.astype(np.float64))
        out = np.where(empty, np.nan, out)
    else:
        out = np.where(zero.any(axis=ax), np.nan, 100.0 * ratio.mean(axis=ax))
    return float(out) if np.ndim(out) == 0 else out


def smape(y, y_hat, *, axis: Axis = None):
    """Symmetric MAPE as in M4: ``mean 200 * |y - y_hat| / (|y| + |y_hat|)``, in percent (0 to 200).

    A point with ``y == y_hat == 0`` counts as 0 (a perfect forecast). Over ``(S, h)`` arrays with equal
    horizons the mean over all points equals M4's mean over series of per-series sMAPE.
    """
    ya, yh = _pair(y, y_hat)
    ratio, _ = _safe_divide(200.0 * np.abs(ya - yh), np.abs(ya) + np.abs(yh))
    return _reduce(ratio, axis)


def mase(y, y_hat, y_train, m: int = 1, *, nan_policy: str = "propagate", per_series: bool = False):
    """Mean absolute scaled error as in M4, averaged over series.

    ``y``/``y_hat``: one series ``(h,)`` or several ``(S, h)`` (first axis = series; further axes are
    flattened per series). ``y_train``: each series' own training part: a 1-D array for one series, a 2-D
    ``(S, T)`` array, or a list of ``S`` 1-D arrays of different lengths (each longer than ``m``).

    Series ``i`` scores ``mean|y_i - y_hat_i| / mean_{t >= m}|y_train_i[t] - y_train_i[t-m]|``. A series
    whose scale is 0 scores ``NaN``; ``nan_policy`` says how the average treats it (see module docs).
    ``per_series=True`` returns the ``(S,)`` array of per-series values (``NaN`` where the scale is 0)
    instead of the average.
    """
    ya, yh = _pair(y, y_hat)
    m = _check_m(m)
    _check_nan_policy(nan_policy)
    err = np.abs(_per_series(ya) - _per_series(yh)).mean(axis=1)
    scale = _seasonal_scales(y_train, m, err.shape[0])
    values, zero = _safe_divide(err, scale)
    values = np.where(zero, np.nan, values)
    if per_series:
        if nan_policy == "raise":
            _aggregate(values, zero, nan_policy, "MASE")
        return values
    return _aggregate(values, zero, nan_policy, "MASE")


def owa(smape: float, mase: float, smape_naive2: float, mase_naive2: float) -> float:
    """Overall weighted average as in M4: ``(smape / smape_naive2 + mase / mase_naive2) / 2``.

    All four are the metrics averaged over the data set. They must be finite and non-negative, and the
    Naive2 references strictly positive (a ``NaN`` MASE from ``nan_policy="propagate"`` is rejected here
    rather than silently turned into a ``NaN`` OWA).
    """
    vals = {"smape": smape, "mase": mase, "smape_naive2": smape_naive2, "mase_naive2": mase_naive2}
    for name, v in vals.items():
        if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.floating, np.integer)):
            raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v}")
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    for name in ("smape_naive2", "mase_naive2"):
        if vals[name] == 0:
            raise ValueError(f"{name} is 0: OWA is undefined when Naive2 is a perfect forecast")
    return 0.5 * (float(smape) / float(smape_naive2) + float(mase) / float(mase_naive2))


def _quantile_setup(y, q_pred, quantiles):
    ya = _as_float(y, "y")
    qp = _as_float(q_pred, "q_pred")
    qs = _as_float(quantiles, "quantiles")
    if qs.ndim != 1:
        raise ValueError(f"quantiles must be 1-D, got shape {qs.shape}")
    if ((qs <= 0) | (qs >= 1)).any():
        raise ValueError(f"quantiles must lie strictly between 0 and 1, got {qs.tolist()}")
    if qp.shape != ya.shape + qs.shape:
        raise ValueError(
            f"q_pred has shape {qp.shape}, expected y's shape plus one axis of len(quantiles): "
            f"{ya.shape + qs.shape}"
        )
    e = ya[..., None] - qp
    return ya, np.maximum(qs * e, (qs - 1.0) * e)


def quantile_loss(y, q_pred, quantiles, *, per_quantile: bool = False):
    """Mean pinball loss ``max(q * (y - y_q), (q - 1) * (y - y_q))`` over points and quantiles.

    ``q_pred`` has ``y``'s shape plus a last axis, one entry per quantile in ``quantiles`` (each in
    ``(0, 1)``). ``per_quantile=True`` returns the ``(Q,)`` means instead. With the single quantile 0.5
    this is ``mae / 2`` (some papers report twice this value).
    """
    _, loss = _quantile_setup(y, q_pred, quantiles)
    if per_quantile:
        return loss.reshape(-1, loss.shape[-1]).mean(axis=0)
    return float(loss.mean())


def scaled_quantile_loss(
    y,
    q_pred,
    quantiles,
    y_train,
    m: int = 1,
    *,
    nan_policy: str = "propagate",
    per_series: bool = False,
):
    """Pinball loss scaled like MASE: per series, the mean pinball loss over horizon and quantiles divided
    by that series' in-sample seasonal-naive scale, then averaged over series (as the M5 SPL, averaged
    over quantiles). With the single quantile 0.5 this is ``mase / 2``. Zero scales and ``nan_policy``
    behave as in :func:`mase`.
    """
    ya, loss = _quantile_setup(y, q_pred, quantiles)
    m = _check_m(m)
    _check_nan_policy(nan_policy)
    n_series = 1 if ya.ndim <= 1 else ya.shape[0]
    err = loss.reshape(n_series, -1).mean(axis=1)
    scale = _seasonal_scales(y_train, m, n_series)
    values, zero = _safe_divide(err, scale)
    values = np.where(zero, np.nan, values)
    if per_series:
        if nan_policy == "raise":
            _aggregate(values, zero, nan_policy, "scaled quantile loss")
        return values
    return _aggregate(values, zero, nan_policy, "scaled quantile loss")


METRICS = ("mae", "mse", "rmse", "mape", "smape", "mase", "owa")


def evaluate(
    y,
    y_hat,
    y_train=None,
    m: int = 1,
    metrics: Optional[Sequence[str]] = None,
    *,
    skip_zeros: bool = False,
    nan_policy: str = "propagate",
) -> Dict[str, float]:
    """Several metrics at once: ``{"mae": ..., "smape": ..., ...}`` in the order asked.

    ``metrics`` defaults to ``("mae", "mse", "rmse", "smape")`` plus ``"mase"`` when ``y_train`` is given.
    Names: ``mae, mse, rmse, mape, smape, mase, owa``. ``"mase"`` and ``"owa"`` need ``y_train``;
    ``"owa"`` forecasts each series with :func:`~neurodivergent.validation.baselines.naive2` (horizon =
    the last axis of ``y``, period ``m``) and scores OWA against it, so ``y`` must be ``(h,)`` or
    ``(S, h)``. ``skip_zeros`` goes to MAPE, ``nan_policy`` to MASE.
    """
    if metrics is None:
        metrics = ("mae", "mse", "rmse", "smape") + (("mase",) if y_train is not None else ())
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    unknown = [k for k in metrics if k not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {METRICS}")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics has duplicates: {list(metrics)}")
    needs_train = [k for k in metrics if k in ("mase", "owa")]
    if needs_train and y_train is None:
        raise ValueError(f"metric(s) {needs_train} need y_train (the in-sample part of each series)")
    ya, yh = _pair(y, y_hat)
    out: Dict[str, float] = {}
    for k in metrics:
        if k == "mape":
            out[k] = mape(ya, yh, skip_zeros=skip_zeros)
        elif k == "mase":
            out[k] = mase(ya, yh, y_train, m, nan_policy=nan_policy)
        elif k == "owa":
            if ya.ndim not in (1, 2):
                raise ValueError(f"owa needs y of shape (h,) or (S, h), got {ya.shape}")
            from .baselines import naive2  # local import: baselines imports this module

            ref = naive2(y_train, ya.shape[-1], m)
            ref = ref.reshape(ya.shape)
            out[k] = owa(
                smape(ya, yh),
                mase(ya, yh, y_train, m, nan_policy=nan_policy),
                smape(ya, ref),
                mase(ya, ref, y_train, m, nan_policy=nan_policy),
            )
        else:
            out[k] = {"mae": mae, "mse": mse, "rmse": rmse, "smape": smape}[k](ya, yh)
    return out
