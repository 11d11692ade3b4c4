"""Time-series cross-validation: fold splitters, refit-per-fold evaluation and NeuralForecast-style
rolling-window forecasts (numpy only).

Vocabulary
----------
* A **fold** is a pair ``(TrainIndex, TestIndex)``: two sorted int64 arrays of *row positions* into the
  :class:`~neurodivergent.data.frame.TimeSeriesDataFrame` (``data.y[train]`` are the training values).
  Within every series the training rows are one contiguous stretch and every test row lies after them.
* A **time position** is an index on the panel's common time axis. With ``alignment="ds"`` (default)
  it is the number of frequency steps since the earliest timestamp of the panel, so a fold's cutoff is
  one calendar date shared by every series (no series is trained on dates that another series is tested
  on). With ``alignment="end"`` the series are aligned on their last observation (position
  ``max_length - length + i`` for the ``i``-th value), which suits panels whose series do not share a
  calendar (M4-style integer steps that all start at 1). When every series ends on the same date both
  give the same folds.
* Folds are computed once on the time axis and apply to every series. A series that cannot take part in
  a fold (it does not cover the whole test stretch, has no training rows, or, in ``cross_validate``, has
  fewer training rows than the model needs) raises a ``ValueError`` naming it and the fold
  (``short_series="raise"``, default) or is left out of that fold, logged, and recorded in
  :attr:`CVResults.excluded` (``short_series="exclude"``). Nothing is dropped silently.

Scoring (``cross_validate``)
----------------------------
For every fold a fresh model ``type(model)(model.config)`` is fitted on the fold's training rows only
(so the per-window scalers, and anything else the fit estimates, never see the test part), with
``model.fit_with_config(train, config)`` or ``model.fit(train)`` when ``config`` is None.

The test stretch of a fold may be longer than the model's horizon. It is then forecast from **rolling
origins inside the fold, without refitting**: the stretch is cut into consecutive horizon-long chunks
(the last one may be shorter), and each chunk is forecast by ``model.predict`` from the series'
observations before the chunk, as a deployed model would forecast once those values are known. With a
test stretch no longer than the horizon there is one origin and the forecast is
``model.predict(history up to the test stretch)``. This was chosen over refusing (which would tie the
test size to the horizon and make fraction-sized tests unusable) and over forecasting far beyond the
horizon recursively (which the direct multi-horizon models do not do). ``gap_size`` and ``purge_size``
remove observations from the *training targets* (as scikit-learn's ``gap`` does); the removed values are
still observed before the test stretch, so they may be forecast *inputs*.

Scores per fold pool every test point of the fold (MAE, MSE, RMSE, MAPE, sMAPE as in
:mod:`~neurodivergent.validation.metrics`); MASE is the mean over series of each series' MASE, scaled by
the seasonal differences of that series' observations before its test stretch (period
``season_length``, default the frequency's seasonality). A metric that is undefined on a fold (MAPE with
a zero actual, MASE of a series whose history is constant at lag ``season_length`` or no longer than
it) is NaN there, and so are its mean and std.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._config import boolean, cfg_field, config_class, nonneg_int, optional, positive_int
from ..data import validation as V
from ..data.csvio import format_floats, write_csv
from ..data.frame import TimeSeriesDataFrame, _import_optional
from . import metrics as M

__all__ = [
    "TrainIndex",
    "TestIndex",
    "CrossValidationSplitter",
    "TimeSeriesCrossValidator",
    "BlockedTimeSeriesCrossValidator",
    "CustomCrossValidator",
    "CVResults",
    "CVFrame",
    "FoldInfo",
    "cross_validation",
    "time_series_folds",
    "blocked_folds",
    "time_positions",
    "check_folds",
    "CV_METRICS",
    "DEFAULT_CV_METRICS",
]

log = logging.getLogger("neurodivergent")

#: Row positions of a fold's training part (sorted int64 array).
TrainIndex = np.ndarray
#: Row positions of a fold's test part (sorted int64 array).
TestIndex = np.ndarray

CV_METRICS = ("mae", "mse", "rmse", "mape", "smape", "mase")
DEFAULT_CV_METRICS = ("mae", "mape", "rmse", "smape", "mase")
ALIGNMENTS = ("ds", "end")
SHORT_SERIES = ("raise", "exclude")


# ============================================================================ small checks
def _metric_name(v: Any) -> str:
    key = getattr(v, "value", v)  # training.config.Metric members are str enums
    if not isinstance(key, str):
        raise TypeError(f"metric names must be str (or Metric members), got {type(v).__name__} {v!r}")
    key = key.lower()
    if key not in CV_METRICS:
        raise ValueError(f"unknown cross-validation metric {v!r}; choose from {', '.join(CV_METRICS)}")
    return key


def _metric_list(name: str, v: Any) -> Tuple[str, ...]:
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
        v = [v]
    out = tuple(_metric_name(x) for x in v)
    if not out:
        raise ValueError(f"{name} must name at least one metric")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} has duplicates: {list(out)}")
    return out


def _test_size(name: str, v: Any):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be an int (steps per fold), a float in (0, 1) (share of the time "
                        f"axis tested over all folds) or None, got {type(v).__name__} {v!r}")
    if isinstance(v, numbers.Integral):
        if v < 1:
            raise ValueError(f"{name} must be >= 1 when given as a number of steps, got {v}")
        return int(v)
    v = float(v)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} as a fraction must be in (0, 1), got {v} (give an int for a number of steps)")
    return v


def _open_fraction(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise TypeError(f"{name} must be a number in (0, 1), got {type(v).__name__} {v!r}")
    v = float(v)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {v}")
    return v


def _choice(*choices: str):
    def f(name: str, v: Any) -> str:
        if not isinstance(v, str) or v not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {v!r}")
        return v

    return f


def _splitter(name: str, v: Any):
    if v is not None and not callable(getattr(v, "split", None)):
        raise TypeError(f"{name} must have a split(data) -> [(train_index, test_index), ...] method, "
                        f"got {type(v).__name__}")
    return v


# ============================================================================ the time axis
def time_positions(data: TimeSeriesDataFrame, alignment: str = "ds") -> Tuple[np.ndarray, int]:
    """(position of every row on the panel's time axis (N,) int64, length T of that axis).

    ``alignment="ds"``: frequency steps since the panel's earliest timestamp (every row must sit on that
    common grid); ``"end"``: series aligned on their last value. See the module docstring."""
    if not isinstance(data, TimeSeriesDataFrame):
        raise TypeError(f"data must be a TimeSeriesDataFrame, got {type(data).__name__}")
    _choice(*ALIGNMENTS)("alignment", alignment)
    lengths = data.lengths
    within = np.arange(len(data), dtype=np.int64) - np.repeat(data.offsets[:-1], lengths)
    if alignment == "end" or data.n_series == 1:
        shift = int(lengths.max()) - lengths
        pos = within + np.repeat(shift, lengths)
        return pos, int(lengths.max())
    freq = data.freq
    if freq is None:
        raise ValueError("alignment='ds' needs the data's frequency (every series has a single point); "
                         "build the frame with freq=... or use alignment='end'")
    start = data.ds.min()
    pos = np.asarray(freq.steps_between(start, data.ds), dtype=np.int64)
    back = freq.add(start, pos)
    off = np.flatnonzero(back != data.ds)
    if off.size:
        ids = data.row_ids
        bad = list(dict.fromkeys(repr(str(ids[i])) for i in off))
        raise ValueError(
            f"series {V.format_id_list(bad)} are not on the common {str(freq)!r} grid that starts at "
            f"{V.format_ds(start)} (first off-grid timestamp {V.format_ds(data.ds[off[0]])}); "
            f"use alignment='end' to align the series on their last value instead")
    return pos, int(pos.max()) + 1


def _resolve_test_size(test_size, n_splits: int, T: int) -> int:
    if test_size is None:
        k = T // (n_splits + 1)
        what = f"the default T // (n_splits + 1) = {T} // {n_splits + 1}"
    elif isinstance(test_size, float):
        k = int(math.floor(test_size * T / n_splits))
        what = f"test_size {test_size:g} of {T} time steps shared by {n_splits} folds"
    else:
        return int(test_size)
    if k < 1:
        raise ValueError(f"{what} leaves less than one test step per fold; give more data, fewer splits "
                         f"or an int test_size")
    return k


def time_series_folds(n_positions: int, n_splits: int = 5, test_size=None, gap_size: int = 0,
                      purge_size: int = 0, expanding_window: bool = True,
                      max_train_size: Optional[int] = None) -> List[Tuple[range, range]]:
    """Folds of a time axis of ``n_positions`` steps as ``(train_range, test_range)`` pairs.

    Test stretches: ``k`` steps each (``test_size``; an int is a count per fold, a float in (0, 1) the
    share of the axis tested over all folds, ``k = floor(test_size * T / n_splits)``; None:
    ``T // (n_splits + 1)``), back to back at the end of the axis: fold ``i`` tests
    ``[T - (n_splits - i) * k, T - (n_splits - i - 1) * k)``. The training part ends
    ``gap_size + purge_size`` steps before its test stretch; it starts at 0 (expanding) or, with
    ``expanding_window=False``, keeps the first fold's length (a sliding window of fixed length);
    ``max_train_size`` caps it in either case. With ``purge_size=0`` and ``expanding_window=True``
    these are exactly scikit-learn's ``TimeSeriesSplit(n_splits, max_train_size=..., test_size=k,
    gap=gap_size)`` folds of ``np.arange(n_positions)``."""
    T = positive_int("n_positions", n_positions)
    n_splits = positive_int("n_splits", n_splits)
    gap_size = nonneg_int("gap_size", gap_size)
    purge_size = nonneg_int("purge_size", purge_size)
    max_train_size = optional(positive_int)("max_train_size", max_train_size)
    k = _resolve_test_size(_test_size("test_size", test_size), n_splits, T)
    first_end = T - n_splits * k - gap_size - purge_size
    if first_end <= 0:
        raise ValueError(
            f"too many splits: n_splits={n_splits} folds of test_size={k} after gap_size={gap_size} and "
            f"purge_size={purge_size} leave {first_end} training steps in the first fold of a time axis "
            f"of {T} steps (need >= 1)")
    length = first_end if not expanding_window else None
    if max_train_size is not None:
        length = max_train_size if length is None else min(length, max_train_size)
    out = []
    for i in range(n_splits):
        test_start = T - (n_splits - i) * k
        train_end = test_start - gap_size - purge_size
        train_start = 0 if length is None else max(0, train_end - length)
        out.append((range(train_start, train_end), range(test_start, test_start + k)))
    return out


# ============================================================================ fold checks
def check_folds(data: TimeSeriesDataFrame, folds: Sequence, *, source: str = "splitter") -> List[Tuple[np.ndarray, np.ndarray]]:
    """Validate folds and return them as sorted int64 arrays. Each fold is ``(train, test)`` row
    positions: in range, no duplicates, disjoint, a non-empty test part, and within every series the
    training rows contiguous and every test row after the last training row. Errors name the fold and
    the series."""
    if isinstance(folds, (str, bytes)) or not isinstance(folds, Sequence):
        raise TypeError(f"{source}.split(data) must return a list of (train_index, test_index) pairs, "
                        f"got {type(folds).__name__}")
    if len(folds) == 0:
        raise ValueError(f"{source}.split(data) returned no folds")
    n = len(data)
    series_of = np.repeat(np.arange(data.n_series), data.lengths)
    out = []
    for f, fold in enumerate(folds):
        if not isinstance(fold, (tuple, list)) or len(fold) != 2:
            raise TypeError(f"fold {f}: expected a (train_index, test_index) pair, got {type(fold).__name__}")
        arrs = []
        for name, idx in zip(("train", "test"), fold):
            a = np.asarray(idx)
            if a.size == 0:
                a = a.astype(np.int64)
            if a.ndim != 1 or a.dtype.kind not in "iu":
                raise TypeError(f"fold {f}: {name} index must be a 1-D array of int row positions, "
                                f"got dtype {a.dtype} shape {a.shape}")
            a = np.sort(a.astype(np.int64))
            if a.size and (a[0] < 0 or a[-1] >= n):
                raise ValueError(f"fold {f}: {name} index out of range [0, {n}) (got {a[0]}..{a[-1]})")
            if a.size > 1 and np.any(a[1:] == a[:-1]):
                raise ValueError(f"fold {f}: {name} index has repeated rows")
            arrs.append(a)
        tr, te = arrs
        if te.size == 0:
            raise ValueError(f"fold {f}: the test index is empty")
        both = np.intersect1d(tr, te)
        if both.size:
            raise ValueError(f"fold {f}: {both.size} row(s) are in both the training and the test index "
                             f"(first: row {both[0]})")
        s_tr = series_of[tr]
        if tr.size:
            # contiguous within series: consecutive rows of one series differ by one row
            same = s_tr[1:] == s_tr[:-1]
            broken = same & (tr[1:] != tr[:-1] + 1)
            if np.any(broken):
                s = int(s_tr[1:][broken][0])
                raise ValueError(f"fold {f}: the training rows of series {str(data.ids[s])!r} are not one "
                                 f"contiguous stretch (a model trains on gap-free series)")
        last_train = np.full(data.n_series, -1, dtype=np.int64)
        if tr.size:
            np.maximum.at(last_train, s_tr, tr)
        s_te = series_of[te]
        first_test = np.full(data.n_series, n, dtype=np.int64)
        np.minimum.at(first_test, s_te, te)
        early = np.flatnonzero((last_train >= 0) & (first_test < last_train))
        if early.size:
            names = [repr(str(data.ids[s])) for s in early]
            raise ValueError(f"fold {f}: series {V.format_id_list(names)} have test rows before training "
                             f"rows (a fold must test after what it trains on)")
        out.append((tr, te))
    return out


# ============================================================================ results
@dataclasses.dataclass(frozen=True)
class FoldInfo:
    """What one fold covered: the time-axis positions (``train_start``/``train_end``/``test_start``/
    ``test_end``, half-open; None for custom splitters), the timestamps of the test stretch when the
    axis is a calendar (``alignment="ds"``), and the row / series counts actually used."""

    fold: int
    train_rows: int
    test_rows: int
    n_train_series: int
    n_test_series: int
    train_start: Optional[int] = None
    train_end: Optional[int] = None
    test_start: Optional[int] = None
    test_end: Optional[int] = None
    test_start_ds: Any = None
    test_end_ds: Any = None


class CVFrame:
    """Rolling-window forecasts in long format: ``unique_id``, ``ds``, ``cutoff`` (the last timestamp
    before the forecast origin, i.e. the last input value), ``y`` (the actual) and one column per model
    output (``MLP``, ``MLP-q-0.1``, ...); :class:`CVResults` adds a leading ``fold`` column.
    ``frame["MLP"]`` is a column; ``to_pandas`` / ``to_polars`` / ``to_csv`` / ``to_dict`` export it."""

    def __init__(self, columns: Dict[str, np.ndarray]):
        n = None
        for k, v in columns.items():
            if n is None:
                n = len(v)
            elif len(v) != n:
                raise ValueError(f"column {k!r} has {len(v)} rows, expected {n}")
        self._cols = {k: np.asarray(v) for k, v in columns.items()}
        for v in self._cols.values():
            v.setflags(write=False)

    @property
    def columns(self) -> List[str]:
        return list(self._cols)

    @property
    def model_columns(self) -> List[str]:
        return [c for c in self._cols if c not in ("fold", "unique_id", "ds", "cutoff", "y")]

    def __len__(self) -> int:
        return len(next(iter(self._cols.values()))) if self._cols else 0

    def __contains__(self, name) -> bool:
        return name in self._cols

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cols:
            raise KeyError(f"no column {name!r}; columns are {self.columns}")
        return self._cols[name]

    def to_dict(self) -> Dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._cols.items()}

    def to_pandas(self):
        pd = _import_optional("pandas", "pandas")
        d = self.to_dict()
        for k in ("ds", "cutoff"):
            if k in d and d[k].dtype.kind == "M":
                d[k] = d[k].astype("datetime64[ns]")
        return pd.DataFrame(d)

    def to_polars(self):
        pl = _import_optional("polars", "polars")
        d = self.to_dict()
        for k in ("ds", "cutoff"):
            if k in d and d[k].dtype.kind == "M":
                d[k] = d[k].astype("datetime64[us]")
        return pl.DataFrame(d)

    def to_csv(self, path) -> None:
        """Long-format CSV, written atomically."""
        cols = []
        for k, v in self._cols.items():
            if k in ("ds", "cutoff"):
                cols.append(V.format_ds_array(v))
            elif v.dtype.kind == "f":
                cols.append(format_floats(v))
            else:
                cols.append([str(x) for x in v.tolist()])
        write_csv(path, self.columns, cols)

    def __repr__(self) -> str:
        return f"CVFrame(rows={len(self)}, columns={self.columns})"


class CVResults:
    """Scores of a cross-validation run.

    * ``fold_scores``: one ``{metric: value}`` dict per fold; ``scores(metric)`` the (n_folds,) array;
      ``mean(metric)`` / ``std(metric)`` (population standard deviation, ddof=0, as scikit-learn reports)
      and the shortcuts ``mean_mae()``, ``std_mae()``, ``mean_mape()``, ... .
    * ``series_scores``: per fold, ``{series id: {metric: value}}`` for the series tested in that fold.
    * ``folds``: :class:`FoldInfo` per fold; ``excluded``: per fold, ``{series id: reason}`` of the
      series left out (``short_series="exclude"``); ``predictions``: a :class:`CVFrame` of every test
      point (``fold``, ``unique_id``, ``ds``, ``cutoff``, ``y``, forecasts).
    """

    def __init__(self, metrics: Sequence[str], fold_scores: List[Dict[str, float]],
                 series_scores: List[Dict[str, Dict[str, float]]], folds: List[FoldInfo],
                 excluded: List[Dict[str, str]], predictions: Optional[CVFrame] = None,
                 model_name: str = ""):
        self.metrics = tuple(metrics)
        self.fold_scores = fold_scores
        self.series_scores = series_scores
        self.folds = folds
        self.excluded = excluded
        self.predictions = predictions
        self.model_name = model_name

    @property
    def n_folds(self) -> int:
        return len(self.fold_scores)

    def _key(self, metric) -> str:
        key = _metric_name(metric)
        if key not in self.metrics:
            raise KeyError(f"metric {key!r} was not computed; this run scored {', '.join(self.metrics)}")
        return key

    def scores(self, metric) -> np.ndarray:
        """(n_folds,) values of ``metric`` (name or Metric member)."""
        key = self._key(metric)
        return np.array([f[key] for f in self.fold_scores], dtype=np.float64)

    def mean(self, metric) -> float:
        return float(np.mean(self.scores(metric)))

    def std(self, metric) -> float:
        return float(np.std(self.scores(metric)))

    def mean_mae(self) -> float:
        return self.mean("mae")

    def std_mae(self) -> float:
        return self.std("mae")

    def mean_mape(self) -> float:
        return self.mean("mape")

    def std_mape(self) -> float:
        return self.std("mape")

    def mean_rmse(self) -> float:
        return self.mean("rmse")

    def std_rmse(self) -> float:
        return self.std("rmse")

    def mean_smape(self) -> float:
        return self.mean("smape")

    def std_smape(self) -> float:
        return self.std("smape")

    def mean_mase(self) -> float:
        return self.mean("mase")

    def std_mase(self) -> float:
        return self.std("mase")

    def summary(self) -> Dict[str, Tuple[float, float]]:
        """``{metric: (mean, std)}``."""
        return {k: (self.mean(k), self.std(k)) for k in self.metrics}

    def to_dict(self, level: str = "fold") -> Dict[str, np.ndarray]:
        """Columns of the per-fold table (``fold``, ``train_rows``, ``test_rows``, metrics...) or, with
        ``level="series"``, of the per-series table (``fold``, ``unique_id``, metrics...)."""
        if level == "fold":
            d: Dict[str, np.ndarray] = {
                "fold": np.array([f.fold for f in self.folds], dtype=np.int64),
                "train_rows": np.array([f.train_rows for f in self.folds], dtype=np.int64),
                "test_rows": np.array([f.test_rows for f in self.folds], dtype=np.int64),
                "n_test_series": np.array([f.n_test_series for f in self.folds], dtype=np.int64),
            }
            for k in self.metrics:
                d[k] = self.scores(k)
            return d
        if level == "series":
            folds, ids, vals = [], [], {k: [] for k in self.metrics}
            for f, per in enumerate(self.series_scores):
                for sid, sc in per.items():
                    folds.append(f)
                    ids.append(sid)
                    for k in self.metrics:
                        vals[k].append(sc[k])
            d = {"fold": np.array(folds, dtype=np.int64), "unique_id": np.array(ids, dtype=str)}
            d.update({k: np.array(v, dtype=np.float64) for k, v in vals.items()})
            return d
        raise ValueError(f"level must be 'fold' or 'series', got {level!r}")

    def to_pandas(self, level: str = "fold"):
        """The per-fold (default) or per-series (``level="series"``) scores as a pandas DataFrame."""
        pd = _import_optional("pandas", "pandas")
        return pd.DataFrame(self.to_dict(level))

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={m:.4g}±{s:.3g}" for k, (m, s) in self.summary().items())
        name = f"{self.model_name}, " if self.model_name else ""
        return f"CVResults({name}n_folds={self.n_folds}, {parts})"


# ============================================================================ frames from row stretches
def _segments(data: TimeSeriesDataFrame, rows: np.ndarray):
    """(series index, first row, end row) per series touched by the sorted contiguous ``rows``."""
    if rows.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    series_of = np.searchsorted(data.offsets, rows, side="right") - 1
    starts = np.flatnonzero(np.r_[True, series_of[1:] != series_of[:-1]])
    ends = np.r_[starts[1:], rows.size]
    return series_of[starts], rows[starts], rows[ends - 1] + 1


def _stretch_frame(data: TimeSeriesDataFrame, ids, lo: np.ndarray, hi: np.ndarray,
                   static_of: np.ndarray) -> TimeSeriesDataFrame:
    """A frame whose series ``j`` is rows ``lo[j]:hi[j]`` of ``data`` (named ``ids[j]``) with the static
    values of series ``static_of[j]`` (rows are trusted: they come from a validated frame)."""
    lengths = (hi - lo).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    rows = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(lo) else np.zeros(0, np.int64)
    return TimeSeriesDataFrame._trusted(
        np.asarray(ids).astype(str), offsets, data.ds[rows], data.y[rows], data.freq,
        {k: v[rows] for k, v in data.exog.items()}, {k: v[static_of] for k, v in data.static.items()})


def _model_sizes(model) -> Tuple[Optional[int], Optional[int]]:
    c = getattr(model, "config", None)
    return getattr(c, "input_size", None), getattr(c, "horizon", None)


def _alias(model) -> str:
    return getattr(model, "alias", None) or type(model).__name__


def _season(data: TimeSeriesDataFrame, season_length: Optional[int]) -> int:
    if season_length is not None:
        return season_length
    f = data.freq
    return int(f.seasonality) if f is not None else 1


def _score(metrics: Sequence[str], y: List[np.ndarray], yhat: List[np.ndarray],
           hist: List[np.ndarray], m: int) -> Tuple[Dict[str, float], List[Dict[str, float]]]:
    """Fold scores (pooled points; MASE averaged over series) and per-series scores."""
    def mase_one(a, b, h):
        if h.shape[0] <= m:
            return math.nan
        return float(M.mase(a, b, h, m, per_series=True)[0])

    per = []
    for a, b, h in zip(y, yhat, hist):
        d = {}
        for k in metrics:
            d[k] = mase_one(a, b, h) if k == "mase" else float(getattr(M, k)(a, b))
        per.append(d)
    ya, yh = np.concatenate(y), np.concatenate(yhat)
    fold = {}
    for k in metrics:
        fold[k] = float(np.mean([p["mase"] for p in per])) if k == "mase" else float(getattr(M, k)(ya, yh))
    return fold, per


# ============================================================================ the engine
def _fit_fresh(model, train: TimeSeriesDataFrame, config):
    fresh = type(model)(model.config)
    if config is None:
        fresh.fit(train)
    else:
        fresh.fit_with_config(train, config)
    return fresh


class _FoldEval:
    """Fits and forecasts folds given as row indices (shared by every validator and by
    :func:`cross_validation`)."""

    def __init__(self, model, data: TimeSeriesDataFrame, config, short_series: str):
        if not callable(getattr(model, "fit", None)) or not callable(getattr(model, "predict", None)):
            raise TypeError(f"model must have fit(data) and predict(data), got {type(model).__name__}")
        if config is not None:
            from ..training.config import TrainingConfig

            if not isinstance(config, TrainingConfig):
                raise TypeError(f"config must be a TrainingConfig or None, got {type(config).__name__}")
        inp, h = _model_sizes(model)
        if h is None or inp is None:
            raise ValueError(f"{type(model).__name__} config needs input_size and horizon for cross-validation")
        self.model, self.data, self.config, self.short_series = model, data, config, short_series
        self.input_size, self.horizon = int(inp), int(h)
        self.need = int(inp) + int(h)
        split = getattr(config, "validation_split", 0.0) if config is not None else 0.0
        self.val_split = float(split or 0.0)

    def _min_train(self, lengths: np.ndarray) -> np.ndarray:
        from ..training.trainer import validation_steps

        return lengths - validation_steps(lengths, self.horizon, self.val_split)

    def _short(self, fold: int, what: str, names: List[str], excluded: Dict[str, str]) -> None:
        if not names:
            return
        if self.short_series == "raise":
            raise ValueError(f"fold {fold}: {len(names)} series {what}: "
                             f"{V.format_id_list([repr(n) for n in names])} (shorten the folds or use "
                             f"short_series='exclude' to leave such series out of a fold)")
        for n in names:
            excluded.setdefault(n, what)
        log.warning("cross-validation fold %d: leaving out %d series that %s: %s", fold, len(names), what,
                    V.format_id_list([repr(n) for n in names]))

    def fit(self, fold: int, train: np.ndarray, excluded: Dict[str, str]):
        """A fresh model fitted on the training rows (short series raised on / excluded)."""
        data = self.data
        s, lo, hi = _segments(data, train)
        keep = self._min_train(hi - lo) >= self.need
        names = [str(data.ids[i]) for i in s[~keep]]
        self._short(fold, f"have fewer training rows than input_size + horizon = {self.need}"
                    + (" plus the validation part" if self.val_split > 0 else ""), names, excluded)
        s, lo, hi = s[keep], lo[keep], hi[keep]
        if s.size == 0:
            raise ValueError(f"fold {fold}: no series has enough training rows (input_size + horizon = "
                             f"{self.need}) to fit the model")
        frame = _stretch_frame(data, data.ids[s], lo, hi, s)
        return _fit_fresh(self.model, frame, self.config), int((hi - lo).sum()), int(s.size)

    def forecast(self, fold: int, fitted, test: np.ndarray, excluded: Dict[str, str]):
        """Forecasts of every test row from rolling origins (see the module docstring).

        Returns (forecast rows (R,), {model column: (R,) forecasts}, (R,) cutoff of each row)."""
        data = self.data
        test = test[~np.isin(data.row_ids[test], list(excluded))] if excluded else test
        offsets = data.offsets
        series_of = np.searchsorted(offsets, test, side="right") - 1
        # runs of consecutive rows within one series
        brk = np.r_[True, (series_of[1:] != series_of[:-1]) | (test[1:] != test[:-1] + 1)]
        starts = np.flatnonzero(brk)
        ends = np.r_[starts[1:], test.size]
        first_of_series = {}
        for a in starts:
            first_of_series.setdefault(int(series_of[a]), int(test[a]))
        short = [str(data.ids[s]) for s, r in first_of_series.items() if r - offsets[s] < self.input_size]
        self._short(fold, f"have fewer than input_size = {self.input_size} observations before their test rows",
                    short, excluded)
        bad = {data.index_of(n) for n in short}
        h = self.horizon
        chunk_series, chunk_origin, chunk_len = [], [], []
        for a, b in zip(starts, ends):
            s = int(series_of[a])
            if s in bad:
                continue
            r0, r1 = int(test[a]), int(test[b - 1]) + 1
            for o in range(r0, r1, h):
                chunk_series.append(s)
                chunk_origin.append(o)
                chunk_len.append(min(h, r1 - o))
        if not chunk_series:
            raise ValueError(f"fold {fold}: no series is left to test")
        cs, co = np.array(chunk_series, np.int64), np.array(chunk_origin, np.int64)
        ids = [f"{data.ids[s]}@{o}" for s, o in zip(cs, co)]
        hist = _stretch_frame(data, ids, offsets[cs], co, cs)
        fc = fitted.predict(hist)
        cols = fc.model_columns
        rows = np.concatenate([np.arange(o, o + n) for o, n in zip(co, chunk_len)])
        out = {c: np.concatenate([fc.values(c)[j, :n] for j, n in enumerate(chunk_len)]) for c in cols}
        cut = np.repeat(data.ds[co - 1], chunk_len)
        return rows, out, cut

    def score(self, metrics, rows: np.ndarray, point: np.ndarray, m: int):
        data = self.data
        series_of = np.searchsorted(data.offsets, rows, side="right") - 1
        order = np.argsort(rows, kind="stable")
        rows, point, series_of = rows[order], point[order], series_of[order]
        starts = np.flatnonzero(np.r_[True, series_of[1:] != series_of[:-1]])
        ends = np.r_[starts[1:], rows.size]
        ys, yh, hs, names = [], [], [], []
        for a, b in zip(starts, ends):
            s = int(series_of[a])
            ys.append(np.asarray(data.y[rows[a:b]]))
            yh.append(point[a:b])
            hs.append(np.asarray(data.y[data.offsets[s]:rows[a]]))
            names.append(str(data.ids[s]))
        fold, per = _score(metrics, ys, yh, hs, m)
        return fold, dict(zip(names, per)), len(names)


def _run(model, data, folds: List[Tuple[np.ndarray, np.ndarray]], infos: List[Dict[str, Any]], config,
         metrics, short_series: str, season_length, verbose: bool, excluded_pre: List[Dict[str, str]],
         refit_every: Optional[int] = 1) -> CVResults:
    from ..training.progress import Progress

    ev = _FoldEval(model, data, config, short_series)
    m = _season(data, season_length)
    alias = None
    fold_scores, series_scores, fold_infos, excluded = [], [], [], []
    pred_cols: Dict[str, List[np.ndarray]] = {}
    bar = Progress(len(folds), desc="cross-validation", enabled=verbose)
    fitted = None
    train_rows = n_train_series = 0
    try:
        for f, (tr, te) in enumerate(folds):
            exc = dict(excluded_pre[f]) if excluded_pre else {}
            if fitted is None or (refit_every and f % refit_every == 0):
                fitted, train_rows, n_train_series = ev.fit(f, tr, exc)
            alias = _alias(fitted)
            rows, out, cut = ev.forecast(f, fitted, te, exc)
            fs, per, n_test_series = ev.score(metrics, rows, out[alias], m)
            fold_scores.append(fs)
            series_scores.append(per)
            excluded.append(exc)
            fold_infos.append(FoldInfo(fold=f, train_rows=train_rows, test_rows=int(rows.size),
                                       n_train_series=n_train_series, n_test_series=n_test_series,
                                       **(infos[f] if infos else {})))
            order = np.argsort(rows, kind="stable")
            cols = {"fold": np.full(rows.size, f, np.int64), "unique_id": data.row_ids[rows][order],
                    "ds": data.ds[rows][order], "cutoff": cut[order], "y": data.y[rows][order]}
            cols.update({k: v[order] for k, v in out.items()})
            for k, v in cols.items():
                pred_cols.setdefault(k, []).append(v)
            bar.update(1, postfix=" ".join(f"{k}={v:.4g}" for k, v in list(fs.items())[:2]))
    finally:
        bar.close()
    preds = CVFrame({k: np.concatenate(v) for k, v in pred_cols.items()})
    return CVResults(metrics, fold_scores, series_scores, fold_infos, excluded, preds, alias or "")


# ============================================================================ validators
class CrossValidationSplitter:
    """What a custom splitter implements (subclassing is optional; any object with this method works):
    ``split(data) -> [(TrainIndex, TestIndex), ...]`` with row positions into ``data``."""

    def split(self, data: TimeSeriesDataFrame) -> List[Tuple[TrainIndex, TestIndex]]:  # pragma: no cover
        raise NotImplementedError


class _CrossValidate:
    """``cross_validate`` / ``cross_validate_async`` shared by every validator."""

    def _plan(self, data) -> Tuple[List[Tuple[np.ndarray, np.ndarray]], List[Dict[str, Any]], List[Dict[str, str]]]:
        raise NotImplementedError

    def split(self, data: TimeSeriesDataFrame) -> List[Tuple[TrainIndex, TestIndex]]:
        """The folds as (train rows, test rows) pairs of sorted int64 row positions into ``data``."""
        return self._plan(data)[0]

    def fold_info(self, data: TimeSeriesDataFrame) -> List[Dict[str, Any]]:
        """Per fold: time-axis positions and timestamps of the training and test parts, and the series
        left out (``excluded``)."""
        folds, infos, excl = self._plan(data)
        return [dict(fold=i, **(infos[i] if infos else {}), excluded=excl[i]) for i in range(len(folds))]

    def cross_validate(self, model, data: TimeSeriesDataFrame, config=None, metrics=None) -> CVResults:
        """Fit a fresh ``type(model)(model.config)`` on every fold's training rows (with
        ``fit_with_config(train, config)``, or ``fit(train)`` when ``config`` is None), forecast its test
        rows and score them with ``metrics`` (default: this validator's ``scoring_metrics``)."""
        metrics = self.scoring_metrics if metrics is None else _metric_list("metrics", metrics)
        folds, infos, excl = self._plan(data)
        return _run(model, data, folds, infos, config, metrics, self.short_series, self.season_length,
                    self.verbose, excl)

    async def cross_validate_async(self, model, data, config=None, metrics=None) -> CVResults:
        """Awaitable twin of :meth:`cross_validate` (runs in a worker thread)."""
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.cross_validate(model, data, config, metrics))


