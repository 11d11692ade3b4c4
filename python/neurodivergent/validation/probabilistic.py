"""Probabilistic forecast metrics and interval helpers (numpy only).

Forecasts come as **samples** (sample paths, e.g. ``DeepAR.predict_samples``: ``(series, samples, horizon)``)
or as **quantiles** (``q_pred`` with ``y``'s shape plus one last axis, one entry per level), or as
**intervals** (``lo`` / ``hi`` arrays of ``y``'s shape).

* :func:`crps_from_samples`: the continuous ranked probability score of the empirical distribution of the
  samples, ``E|X - y| - E|X - X'| / 2`` (exact for that distribution; computed from the sorted samples),
  averaged over points. ``normalized=True`` divides by ``mean |y|`` (the "weighted" CRPS of the DeepAR
  literature).
* :func:`crps_from_quantiles`: the quantile approximation ``CRPS ~ 2 * mean_tau pinball_tau`` (exact as the
  levels fill (0, 1) evenly); ``normalized=True`` divides by ``mean |y|``.
* :func:`scaled_quantile_loss` (from :mod:`.metrics`): pinball loss scaled per series like MASE.
* :func:`coverage`: share of points inside ``[lo, hi]``; :func:`interval_width`: mean ``hi - lo``
  (``y_train`` and ``m`` given: scaled per series like MASE); :func:`msis`: the M4 competition's mean
  scaled interval score.
* :func:`interval_quantiles` / :func:`check_levels`: a level of 80 is the interval between the 10% and 90%
  quantiles (NeuralForecast's ``-lo-80`` / ``-hi-80``); :func:`intervals_from_quantiles` reads such
  intervals off a quantile forecast (linear interpolation between levels, never extrapolation).

Inputs must be finite numbers of matching shapes; errors name the argument (as in :mod:`.metrics`).
"""
from __future__ import annotations

import numbers
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .metrics import _as_float, _as_series_list, _check_m, _pair, quantile_loss, scaled_quantile_loss

__all__ = [
    "crps_from_samples",
    "crps_from_quantiles",
    "scaled_quantile_loss",
    "coverage",
    "interval_width",
    "msis",
    "quantiles_from_samples",
    "check_levels",
    "interval_quantiles",
    "intervals_from_quantiles",
]


def _sample_axis(y: np.ndarray, s: np.ndarray, sample_axis: Optional[int]) -> int:
    if s.ndim != y.ndim + 1:
        raise ValueError(f"samples must have one axis more than y {y.shape} (the sample axis), got {s.shape}")
    cands = [sample_axis] if sample_axis is not None else [1, 0, s.ndim - 1]
    for ax in cands:
        if not -s.ndim <= ax < s.ndim:
            raise ValueError(f"sample_axis {ax} is out of range for samples of shape {s.shape}")
        if np.delete(np.array(s.shape), ax).tolist() == list(y.shape):
            return ax % s.ndim
    raise ValueError(f"samples {s.shape} do not match y {y.shape} with the sample axis "
                     f"{'at ' + str(sample_axis) if sample_axis is not None else '(tried 1, 0, -1)'}")


def crps_from_samples(y, samples, sample_axis: Optional[int] = None, *, normalized: bool = False,
                      per_point: bool = False):
    """Mean CRPS of the samples' empirical distribution against ``y``.

    ``samples`` has ``y``'s shape plus a sample axis (``sample_axis``; by default the axis whose removal gives
    ``y``'s shape, trying 1, 0 and the last: ``(S, n, h)`` for ``y`` ``(S, h)``). ``per_point=True`` returns
    the array of per-point scores (``y``'s shape) instead of the mean; ``normalized=True`` divides by
    ``mean |y|`` (not with ``per_point``)."""
    ya = _as_float(y, "y")
    sa = _as_float(samples, "samples")
    ax = _sample_axis(ya, sa, sample_axis)
    xs = np.sort(np.moveaxis(sa, ax, -1), axis=-1)
    n = xs.shape[-1]
    term1 = np.abs(xs - ya[..., None]).mean(axis=-1)
    w = (2.0 * np.arange(1, n + 1) - n - 1) / (n * n)  # E|X - X'| = 2 sum_i (2i - n - 1) x_(i) / n^2
    term2 = (xs * w).sum(axis=-1)
    score = term1 - term2
    if per_point:
        if normalized:
            raise ValueError("normalized applies to the mean score, not to per_point values")
        return score
    return _normalize(float(score.mean()), ya, normalized)


