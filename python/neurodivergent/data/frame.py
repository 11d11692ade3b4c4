"""TimeSeriesDataFrame: validated long-format time series stored CSR-like.

Long format as in NeuralForecast / StatsForecast: one row per (series, time) with columns
``unique_id``, ``ds``, ``y`` and optional exogenous columns. Storage has no per-series objects:

* ``ids``      (S,)   str      series ids in order of first appearance in the input (stable)
* ``offsets``  (S+1,) int64    rows of series ``i`` are ``offsets[i]:offsets[i+1]``
* ``ds``       (N,)   datetime64[s] (timestamps, one-second resolution) or int64 (integer steps)
* ``y``        (N,)   float64
* ``exog``     name -> (N,) float64
* ``static``   name -> (S,) array (float64 when every value is numeric, str otherwise)
* ``freq``     a :class:`~neurodivergent.data.frequency.Frequency`, or None only when every series
               has a single point and no frequency was given

Rows of a series are sorted by ``ds``. Unsorted input is sorted (stably, keeping the order of first
appearance of the series) rather than rejected. Everything else that is wrong is rejected at
construction with a specific ValueError (see :mod:`neurodivergent.data.validation`): missing
columns, empty data, non-numeric / NaN / inf values, unparseable or mixed ds, duplicate
(unique_id, ds), gaps against the frequency, empty ids, static columns that vary within a series.

Data without an id column is one series whose id is ``"series_0"`` (:data:`DEFAULT_SERIES_ID`).
Ids are stored as str (integer ids 1, 2 become "1", "2"). Arrays are read-only; ``series_y(i)`` is
a view. Timestamps are naive (no timezone); a trailing 'Z' is accepted and dropped.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import validation as V
from .csvio import format_floats, read_csv, write_csv
from .frequency import Frequency, coerce_frequency, infer_frequency

__all__ = ["TimeSeriesDataFrame", "DEFAULT_SERIES_ID"]

DEFAULT_SERIES_ID = "series_0"
_RESERVED = ("unique_id", "ds", "y")


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _import_optional(name: str, extra: str):
    try:
        return __import__(name)
    except ImportError:
        raise ImportError(
            f"{name} is required for this function but is not installed; install it with "
            f"pip install 'neurodivergent[{extra}]' (or pip install {name})"
        ) from None


def _static_values(values: np.ndarray) -> np.ndarray:
    """Static column as float64 when every value is numeric, else str."""
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64) if arr.dtype.kind != "b" else arr
    strs = arr.astype(str)
    try:
        return strs.astype(np.float64)
    except ValueError:
        return strs


def _ordered_groups(ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(unique ids in order of first appearance, per-row code into them)."""
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniq[order], rank[inverse.reshape(-1)]