def _common_fields():
    return dict(
        scoring_metrics=cfg_field(DEFAULT_CV_METRICS, _metric_list,
                                  f"Metrics scored per fold ({', '.join(CV_METRICS)})."),
        short_series=cfg_field("raise", _choice(*SHORT_SERIES),
                               "'raise' on a series that cannot take part in a fold, or 'exclude' it (recorded)."),
        season_length=cfg_field(None, optional(positive_int), "Seasonal period of MASE (None: from the frequency)."),
        verbose=cfg_field(True, boolean, "Progress bar on a terminal."),
    )


def _time_plan(data, alignment: str, short_series: str, fold_ranges, series_groups=None):
    """Row folds from time-axis ranges. ``series_groups``: per fold, the series that are tested (their
    training rows are withheld); None: every series is trained on and tested."""
    pos, T = time_positions(data, alignment)
    series_of = np.repeat(np.arange(data.n_series), data.lengths)
    grid_ds = None
    if alignment == "ds" and data.freq is not None and data.is_datetime:
        grid_ds = data.freq.add(data.ds.min(), np.arange(T, dtype=np.int64))
    folds, infos, excl = [], [], []
    for f, (trr, ter) in enumerate(fold_ranges):
        tr_mask = (pos >= trr.start) & (pos < trr.stop)
        te_mask = (pos >= ter.start) & (pos < ter.stop)
        ex: Dict[str, str] = {}
        n_te = np.bincount(series_of[te_mask], minlength=data.n_series)
        n_tr = np.bincount(series_of[tr_mask], minlength=data.n_series)
        tested = np.ones(data.n_series, bool) if series_groups is None else np.isin(np.arange(data.n_series), series_groups[f])
        partial = np.flatnonzero(tested & (n_te < len(ter)))
        if partial.size:
            _short_split(f, short_series, ex, [str(data.ids[s]) for s in partial],
                         f"do not cover the whole test stretch (time positions {ter.start}..{ter.stop - 1}"
                         + (f", {V.format_ds(grid_ds[ter.start])}..{V.format_ds(grid_ds[ter.stop - 1])}"
                            if grid_ds is not None else "") + ")")
        if series_groups is None:
            notrain = np.flatnonzero(tested & (n_tr == 0) & (n_te == len(ter)))
            if notrain.size:
                _short_split(f, short_series, ex, [str(data.ids[s]) for s in notrain],
                             "have no rows in the training part")
        else:
            tr_mask &= ~tested[series_of]
        out = np.zeros(data.n_series, bool)
        if ex:
            out[[data.index_of(n) for n in ex]] = True
        te_mask &= tested[series_of] & ~out[series_of]
        tr_mask &= ~out[series_of]
        if not te_mask.any():
            raise ValueError(f"fold {f}: no series covers the test stretch")
        folds.append((np.flatnonzero(tr_mask), np.flatnonzero(te_mask)))
        info = dict(train_start=trr.start, train_end=trr.stop, test_start=ter.start, test_end=ter.stop)
        if grid_ds is not None:
            info.update(test_start_ds=grid_ds[ter.start], test_end_ds=grid_ds[ter.stop - 1])
        infos.append(info)
        excl.append(ex)
    return folds, infos, excl


