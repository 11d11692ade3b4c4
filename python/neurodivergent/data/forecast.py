"""ForecastFrame: what ``model.predict`` returns.

Long format like the input: columns ``unique_id`` (one per row), ``ds``, then one float column per
model / quantity ("MLP", "MLP-lo-80", "MLP-hi-80", ...). Every series has the same horizon ``h``;
values are stored as (S, h) float64 arrays and flattened row-major (series by series) when a column
is read as a whole.

A ForecastFrame written with :meth:`to_csv` reads back as a TimeSeriesDataFrame with
``TimeSeriesDataFrame.from_csv(path, target_col="MLP")`` (the other model columns then come back as
exogenous columns).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from . import validation as V
from .csvio import format_floats, write_csv
from .frame import TimeSeriesDataFrame, _import_optional, _readonly
from .frequency import Frequency, coerce_frequency

__all__ = ["ForecastFrame"]


class ForecastFrame:
    """Forecasts of S series over a horizon h: ``ids`` (S,), ``ds`` (S, h) and one (S, h) float64
    array per column. ``frame["MLP"]`` is the flat (S*h,) column; ``frame.values("MLP")`` the (S, h)
    matrix."""

    __slots__ = ("_ids", "_ds", "_values", "_freq")

    def __init__(self, ids, ds, values: Mapping[str, object], *, freq=None):
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"ids must have shape (S,), got {ids.shape}")
        ids = ids.astype(str)
        S = ids.shape[0]
        ds = np.asarray(ds)
        if ds.ndim != 2 or ds.shape[0] != S:
            raise ValueError(f"ds must have shape (S, h) = ({S}, h), got {ds.shape}")
        if ds.dtype.kind == "M":
            ds = ds.astype("datetime64[s]")
        elif ds.dtype.kind in "iu":
            ds = ds.astype(np.int64)
        else:
            ds = V.parse_ds(ds.reshape(-1)).reshape(ds.shape)
        if not isinstance(values, Mapping):
            raise TypeError(f"values must be a mapping of column name -> (S, h) array, got {type(values).__name__}")
        if np.unique(ids).shape[0] != S:
            u, c = np.unique(ids, return_counts=True)
            raise ValueError(f"ids must be unique; repeated: {V.format_id_list([repr(str(v)) for v in u[c > 1]])}")
        out: Dict[str, np.ndarray] = {}
        for name, arr in values.items():
            if not isinstance(name, str):
                raise TypeError(f"column names must be str, got {type(name).__name__}")
            if name in ("unique_id", "ds") or name == "":
                raise ValueError(f"column name {name!r} is reserved or empty")
            a = np.asarray(arr)
            if a.dtype.kind not in "fiu":
                raise TypeError(f"column {name!r} must be numeric, got dtype {a.dtype}")
            a = a.astype(np.float64)
            if a.shape != ds.shape:
                raise ValueError(f"column {name!r} must have shape {ds.shape} (S, h), got {a.shape}")
            out[name] = _readonly(a)
        self._ids = _readonly(ids)
        self._ds = _readonly(ds)
        self._values = out
        self._freq: Optional[Frequency] = coerce_frequency(freq)

    @classmethod
    def from_arrays(cls, ids, ds, values: Mapping[str, object], *, freq=None) -> "ForecastFrame":
        """``ids`` (S,), ``ds`` (S, h), ``values`` {name: (S, h)}."""
        return cls(ids, ds, values, freq=freq)

    # ------------------------------------------------------------ accessors
    @property
    def ids(self) -> np.ndarray:
        return self._ids

    @property
    def ds(self) -> np.ndarray:
        """(S, h) timestamps."""
        return self._ds

    @property
    def freq(self) -> Optional[Frequency]:
        return self._freq

    @property
    def n_series(self) -> int:
        return int(self._ids.shape[0])

    @property
    def horizon(self) -> int:
        return int(self._ds.shape[1])

    @property
    def model_columns(self) -> List[str]:
        return list(self._values)

    @property
    def columns(self) -> List[str]:
        return ["unique_id", "ds", *self._values]

    def __len__(self) -> int:
        return self.n_series * self.horizon

    def __contains__(self, name) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> np.ndarray:
        if name == "unique_id":
            return np.repeat(self._ids, self.horizon)
        if name == "ds":
            return self._ds.reshape(-1)
        if name not in self._values:
            raise KeyError(f"no column {name!r}; columns are {self.columns}")
        return self._values[name].reshape(-1)

    def values(self, column: str) -> np.ndarray:
        """(S, h) values of a model column."""
        if column not in self._values:
            raise KeyError(f"no model column {column!r}; model columns are {self.model_columns}")
        return self._values[column]

    def to_numpy(self, column: str) -> np.ndarray:
        """(S, h) values of a model column (same as :meth:`values`)."""
        return self.values(column)

    def series(self, key) -> Dict[str, np.ndarray]:
        """{column: (h,) values} of one series (id or position)."""
        if isinstance(key, str):
            hits = np.nonzero(self._ids == key)[0]
            if hits.size == 0:
                raise KeyError(f"unknown series id {key!r}")
            i = int(hits[0])
        else:
            i = int(key)
        out = {"ds": self._ds[i]}
        out.update({k: v[i] for k, v in self._values.items()})
        return out

    # ------------------------------------------------------------ export
    def to_dict(self) -> Dict[str, np.ndarray]:
        d = {"unique_id": self["unique_id"], "ds": self["ds"].copy()}
        for k in self._values:
            d[k] = self[k].copy()
        return d

    def to_csv(self, path) -> None:
        """Long-format CSV (unique_id, ds, model columns), written atomically."""
        cols = [self["unique_id"].tolist(), V.format_ds_array(self["ds"])]
        cols += [format_floats(self[k]) for k in self._values]
        write_csv(path, self.columns, cols)

    def to_pandas(self):
        pd = _import_optional("pandas", "pandas")
        d = self.to_dict()
        if d["ds"].dtype.kind == "M":
            d["ds"] = d["ds"].astype("datetime64[ns]")
        return pd.DataFrame(d)

    def to_polars(self):
        pl = _import_optional("polars", "polars")
        d = self.to_dict()
        if d["ds"].dtype.kind == "M":
            d["ds"] = d["ds"].astype("datetime64[us]")  # polars has no second resolution
        return pl.DataFrame(d)

    def to_timeseries(self, column: str) -> TimeSeriesDataFrame:
        """The forecasts of one model column as a TimeSeriesDataFrame (target ``y``)."""
        vals = self.values(column)
        return TimeSeriesDataFrame.from_arrays(self["unique_id"], self["ds"], vals.reshape(-1), freq=self._freq)

    def __repr__(self) -> str:
        head_rows = min(len(self), 5)
        cols = self.columns
        ids = self["unique_id"]
        ds = self["ds"]
        lines = [f"ForecastFrame(n_series={self.n_series}, horizon={self.horizon}, columns={cols})"]
        table = [cols]
        for r in range(head_rows):
            row = [str(ids[r]), V.format_ds(ds[r])] + [f"{self[k][r]:.6g}" for k in self._values]
            table.append(row)
        widths = [max(len(row[c]) for row in table) for c in range(len(cols))]
        for row in table:
            lines.append("  " + "  ".join(v.rjust(w) for v, w in zip(row, widths)))
        if len(self) > head_rows:
            lines.append(f"  ... ({len(self)} rows)")
        return "\n".join(lines)