class TimeSeriesDataFrame:
    """Validated long-format time series (see the module docstring).

    Build one with :meth:`from_csv`, :meth:`from_pandas`, :meth:`from_polars` or
    :meth:`from_arrays`. The constructor itself takes the CSR form directly (``ids``, ``offsets``,
    ``ds``, ``y``; rows sorted by ds within each series) and validates it.
    """

    __slots__ = ("_ids", "_offsets", "_ds", "_y", "_freq", "_exog", "_static", "_index")

    def __init__(self, ids, offsets, ds, y, *, freq=None, exog: Optional[Mapping[str, Any]] = None,
                 static: Optional[Mapping[str, Any]] = None):
        ids = np.asarray(ids).astype(str)
        offsets = np.asarray(offsets)
        if offsets.dtype.kind not in "iu":
            raise TypeError(f"offsets must be integers, got dtype {offsets.dtype}")
        offsets = offsets.astype(np.int64)
        if ids.ndim != 1 or offsets.ndim != 1 or offsets.shape[0] != ids.shape[0] + 1:
            raise ValueError(f"offsets must have shape (S+1,) = ({ids.shape[0] + 1},), got {offsets.shape}")
        if offsets[0] != 0 or np.any(np.diff(offsets) <= 0):
            raise ValueError("offsets must start at 0 and be strictly increasing (no empty series)")
        ds = V.parse_ds(np.asarray(ds))
        n = int(offsets[-1])
        y = V.parse_float(y, column="y")
        if ds.shape != (n,) or y.shape != (n,):
            raise ValueError(f"ds and y must have shape ({n},) = (offsets[-1],), got {ds.shape} and {y.shape}")
        if ids.shape[0] == 0:
            raise ValueError("no data rows: a TimeSeriesDataFrame needs at least one series")
        V.check_ids(ids, column="unique_id")
        if np.unique(ids).shape[0] != ids.shape[0]:
            u, c = np.unique(ids, return_counts=True)
            raise ValueError(f"ids must be unique; repeated: {V.format_id_list([repr(str(v)) for v in u[c > 1]])}")
        exog_out: Dict[str, np.ndarray] = {}
        for name, values in (exog or {}).items():
            _check_name(name, "exogenous")
            arr = V.parse_float(values, column=name)
            if arr.shape != (n,):
                raise ValueError(f"exogenous column {name!r} must have shape ({n},), got {arr.shape}")
            exog_out[name] = arr
        static_out: Dict[str, np.ndarray] = {}
        for name, values in (static or {}).items():
            _check_name(name, "static")
            if name in exog_out:
                raise ValueError(f"column {name!r} is given both as exogenous and as static")
            arr = _static_values(values)
            if arr.shape != ids.shape:
                raise ValueError(f"static column {name!r} must have shape ({ids.shape[0]},) (one per series), got {arr.shape}")
            static_out[name] = arr
        # within-series order
        if n > 1:
            step = ds[1:] > ds[:-1]
            step[offsets[1:-1] - 1] = True
            if not np.all(step):
                V.check_duplicates(ids, offsets, ds)
                raise ValueError("ds must be increasing within each series (sort the rows, or use from_arrays)")
        self._init_validated(ids, offsets, ds, y, freq, exog_out, static_out, declared=freq is not None)

    # ------------------------------------------------------------ internal construction
    def _init_validated(self, ids, offsets, ds, y, freq, exog, static, *, declared: bool, check=True):
        if check:
            V.check_duplicates(ids, offsets, ds)
            V.check_finite(y, column="y", ids=ids, offsets=offsets, ds=ds)
            for name, arr in exog.items():
                V.check_finite(arr, column=name, ids=ids, offsets=offsets, ds=ds)
            freq = coerce_frequency(freq)
            if freq is not None:
                if freq.is_integer != (ds.dtype.kind in "iu"):
                    kind = "integer time steps" if ds.dtype.kind in "iu" else "timestamps"
                    raise ValueError(f"freq {str(freq)!r} does not match ds, which holds {kind}")
            else:
                freq = infer_frequency(ds[offsets[i]:offsets[i + 1]] for i in range(ids.shape[0]))
            if freq is not None:
                V.check_regular(freq, ids, offsets, ds, declared=declared)
        self._ids = _readonly(ids)
        self._offsets = _readonly(offsets)
        self._ds = _readonly(ds)
        self._y = _readonly(y)
        self._freq = freq
        self._exog = {k: _readonly(v) for k, v in exog.items()}
        self._static = {k: _readonly(v) for k, v in static.items()}
        self._index = None

    @classmethod
    def _trusted(cls, ids, offsets, ds, y, freq, exog, static) -> "TimeSeriesDataFrame":
        obj = cls.__new__(cls)
        obj._init_validated(ids, offsets, ds, y, freq, exog, static, declared=True, check=False)
        return obj

    @classmethod
    def _from_rows(cls, ids_raw, ds_raw, y_raw, *, freq=None, exog_raw: Optional[Mapping[str, Any]] = None,
                   static_raw: Optional[Mapping[str, Any]] = None, lines: Optional[np.ndarray] = None,
                   source: str = "data", names: Optional[Dict[str, str]] = None) -> "TimeSeriesDataFrame":
        """Validate long-format rows (one entry per row in every argument) and build the frame."""
        names = names or {}
        id_name, ds_name, y_name = names.get("id", "unique_id"), names.get("ds", "ds"), names.get("y", "y")
        freq = coerce_frequency(freq)
        ds_raw = np.asarray(ds_raw)
        n = ds_raw.shape[0]
        if n == 0:
            raise ValueError(f"{source}: no data rows")
        if ids_raw is None:
            ids = np.full(n, DEFAULT_SERIES_ID)
        else:
            ids_arr = np.asarray(ids_raw)
            if ids_arr.dtype.kind == "O":
                ids = np.array(["" if v is None else str(v) for v in ids_arr.tolist()], dtype=str)
            else:
                ids = ids_arr.astype(str)
            if ids.shape != (n,):
                raise ValueError(f"{source}: {id_name!r} has {ids.shape[0]} values but {ds_name!r} has {n}")
            ids = np.char.strip(ids)
            V.check_ids(ids, column=id_name, lines=lines)
        ds = V.parse_ds(ds_raw, column=ds_name, ids=ids, lines=lines)
        y_arr = np.asarray(y_raw)
        if y_arr.shape[:1] != (n,):
            raise ValueError(f"{source}: {y_name!r} has {y_arr.shape[0] if y_arr.ndim else 0} values but {ds_name!r} has {n}")
        y = V.parse_float(y_arr, column=y_name, ids=ids, ds=ds, lines=lines)
        exog: Dict[str, np.ndarray] = {}
        hint = " (a column that is constant within each series can be declared static: static_cols=[...])"
        for name, values in (exog_raw or {}).items():
            arr = np.asarray(values)
            if arr.shape != (n,):
                raise ValueError(f"{source}: exogenous column {name!r} has shape {arr.shape}, expected ({n},)")
            exog[name] = V.parse_float(arr, column=name, ids=ids, ds=ds, lines=lines, hint=hint)
        static_rows: Dict[str, np.ndarray] = {}
        for name, values in (static_raw or {}).items():
            arr = np.asarray(values)
            if arr.shape != (n,):
                raise ValueError(f"{source}: static column {name!r} has shape {arr.shape}, expected ({n},)")
            static_rows[name] = _static_values(arr)
        uniq, codes = _ordered_groups(ids)
        key = ds.view(np.int64)
        order = np.lexsort((key, codes))
        if not np.all(order[1:] > order[:-1]):  # not already sorted
            ds = ds[order]
            y = y[order]
            exog = {k: v[order] for k, v in exog.items()}
            static_rows = {k: v[order] for k, v in static_rows.items()}
        offsets = np.zeros(uniq.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(codes, minlength=uniq.shape[0]), out=offsets[1:])
        static = {k: V.check_static(k, v, uniq, offsets, ds) for k, v in static_rows.items()}
        obj = cls.__new__(cls)
        obj._init_validated(uniq, offsets, ds, y, freq, exog, static, declared=freq is not None)
        return obj

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(cls, unique_id, ds, y, *, freq=None, static: Optional[Mapping[str, Any]] = None,
                    **exogenous) -> "TimeSeriesDataFrame":
        """Long-format arrays, one entry per row: ``unique_id`` (or None for a single series named
        "series_0"), ``ds`` (datetime64, ISO strings or ints), ``y`` (numbers) and exogenous columns
        as keyword arguments. ``static``: name -> per-row values (constant within each series) or
        name -> {series id: value}. Rows may come in any order; they are sorted stably by ds."""
        if static is not None and not isinstance(static, Mapping):
            raise TypeError(f"static must be a mapping of column name -> values, got {type(static).__name__}")
        ds_arr = np.asarray(ds)
        if ds_arr.ndim != 1:
            raise ValueError(f"ds must be one-dimensional (one value per row), got shape {ds_arr.shape}")
        for name in exogenous:
            _check_name(name, "exogenous")
        static_rows = {}
        per_series = {}
        for name, values in (static or {}).items():
            _check_name(name, "static")
            if isinstance(values, Mapping):
                per_series[name] = values
            else:
                static_rows[name] = values
        frame = cls._from_rows(unique_id, ds_arr, y, freq=freq, exog_raw=exogenous, static_raw=static_rows,
                               source="from_arrays")
        if per_series:
            new_static = dict(frame._static)
            for name, mapping in per_series.items():
                keys = {str(k): v for k, v in mapping.items()}
                missing = [repr(str(i)) for i in frame._ids if str(i) not in keys]
                if missing:
                    raise ValueError(f"static column {name!r} has no value for series {V.format_id_list(missing)}")
                unknown = [repr(k) for k in keys if k not in set(frame._ids.tolist())]
                if unknown:
                    raise ValueError(f"static column {name!r} names unknown series {V.format_id_list(unknown)}")
                new_static[name] = _readonly(_static_values(np.array([keys[str(i)] for i in frame._ids])))
            frame._static = new_static
        return frame

    @classmethod
    def from_csv(cls, path, *, id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y",
                 freq=None, delimiter: str = ",", static_cols: Optional[Sequence[str]] = None,
                 exog_cols: Optional[Sequence[str]] = None) -> "TimeSeriesDataFrame":
        """Read a long-format CSV (optionally .gz). Columns other than id/time/target are exogenous
        (float) unless listed in ``static_cols``; ``exog_cols`` restricts the exogenous columns to
        those named (the others are not read). Without an ``id_col`` column the file is one series
        named "series_0" (an explicitly given id_col must exist)."""
        for arg, val in (("id_col", id_col), ("time_col", time_col), ("target_col", target_col)):
            if not isinstance(val, str):
                raise TypeError(f"{arg} must be a str, got {type(val).__name__}")
        table = read_csv(path, delimiter=delimiter)
        return cls._from_table(table.header, table.columns, id_col=id_col, time_col=time_col,
                               target_col=target_col, freq=freq, static_cols=static_cols,
                               exog_cols=exog_cols, lines=table.line_numbers, source=table.path,
                               id_default=id_col == "unique_id")

    @classmethod
    def _from_table(cls, header, columns, *, id_col, time_col, target_col, freq, static_cols, exog_cols,
                    lines, source, id_default) -> "TimeSeriesDataFrame":
        header = list(header)
        static_cols = _str_list(static_cols, "static_cols")
        exog_given = exog_cols is not None
        exog_cols = _str_list(exog_cols, "exog_cols")
        required = [(time_col, "time_col"), (target_col, "target_col")]
        if not (id_default and id_col not in header):
            required.insert(0, (id_col, "id_col"))
        required += [(c, "static_cols") for c in static_cols] + [(c, "exog_cols") for c in exog_cols]
        lower = {h.lower(): h for h in header}
        hints = [f"{name!r} -> {lower[name.lower()]!r}" for name, _ in required
                 if name not in header and name.lower() in lower]
        hint = f" (column names are case-sensitive: {', '.join(hints)})" if hints else ""
        V.check_required_columns(header, required, source=source, hint=hint)
        has_id = id_col in header
        used = {time_col, target_col} | ({id_col} if has_id else set())
        clash = [c for c in static_cols if c in used] + [c for c in exog_cols if c in used or c in static_cols]
        if clash:
            raise ValueError(f"{source}: column(s) {clash} cannot be both static/exogenous and id/time/target")
        if not exog_given:
            exog_cols = [h for h in header if h not in used and h not in static_cols]
        for c in exog_cols + static_cols:
            if c in _RESERVED:
                raise ValueError(
                    f"{source}: column {c!r} would be an extra column but its name is reserved for "
                    f"{{unique_id, ds, y}}; rename it"
                )
        return cls._from_rows(
            columns[id_col] if has_id else None, columns[time_col], columns[target_col], freq=freq,
            exog_raw={c: columns[c] for c in exog_cols}, static_raw={c: columns[c] for c in static_cols},
            lines=lines, source=source, names={"id": id_col, "ds": time_col, "y": target_col},
        )

    @classmethod
    def from_pandas(cls, df, *, id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y",
                    freq=None, static_cols: Optional[Sequence[str]] = None,
                    exog_cols: Optional[Sequence[str]] = None) -> "TimeSeriesDataFrame":
        """From a pandas DataFrame in long format (an id in the index is accepted too).
        Timezone-aware timestamps are converted to naive UTC."""
        pd = _import_optional("pandas", "pandas")
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"from_pandas expects a pandas.DataFrame, got {type(df).__name__}")
        if id_col not in df.columns and id_col in (df.index.names or []):
            df = df.reset_index()
        header = [str(c) for c in df.columns]
        columns = {}
        for c, h in zip(df.columns, header):
            col = df[c]
            if isinstance(col.dtype, pd.DatetimeTZDtype):
                col = col.dt.tz_convert("UTC").dt.tz_localize(None)
            if h == time_col or col.dtype.kind in "Mmiufb":
                arr = col.to_numpy()
            else:
                arr = col.to_numpy(dtype=object)
            columns[h] = arr
        return cls._from_table(header, columns, id_col=id_col, time_col=time_col, target_col=target_col,
                               freq=freq, static_cols=static_cols, exog_cols=exog_cols, lines=None,
                               source="from_pandas", id_default=id_col == "unique_id")

    @classmethod
    def from_polars(cls, df, *, id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y",
                    freq=None, static_cols: Optional[Sequence[str]] = None,
                    exog_cols: Optional[Sequence[str]] = None) -> "TimeSeriesDataFrame":
        """From a polars DataFrame in long format."""
        pl = _import_optional("polars", "polars")
        if not isinstance(df, pl.DataFrame):
            raise TypeError(f"from_polars expects a polars.DataFrame, got {type(df).__name__}")
        header = list(df.columns)
        columns = {}
        for h in header:
            s = df[h]
            if isinstance(s.dtype, pl.Datetime) and getattr(s.dtype, "time_zone", None):
                s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            columns[h] = s.to_numpy()
        return cls._from_table(header, columns, id_col=id_col, time_col=time_col, target_col=target_col,
                               freq=freq, static_cols=static_cols, exog_cols=exog_cols, lines=None,
                               source="from_polars", id_default=id_col == "unique_id")

    # ------------------------------------------------------------ storage accessors
    @property
    def ids(self) -> np.ndarray:
        return self._ids

    @property
    def offsets(self) -> np.ndarray:
        return self._offsets

    @property
    def ds(self) -> np.ndarray:
        return self._ds

    @property
    def y(self) -> np.ndarray:
        return self._y

    @property
    def freq(self) -> Optional[Frequency]:
        return self._freq

    @property
    def exog(self) -> Dict[str, np.ndarray]:
        return dict(self._exog)

    @property
    def static(self) -> Dict[str, np.ndarray]:
        return dict(self._static)

    @property
    def n_series(self) -> int:
        return int(self._ids.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self._offsets)

    @property
    def is_datetime(self) -> bool:
        return self._ds.dtype.kind == "M"

    @property
    def columns(self) -> List[str]:
        return ["unique_id", "ds", "y", *self._exog, *self._static]

    @property
    def row_ids(self) -> np.ndarray:
        """(N,) the series id of every row."""
        return np.repeat(self._ids, self.lengths)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def index_of(self, key: Union[int, str]) -> int:
        """Position of a series given its id (str) or position (int)."""
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            i = int(key)
            if not -self.n_series <= i < self.n_series:
                raise IndexError(f"series index {i} out of range for {self.n_series} series")
            return i % self.n_series
        if isinstance(key, str):
            if self._index is None:
                self._index = {k: i for i, k in enumerate(self._ids.tolist())}
            try:
                return self._index[key]
            except KeyError:
                raise KeyError(f"unknown series id {key!r}") from None
        raise TypeError(f"series key must be an int position or a str id, got {type(key).__name__}")

    def series_y(self, i: Union[int, str]) -> np.ndarray:
        """Read-only view of the values of series ``i`` (position or id)."""
        i = self.index_of(i)
        return self._y[self._offsets[i]:self._offsets[i + 1]]

    def series_ds(self, i: Union[int, str]) -> np.ndarray:
        i = self.index_of(i)
        return self._ds[self._offsets[i]:self._offsets[i + 1]]

    def series_exog(self, i: Union[int, str], name: str) -> np.ndarray:
        i = self.index_of(i)
        if name not in self._exog:
            raise KeyError(f"no exogenous column {name!r}; have {list(self._exog)}")
        return self._exog[name][self._offsets[i]:self._offsets[i + 1]]

    def last_ds(self) -> np.ndarray:
        """(S,) the last timestamp of every series."""
        return self._ds[self._offsets[1:] - 1]

    def first_ds(self) -> np.ndarray:
        return self._ds[self._offsets[:-1]]

    def future_ds(self, h: int) -> np.ndarray:
        """(S, h) the next ``h`` timestamps of every series, one frequency step apart."""
        h = _positive_int(h, "h")
        if self._freq is None:
            raise ValueError("cannot compute future timestamps: the frequency is unknown (every series has a "
                             "single point); build the frame with freq=...")
        return self._freq.add(self.last_ds()[:, None], np.arange(1, h + 1, dtype=np.int64)[None, :])

    # ------------------------------------------------------------ checks and slicing
    def check_length(self, min_length: int, *, what: str = "") -> None:
        """Raise ValueError naming every series shorter than ``min_length`` (first five and a
        count), e.g. "3 series are shorter than input_size + horizon = 120 (need >= 120 points):
        'H1' (96), 'H7' (100), 'H9' (101)"."""
        min_length = _positive_int(min_length, "min_length", allow_zero=True)
        if not isinstance(what, str):
            raise TypeError(f"what must be a str, got {type(what).__name__}")
        msg = V.shortness_message(self.lengths, self._ids, min_length, what)
        if msg is not None:
            raise ValueError(msg)

    def _take_series(self, idx: np.ndarray) -> "TimeSeriesDataFrame":
        idx = np.asarray(idx, dtype=np.int64)
        lengths = self.lengths[idx]
        offsets = np.zeros(idx.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        rows = np.concatenate([np.arange(self._offsets[i], self._offsets[i + 1]) for i in idx]) if idx.size else np.zeros(0, np.int64)
        return self._trusted(self._ids[idx], offsets, self._ds[rows], self._y[rows], self._freq,
                             {k: v[rows] for k, v in self._exog.items()},
                             {k: v[idx] for k, v in self._static.items()})

    def subset(self, ids) -> "TimeSeriesDataFrame":
        """A frame with the given series (ids or positions), in the order given."""
        if isinstance(ids, (str, int, np.integer)):
            ids = [ids]
        keys = list(ids)
        if not keys:
            raise ValueError("subset() needs at least one series id")
        unknown = [repr(k) for k in keys if isinstance(k, str) and k not in set(self._ids.tolist())]
        if unknown:
            raise ValueError(f"unknown series id(s): {V.format_id_list(unknown)} ({self.n_series} series available)")
        idx = np.array([self.index_of(k) for k in keys], dtype=np.int64)
        if np.unique(idx).shape[0] != idx.shape[0]:
            raise ValueError("subset() got the same series more than once")
        return self._take_series(idx)

    def _row_mask_frame(self, keep: np.ndarray, lengths: np.ndarray) -> "TimeSeriesDataFrame":
        offsets = np.zeros(self.n_series + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return self._trusted(self._ids, offsets, self._ds[keep], self._y[keep], self._freq,
                             {k: v[keep] for k, v in self._exog.items()}, dict(self._static))

    def split_last(self, h: int) -> Tuple["TimeSeriesDataFrame", "TimeSeriesDataFrame"]:
        """(train, test): the last ``h`` points of every series held out as ``test``."""
        h = _positive_int(h, "h")
        msg = V.shortness_message(self.lengths, self._ids, h + 1, f"h + 1 (split_last(h={h}))")
        if msg is not None:
            raise ValueError(msg + "; every series needs at least one training point")
        pos = np.arange(len(self)) - np.repeat(self._offsets[:-1], self.lengths)
        test_mask = pos >= np.repeat(self.lengths - h, self.lengths)
        train = self._row_mask_frame(~test_mask, self.lengths - h)
        test = self._row_mask_frame(test_mask, np.full(self.n_series, h, dtype=np.int64))
        return train, test

    def head(self, n: int = 5) -> List[Tuple[str, str, float]]:
        n = _positive_int(n, "n", allow_zero=True)
        rows = range(min(n, len(self)))
        ids = self.row_ids
        return [(str(ids[r]), V.format_ds(self._ds[r]), float(self._y[r])) for r in rows]

    # ------------------------------------------------------------ comparison and repr
    def equals(self, other: "TimeSeriesDataFrame") -> bool:
        """Same ids, rows, values, frequency, exogenous and static columns."""
        if not isinstance(other, TimeSeriesDataFrame):
            return False
        if (self._freq != other._freq or list(self._exog) != list(other._exog)
                or list(self._static) != list(other._static)):
            return False
        if not (np.array_equal(self._ids, other._ids) and np.array_equal(self._offsets, other._offsets)
                and self._ds.dtype == other._ds.dtype and np.array_equal(self._ds, other._ds)
                and np.array_equal(self._y, other._y)):
            return False
        for k in self._exog:
            if not np.array_equal(self._exog[k], other._exog[k]):
                return False
        for k in self._static:
            if self._static[k].dtype.kind != other._static[k].dtype.kind or not np.array_equal(self._static[k], other._static[k]):
                return False
        return True

    def __repr__(self) -> str:
        lengths = self.lengths
        span = f"{V.format_ds(self._ds.min())}..{V.format_ds(self._ds.max())}"
        lens = f"{int(lengths.min())}" if lengths.min() == lengths.max() else f"{int(lengths.min())}..{int(lengths.max())}"
        extra = ""
        if self._exog:
            extra += f", exog={list(self._exog)}"
        if self._static:
            extra += f", static={list(self._static)}"
        ids = ", ".join(repr(str(i)) for i in self._ids[:3]) + (", ..." if self.n_series > 3 else "")
        freq = str(self._freq) if self._freq is not None else None
        return (f"TimeSeriesDataFrame(n_series={self.n_series}, rows={len(self)}, freq={freq!r}, "
                f"ds={span}, length={lens}, ids=[{ids}]{extra})")

    # ------------------------------------------------------------ export
    def to_dict(self) -> Dict[str, np.ndarray]:
        """Column name -> (N,) array for every column (static columns repeated per row)."""
        out: Dict[str, np.ndarray] = {"unique_id": self.row_ids, "ds": self._ds.copy(), "y": self._y.copy()}
        for k, v in self._exog.items():
            out[k] = v.copy()
        for k, v in self._static.items():
            out[k] = np.repeat(v, self.lengths)
        return out

    def to_csv(self, path) -> None:
        """Write the frame as long-format CSV (ISO timestamps, shortest exact float text, '.gz'
        compressed when the name ends in .gz), atomically."""
        header = self.columns
        cols: List[List[str]] = [self.row_ids.tolist(), V.format_ds_array(self._ds), format_floats(self._y)]
        for v in self._exog.values():
            cols.append(format_floats(v))
        for v in self._static.values():
            rep = np.repeat(v, self.lengths)
            cols.append(format_floats(rep) if rep.dtype.kind == "f" else rep.astype(str).tolist())
        write_csv(path, header, cols)

    def to_pandas(self):
        """A pandas DataFrame (ds as datetime64[ns] for timestamps, int64 otherwise)."""
        pd = _import_optional("pandas", "pandas")
        d = self.to_dict()
        if self.is_datetime:
            d["ds"] = d["ds"].astype("datetime64[ns]")
        return pd.DataFrame(d)

    def to_polars(self):
        pl = _import_optional("polars", "polars")
        d = self.to_dict()
        if self.is_datetime:
            d["ds"] = d["ds"].astype("datetime64[us]")  # polars has no second resolution
        return pl.DataFrame(d)


# -------------------------------------------------------------------- helpers
def _check_name(name, kind: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} column names must be str, got {type(name).__name__}")
    if name in _RESERVED:
        raise ValueError(f"{kind} column name {name!r} is reserved for the unique_id / ds / y columns")


def _str_list(value, arg: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        raise TypeError(f"{arg} must be a list of column names, not a str (did you mean [{value!r}]?)")
    out = list(value)
    for v in out:
        if not isinstance(v, str):
            raise TypeError(f"{arg} must contain str column names, got {type(v).__name__}")
    return out


def _positive_int(value, name: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '>= 1'}, got {value}")
    return int(value)