def _short_split(fold: int, policy: str, ex: Dict[str, str], names: List[str], what: str) -> None:
    if policy == "raise":
        raise ValueError(f"fold {fold}: {len(names)} series {what}: {V.format_id_list([repr(n) for n in names])} "
                         f"(use alignment='end', fewer or shorter folds, or short_series='exclude' to leave "
                         f"them out of this fold)")
    for n in names:
        ex.setdefault(n, what)
    log.warning("cross-validation fold %d: leaving out %d series that %s", fold, len(names), what)


@config_class
class TimeSeriesCrossValidator(_CrossValidate):
    """Expanding- or sliding-window time-series cross-validation (see :func:`time_series_folds` for the
    fold boundaries and the module docstring for panels and scoring).

    ``TimeSeriesCrossValidator().with_n_splits(5).with_test_size(0.2).with_gap_size(7)
    .with_expanding_window(True).with_purge_size(3)``. On one series with ``expanding_window=True`` and
    ``purge_size=0`` the folds are scikit-learn's ``TimeSeriesSplit(n_splits, test_size=k, gap=gap_size)``.
    """

    n_splits: int = cfg_field(5, positive_int, "Number of folds.")
    test_size: Any = cfg_field(None, _test_size, "Test steps per fold (int), share of the time axis tested over "
                                                 "all folds (float in (0, 1)), or None: T // (n_splits + 1).")
    gap_size: int = cfg_field(0, nonneg_int, "Steps between the training part and the test stretch (as sklearn's gap).")
    expanding_window: bool = cfg_field(True, boolean, "True: training starts at the first step; False: a "
                                                      "sliding window of the first fold's length.")
    purge_size: int = cfg_field(0, nonneg_int, "Further observations dropped from the end of every training part.")
    max_train_size: Optional[int] = cfg_field(None, optional(positive_int), "Cap on the training length (sklearn's max_train_size).")
    alignment: str = cfg_field("ds", _choice(*ALIGNMENTS), "'ds': common calendar cutoffs; 'end': series aligned on their last value.")
    scoring_metrics: Tuple[str, ...] = _common_fields()["scoring_metrics"]
    short_series: str = _common_fields()["short_series"]
    season_length: Optional[int] = _common_fields()["season_length"]
    verbose: bool = _common_fields()["verbose"]

    def time_folds(self, n_positions: int) -> List[Tuple[range, range]]:
        """The folds of a time axis of ``n_positions`` steps (positions, not rows)."""
        return time_series_folds(n_positions, self.n_splits, self.test_size, self.gap_size, self.purge_size,
                                 self.expanding_window, self.max_train_size)

    def _plan(self, data):
        _, T = time_positions(data, self.alignment)
        return _time_plan(data, self.alignment, self.short_series, self.time_folds(T))