def _normalize(value: float, ya: np.ndarray, normalized: bool) -> float:
    if not normalized:
        return value
    scale = float(np.abs(ya).mean())
    if scale == 0:
        raise ValueError("normalized CRPS is undefined when every y is 0 (mean |y| = 0)")
    return value / scale


def crps_from_quantiles(y, q_pred, quantiles, *, normalized: bool = False) -> float:
    """CRPS approximated from quantile forecasts: ``2 * mean over levels of the pinball loss``.
    ``q_pred`` has ``y``'s shape plus one last axis of ``len(quantiles)``."""
    ya = _as_float(y, "y")
    return _normalize(2.0 * quantile_loss(ya, q_pred, quantiles), ya, normalized)


def quantiles_from_samples(samples, levels, sample_axis: int = 1) -> np.ndarray:
    """Quantiles of the samples at ``levels`` (linear interpolation), as a last axis: for samples
    ``(S, n, h)`` the result is ``(S, h, Q)``. Monotone in the level."""
    sa = _as_float(samples, "samples")
    lv = _as_float(levels, "levels")
    if lv.ndim != 1 or ((lv < 0) | (lv > 1)).any():
        raise ValueError(f"levels must be a 1-D list of numbers in [0, 1], got {lv.tolist()}")
    q = np.quantile(sa, lv, axis=sample_axis)  # (Q, ...)
    return np.moveaxis(q, 0, -1)


def _lo_hi(y, lo, hi):
    ya, la = _pair(y, lo, "lo")
    _, ha = _pair(y, hi, "hi")
    if (la > ha).any():
        i = int(np.flatnonzero((la > ha).ravel())[0])
        raise ValueError(f"lo must be <= hi everywhere; at flat index {i} lo = {la.ravel()[i]}, hi = {ha.ravel()[i]}")
    return ya, la, ha


def coverage(y, lo, hi) -> float:
    """Share of points with ``lo <= y <= hi`` (0 to 1)."""
    ya, la, ha = _lo_hi(y, lo, hi)
    return float(((ya >= la) & (ya <= ha)).mean())


def _scales(y_train, m: int, n_series: int) -> np.ndarray:
    series = _as_series_list(y_train, "y_train", min_len=m + 1)
    if len(series) != n_series:
        raise ValueError(f"y_train holds {len(series)} series but y holds {n_series} (the first axis of y indexes series)")
    sc = np.array([np.abs(s[m:] - s[:-m]).mean() for s in series])
    if (sc == 0).any():
        bad = np.flatnonzero(sc == 0)[:5].tolist()
        raise ValueError(f"series {bad} have a constant training part at lag m = {m}: the scale is 0")
    return sc


def interval_width(lo, hi, y_train=None, m: int = 1) -> float:
    """Mean width ``hi - lo``; with ``y_train`` (one training series per row of ``lo``) each series' widths
    are divided by its in-sample seasonal-naive MAE (lag ``m``) first, like MASE."""
    la = _as_float(lo, "lo")
    ha = _as_float(hi, "hi")
    if la.shape != ha.shape:
        raise ValueError(f"hi has shape {ha.shape}, but lo has shape {la.shape}; they must match")
    wd = ha - la
    if (wd < 0).any():
        raise ValueError("lo must be <= hi everywhere")
    if y_train is None:
        return float(wd.mean())
    m = _check_m(m)
    w2 = wd.reshape(1, -1) if wd.ndim <= 1 else wd.reshape(wd.shape[0], -1)
    return float((w2.mean(axis=1) / _scales(y_train, m, w2.shape[0])).mean())