def blocked_folds(n_positions: int, n_splits: int, block_size: Optional[int], test_ratio: float,
                  gap_size: int = 0) -> List[Tuple[range, range]]:
    """Blocked folds of a time axis: ``n_splits`` non-overlapping blocks of ``block_size`` steps (None:
    ``T // n_splits``) at the end of the axis; in each block the last ``max(1, floor(test_ratio *
    block_size))`` steps are tested and the steps before them, less ``gap_size``, trained on. No step
    is trained on by two folds."""
    T = positive_int("n_positions", n_positions)
    n_splits = positive_int("n_splits", n_splits)
    B = T // n_splits if block_size is None else positive_int("block_size", block_size)
    if B * n_splits > T or B < 1:
        raise ValueError(f"{n_splits} blocks of {B} steps do not fit in a time axis of {T} steps")
    k = max(1, int(math.floor(test_ratio * B)))
    train = B - k - gap_size
    if train < 1:
        raise ValueError(f"a block of {B} steps with {k} test steps (test_ratio {test_ratio:g}) and gap_size "
                         f"{gap_size} leaves no training steps")
    out = []
    for i in range(n_splits):
        b0 = T - (n_splits - i) * B
        out.append((range(b0, b0 + train), range(b0 + B - k, b0 + B)))
    return out


@config_class
class BlockedTimeSeriesCrossValidator(_CrossValidate):
    """Blocked cross-validation: the time axis ends in ``n_splits`` disjoint blocks of ``block_size``
    steps; fold ``i`` trains on the start of block ``i`` and tests its last ``test_ratio`` (see
    :func:`blocked_folds`), so no observation is trained on twice. With ``series_splits=True`` the series
    are also cut into ``n_splits`` groups (consecutive in the frame's order, as ``np.array_split``) and
    fold ``i`` tests group ``i`` only, training on the other groups: the scores measure how a global model
    forecasts series it never saw (their earlier observations are still its inputs)."""

    n_splits: int = cfg_field(5, positive_int, "Number of blocks (folds).")
    block_size: Optional[int] = cfg_field(None, optional(positive_int), "Steps per block (None: T // n_splits).")
    test_ratio: float = cfg_field(0.2, _open_fraction, "Share of each block that is tested (its end).")
    series_splits: bool = cfg_field(False, boolean, "Also hold out a group of series per fold.")
    gap_size: int = cfg_field(0, nonneg_int, "Steps between a block's training and test parts.")
    alignment: str = cfg_field("ds", _choice(*ALIGNMENTS), "'ds': common calendar cutoffs; 'end': series aligned on their last value.")
    scoring_metrics: Tuple[str, ...] = _common_fields()["scoring_metrics"]
    short_series: str = _common_fields()["short_series"]
    season_length: Optional[int] = _common_fields()["season_length"]
    verbose: bool = _common_fields()["verbose"]

    def time_folds(self, n_positions: int) -> List[Tuple[range, range]]:
        return blocked_folds(n_positions, self.n_splits, self.block_size, self.test_ratio, self.gap_size)

    def series_groups(self, data: TimeSeriesDataFrame) -> Optional[List[np.ndarray]]:
        """Per fold, the positions of the held-out series (None without ``series_splits``)."""
        if not self.series_splits:
            return None
        if data.n_series < self.n_splits:
            raise ValueError(f"series_splits needs at least n_splits = {self.n_splits} series, the data has "
                             f"{data.n_series}")
        return np.array_split(np.arange(data.n_series), self.n_splits)

    def _plan(self, data):
        _, T = time_positions(data, self.alignment)
        return _time_plan(data, self.alignment, self.short_series, self.time_folds(T), self.series_groups(data))