def msis(y, lo, hi, y_train, m: int = 1, level: float = 95.0) -> float:
    """Mean scaled interval score (M4): per series ``mean_t [(hi - lo) + 2/a (lo - y) 1{y < lo} +
    2/a (y - hi) 1{y > hi}]`` divided by the in-sample seasonal-naive MAE, averaged over series;
    ``a = 1 - level / 100`` (0.05 for the 95% intervals of M4)."""
    ya, la, ha = _lo_hi(y, lo, hi)
    a = 1.0 - check_levels([level])[0] / 100.0
    m = _check_m(m)
    pen = (ha - la) + (2.0 / a) * np.maximum(la - ya, 0.0) + (2.0 / a) * np.maximum(ya - ha, 0.0)
    p2 = pen.reshape(1, -1) if pen.ndim <= 1 else pen.reshape(pen.shape[0], -1)
    return float((p2.mean(axis=1) / _scales(y_train, m, p2.shape[0])).mean())


def check_levels(level) -> Tuple[float, ...]:
    """Interval levels in percent, each in (0, 100): None -> (), a number -> one level; sorted, unique."""
    if level is None:
        return ()
    items = [level] if isinstance(level, numbers.Real) and not isinstance(level, bool) else level
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise TypeError(f"level must be a number or a list of numbers in (0, 100), got {level!r}")
    out = []
    for i, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"level[{i}] must be a number in (0, 100), got {v!r}")
        v = float(v)
        if not 0.0 < v < 100.0:
            raise ValueError(f"level[{i}] must be in (0, 100) (a percentage such as 80 or 95), got {v:g}")
        out.append(v)
    return tuple(sorted(set(out)))


def interval_quantiles(level: float) -> Tuple[float, float]:
    """The quantile levels bounding a central interval: 80 -> (0.1, 0.9)."""
    a = (1.0 - float(level) / 100.0) / 2.0
    return a, 1.0 - a


def intervals_from_quantiles(q_pred, quantiles: Sequence[float], levels) -> Dict[float, Tuple[np.ndarray, np.ndarray]]:
    """``{level: (lo, hi)}`` read off a quantile forecast ``q_pred`` (``(..., Q)``, increasing along the last
    axis) at ``quantiles``: a bound at a trained level is that column; between two levels it is linearly
    interpolated; outside ``[min(quantiles), max(quantiles)]`` a ValueError names the levels available."""
    qa = np.asarray(q_pred, np.float64)
    qs = np.asarray(quantiles, np.float64)
    if qa.shape[-1] != qs.shape[0]:
        raise ValueError(f"q_pred's last axis has {qa.shape[-1]} entries but there are {qs.shape[0]} quantiles")
    out: Dict[float, Tuple[np.ndarray, np.ndarray]] = {}
    for lv in check_levels(levels):
        bounds = []
        for q in interval_quantiles(lv):
            hit = np.flatnonzero(np.abs(qs - q) < 1e-9)
            if hit.size:
                bounds.append(qa[..., int(hit[0])])
                continue
            if q < qs[0] or q > qs[-1]:
                raise ValueError(f"a {lv:g}% interval needs the {q:g} quantile, outside the trained levels "
                                 f"{qs.tolist()}: train with quantiles that include {interval_quantiles(lv)[0]:g} "
                                 f"and {interval_quantiles(lv)[1]:g} (or a wider range)")
            j = int(np.searchsorted(qs, q))
            f = (q - qs[j - 1]) / (qs[j] - qs[j - 1])
            bounds.append(qa[..., j - 1] * (1 - f) + qa[..., j] * f)
        out[lv] = (bounds[0], bounds[1])
    return out