@config_class
class CustomCrossValidator(_CrossValidate):
    """Cross-validation with your own splitter: ``CustomCrossValidator().with_splitter(s)
    .with_scoring_metrics(["mae", "rmse", "mape"])``, where ``s.split(data)`` returns
    ``[(TrainIndex, TestIndex), ...]`` (row positions; see :class:`CrossValidationSplitter`). The folds
    are checked with :func:`check_folds` before anything is fitted."""

    splitter: Any = cfg_field(None, _splitter, "An object with split(data) -> [(train_rows, test_rows), ...].")
    scoring_metrics: Tuple[str, ...] = _common_fields()["scoring_metrics"]
    short_series: str = _common_fields()["short_series"]
    season_length: Optional[int] = _common_fields()["season_length"]
    verbose: bool = _common_fields()["verbose"]

    def _plan(self, data):
        if self.splitter is None:
            raise ValueError("CustomCrossValidator has no splitter: call with_splitter(...) first")
        if not isinstance(data, TimeSeriesDataFrame):
            raise TypeError(f"data must be a TimeSeriesDataFrame, got {type(data).__name__}")
        folds = check_folds(data, self.splitter.split(data), source=type(self.splitter).__name__)
        return folds, [], [{} for _ in folds]


# ============================================================================ NeuralForecast-style
def cross_validation(model, data: TimeSeriesDataFrame, n_windows: int = 1, step_size: int = 1,
                     refit=False, *, config=None, alignment: str = "ds", short_series: str = "raise",
                     verbose: bool = True) -> CVFrame:
    """Rolling-window forecasts as NeuralForecast's ``cross_validation``: ``n_windows`` forecast windows of
    ``horizon`` steps at the end of the time axis, ``step_size`` apart (the last window ends at the
    axis' end); window ``j`` forecasts the ``horizon`` steps after its cutoff from the observations up to
    the cutoff. ``refit``: False fits once on the data before the first window's test steps; True fits a
    fresh model before every window on the data before that window; an int ``n`` refits every ``n``
    windows. Returns a :class:`CVFrame` with ``unique_id``, ``ds``, ``cutoff``, ``y`` and the model's
    columns, sorted by window then series then ds. ``config`` goes to ``fit_with_config``; ``verbose``
    draws a progress bar when stderr is a terminal."""
    n_windows = positive_int("n_windows", n_windows)
    step_size = positive_int("step_size", step_size)
    if isinstance(refit, bool):
        every = 1 if refit else 0
    elif isinstance(refit, numbers.Integral) and refit >= 1:
        every = int(refit)
    else:
        raise TypeError(f"refit must be True, False or an int >= 1, got {refit!r}")
    _choice(*SHORT_SERIES)("short_series", short_series)
    _, h = _model_sizes(model)
    if h is None:
        raise ValueError(f"{type(model).__name__} config needs a horizon for cross_validation")
    h = int(h)
    _, T = time_positions(data, alignment)
    span = h + step_size * (n_windows - 1)
    if span >= T:
        raise ValueError(f"n_windows={n_windows} windows of horizon {h}, step_size {step_size} need "
                         f"{span} test steps plus training data, but the time axis has {T} steps")
    first = T - span
    ranges = []
    for j in range(n_windows):
        t0 = first + j * step_size
        train_end = t0 if every else first
        ranges.append((range(0, train_end), range(t0, t0 + h)))
    folds, infos, excl = _time_plan(data, alignment, short_series, ranges)
    res = _run(model, data, folds, infos, config, ("mae",), short_series, None, verbose, excl,
               refit_every=every if every else None)
    p = res.predictions
    cols = {k: p[k] for k in p.columns if k != "fold"}
    return CVFrame(cols)
