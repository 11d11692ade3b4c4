"""Frequencies of time series: calendar-aware steps over numpy datetime64 (or integer steps).

A :class:`Frequency` is a unit plus a multiple:

===========  =====================================================  ==============
unit         meaning                                                 seasonality
===========  =====================================================  ==============
``int``      integer time steps (``ds`` is int64); ``str()`` = "3"   1
``s``        seconds                                                 60 / n (minute)
``min``      minutes                                                 1440 / n (day)
``H``        hours                                                   24 / n (day)
``D``        days                                                    7 / n (week)
``W``        weeks (7 days, keeps the weekday of the data)           52 / n (year)
``M``        calendar months                                         12 / n (year)
``Q``        calendar quarters (3 months)                            4 / n (year)
``Y``        calendar years (12 months)                              1
===========  =====================================================  ==============

The default seasonal period (:attr:`Frequency.seasonality`) is the natural cycle above divided by
the multiple when it divides evenly, and 1 otherwise (e.g. "15min" -> 96, "2H" -> 12, "3D" -> 1,
"2M" -> 6). It is only a default; models take an explicit season where it matters.

Month-based units (M, Q, Y) carry an *anchor*:

* ``"start"`` (written ``MS`` / ``QS`` / ``YS``): the first day of the month;
* ``"end"`` (``ME`` / ``QE`` / ``YE``): the last day of the month (Jan 31, Feb 28/29, ...);
* a day of month ``d`` (``M@15``): day ``d``, clipped to the month's length (day 30 -> Feb 28);
* ``None`` (plain ``M``): keep the day of the timestamp being moved, clipped; a timestamp on the
  last day of its month is treated as month-end anchored.

The time of day of a timestamp is kept by month-based steps. :func:`infer_frequency` records the
anchor it observes, so that ``future_ds`` continues a month-end series with month ends.
Only numpy datetime64 arithmetic is used; timestamps are ``datetime64[s]``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Optional, Sequence, Union

import numpy as np

__all__ = ["Frequency", "infer_frequency"]

_FIXED_SECONDS = {"s": 1, "min": 60, "H": 3600, "D": 86400, "W": 7 * 86400}
_MONTHS = {"M": 1, "Q": 3, "Y": 12}
_CYCLE = {"s": 60, "min": 1440, "H": 24, "D": 7, "W": 52, "M": 12, "Q": 4, "Y": 1}
_UNITS = ("int",) + tuple(_FIXED_SECONDS) + tuple(_MONTHS)

# Accepted spellings (case-sensitive where pandas is: "M" month vs "min" / "T" minute).
_ALIASES = {
    "s": ("s", None), "S": ("s", None), "sec": ("s", None),
    "min": ("min", None), "T": ("min", None), "m": ("min", None),
    "H": ("H", None), "h": ("H", None),
    "D": ("D", None), "d": ("D", None),
    "W": ("W", None), "w": ("W", None),
    "M": ("M", None), "MS": ("M", "start"), "ME": ("M", "end"),
    "Q": ("Q", None), "QS": ("Q", "start"), "QE": ("Q", "end"),
    "Y": ("Y", None), "YS": ("Y", "start"), "YE": ("Y", "end"),
    "A": ("Y", None), "AS": ("Y", "start"), "AE": ("Y", "end"),
}
_PATTERN = re.compile(r"^\s*(\d*)\s*([A-Za-z]+)(?:@(\d{1,2}))?\s*$")

Anchor = Union[None, str, int]


class Frequency:
    """A time step: ``Frequency("H")``, ``Frequency("min", 15)``, ``Frequency("M", anchor="end")``,
    ``Frequency("int", 1)``. Use :meth:`parse` for strings such as ``"15min"``, ``"2H"``, ``"MS"``.

    Frequencies are immutable, hashable and compare by value; ``Frequency.parse(str(f)) == f``.
    """

    __slots__ = ("_unit", "_n", "_anchor")

    def __init__(self, unit: str, n: int = 1, anchor: Anchor = None):
        if not isinstance(unit, str):
            raise TypeError(f"Frequency unit must be a str, got {type(unit).__name__}")
        if unit not in _UNITS:
            if unit in _ALIASES:
                unit, alias_anchor = _ALIASES[unit]
                anchor = anchor if anchor is not None else alias_anchor
            else:
                raise ValueError(f"unknown frequency unit {unit!r}; expected one of {', '.join(_UNITS)}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"Frequency multiple must be an int, got {type(n).__name__}")
        if n < 1:
            raise ValueError(f"Frequency multiple must be >= 1, got {n}")
        if anchor is not None:
            if unit not in _MONTHS:
                raise ValueError(f"an anchor ({anchor!r}) only applies to month-based frequencies (M, Q, Y), not {unit!r}")
            if isinstance(anchor, (int, np.integer)) and not isinstance(anchor, bool):
                if not 1 <= anchor <= 31:
                    raise ValueError(f"day-of-month anchor must be in 1..31, got {anchor}")
                anchor = int(anchor)
                if anchor == 1:
                    anchor = "start"
            elif anchor not in ("start", "end"):
                raise ValueError(f"anchor must be 'start', 'end', a day of month 1..31 or None, got {anchor!r}")
        object.__setattr__(self, "_unit", unit)
        object.__setattr__(self, "_n", int(n))
        object.__setattr__(self, "_anchor", anchor)

    def __setattr__(self, name, value):
        raise AttributeError("Frequency is immutable")

    # ---------------------------------------------------------------- construction
    @classmethod
    def parse(cls, value: Union[str, int, "Frequency"]) -> "Frequency":
        """Parse ``"H"``, ``"15min"``, ``"2H"``, ``"D"``, ``"W"``, ``"M"``, ``"MS"``, ``"ME"``,
        ``"M@15"``, ``"Q"``, ``"QS"``, ``"Y"``, an int (integer step) or a digit string ("1")."""
        if isinstance(value, Frequency):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return cls("int", int(value))
        if not isinstance(value, str):
            raise TypeError(f"freq must be a str, an int or a Frequency, got {type(value).__name__}")
        text = value.strip()
        if text.isdigit():
            return cls("int", int(text))
        m = _PATTERN.match(text)
        if not m or m.group(2) not in _ALIASES:
            raise ValueError(
                f"cannot parse frequency {value!r}; examples: 'H', '15min', '2H', 'D', 'W', 'M', 'MS', "
                f"'ME', 'Q', 'Y', or an integer step such as '1'"
            )
        n = int(m.group(1)) if m.group(1) else 1
        unit, anchor = _ALIASES[m.group(2)]
        if m.group(3) is not None:
            if anchor is not None:
                raise ValueError(f"cannot parse frequency {value!r}: both an anchor suffix and '@day'")
            anchor = int(m.group(3))
        return cls(unit, n, anchor)

    # ---------------------------------------------------------------- properties
    @property
    def unit(self) -> str:
        return self._unit

    @property
    def n(self) -> int:
        return self._n

    @property
    def anchor(self) -> Anchor:
        return self._anchor

    @property
    def is_integer(self) -> bool:
        """True for integer time steps (``ds`` of dtype int64)."""
        return self._unit == "int"

    @property
    def is_calendar(self) -> bool:
        """True for month-based units (M, Q, Y), whose step length varies."""
        return self._unit in _MONTHS

    @property
    def seasonality(self) -> int:
        """Default seasonal period in steps (see the module docstring)."""
        if self._unit == "int":
            return 1
        cycle = _CYCLE[self._unit]
        return cycle // self._n if cycle % self._n == 0 else 1

    @property
    def step_seconds(self) -> Optional[int]:
        """Length of one step in seconds for fixed units, None for month-based and integer ones."""
        if self._unit in _FIXED_SECONDS:
            return _FIXED_SECONDS[self._unit] * self._n
        return None

    def __str__(self) -> str:
        if self._unit == "int":
            return str(self._n)
        prefix = str(self._n) if self._n != 1 else ""
        suffix = ""
        if self._anchor == "start":
            suffix = "S"
        elif self._anchor == "end":
            suffix = "E"
        elif self._anchor is not None:
            suffix = f"@{self._anchor}"
        return f"{prefix}{self._unit}{suffix}"

    def __repr__(self) -> str:
        return f"Frequency({str(self)!r})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Frequency.parse(other)
            except (ValueError, TypeError):
                return False
        if not isinstance(other, Frequency):
            return NotImplemented
        return (self._unit, self._n, self._anchor) == (other._unit, other._n, other._anchor)

    def __hash__(self) -> int:
        return hash((self._unit, self._n, self._anchor))

    def __reduce__(self):
        return (Frequency, (self._unit, self._n, self._anchor))

    # ---------------------------------------------------------------- arithmetic
    def _check_kind(self, ds: np.ndarray) -> None:
        if self._unit == "int":
            if ds.dtype.kind not in "iu":
                raise ValueError(f"integer frequency {str(self)!r} applied to ds of dtype {ds.dtype}; expected integers")
        elif ds.dtype.kind != "M":
            raise ValueError(f"frequency {str(self)!r} applied to ds of dtype {ds.dtype}; expected datetime64")

    def add(self, ds, k=1) -> np.ndarray:
        """``ds`` moved by ``k`` steps (``k`` may be an array; numpy broadcasting applies).

        Returns int64 for integer frequencies and ``datetime64[s]`` otherwise."""
        ds = np.asarray(ds)
        if ds.dtype.kind == "U" or ds.dtype.kind == "O":
            ds = ds.astype("datetime64[s]")
        self._check_kind(ds)
        k = np.asarray(k, dtype=np.int64)
        if self._unit == "int":
            return ds.astype(np.int64) + k * self._n
        ds = ds.astype("datetime64[s]")
        if self._unit in _FIXED_SECONDS:
            return ds + (k * self.step_seconds).astype("timedelta64[s]")
        months_step = _MONTHS[self._unit] * self._n
        days = ds.astype("datetime64[D]")
        tod = ds - days.astype("datetime64[s]")
        month = days.astype("datetime64[M]")
        dom = (days - month.astype("datetime64[D]")).astype(np.int64) + 1
        new_month = month + (k * months_step).astype("timedelta64[M]")
        first = new_month.astype("datetime64[D]")
        dim = ((new_month + np.timedelta64(1, "M")).astype("datetime64[D]") - first).astype(np.int64)
        if self._anchor == "start":
            day = np.ones_like(dim)
        elif self._anchor == "end":
            day = dim
        elif self._anchor is None:
            old_dim = ((month + np.timedelta64(1, "M")).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
            day = np.where(dom == old_dim, dim, np.minimum(dom, dim))
        else:
            day = np.minimum(self._anchor, dim)
        out = (first + (day - 1).astype("timedelta64[D]")).astype("datetime64[s]") + tod
        return out

    def range(self, start, n: int) -> np.ndarray:
        """``n`` timestamps starting at ``start`` (included), one step apart."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an int, got {type(n).__name__}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        start = np.asarray(start)
        if start.ndim != 0:
            raise ValueError("range() takes a single start value; use add(start[:, None], np.arange(n)) for many")
        return self.add(start, np.arange(n, dtype=np.int64))

    def is_regular(self, ds: np.ndarray) -> np.ndarray:
        """Boolean (len(ds)-1,) array: True where ``ds[i+1]`` is exactly one step after ``ds[i]``."""
        ds = np.asarray(ds)
        if ds.shape[0] < 2:
            return np.ones(0, dtype=bool)
        return self.add(ds[:-1], 1) == ds[1:]

    def steps_between(self, a, b) -> np.ndarray:
        """Approximate number of steps from ``a`` to ``b`` (exact for fixed and integer units,
        counted in months for month-based ones). Used to size gaps in error messages."""
        a = np.asarray(a)
        b = np.asarray(b)
        if self._unit == "int":
            return (b.astype(np.int64) - a.astype(np.int64)) // self._n
        if self._unit in _FIXED_SECONDS:
            return (b.astype("datetime64[s]") - a.astype("datetime64[s]")).astype(np.int64) // self.step_seconds
        months = b.astype("datetime64[M]").astype(np.int64) - a.astype("datetime64[M]").astype(np.int64)
        return months // (_MONTHS[self._unit] * self._n)


# -------------------------------------------------------------------- inference
def _month_anchor(dates: np.ndarray) -> Optional[Anchor]:
    """The anchor shared by all ``dates`` (datetime64[s]) or False if they are not month-aligned."""
    days = dates.astype("datetime64[D]")
    tod = (dates - days.astype("datetime64[s]")).astype(np.int64)
    if tod.size and np.any(tod != tod[0]):
        return False
    month = days.astype("datetime64[M]")
    dom = (days - month.astype("datetime64[D]")).astype(np.int64) + 1
    dim = ((month + np.timedelta64(1, "M")).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
    if np.all(dom == 1):
        return "start"
    if np.all(dom == dim):
        return "end"
    d = int(dom.max())
    if np.all(dom == np.minimum(d, dim)):
        return d
    return False


def infer_frequency(ds_per_series: Iterable[np.ndarray]) -> Optional[Frequency]:
    """Infer one frequency from the timestamps of several (sorted) series.

    The most common step across all series wins; month-based units are chosen when every
    timestamp shares a month anchor (first day, last day or a fixed day of month, same time of
    day) and the most common step is at least 28 days. Returns None when no series has two points.
    Raises ValueError when the timestamps are not increasing. Irregular spacing is not an error
    here: the validation compares every series against the inferred frequency and names the gaps.
    """
    arrays = [np.asarray(d) for d in ds_per_series]
    arrays = [a for a in arrays if a.shape[0] >= 2]
    if not arrays:
        return None
    kind = arrays[0].dtype.kind
    if kind in "iu":
        diffs = np.concatenate([np.diff(a.astype(np.int64)) for a in arrays])
        if np.any(diffs <= 0):
            raise ValueError("ds must be strictly increasing within each series to infer a frequency")
        values, counts = np.unique(diffs, return_counts=True)
        return Frequency("int", int(values[np.argmax(counts)]))
    if kind != "M":
        raise ValueError(f"cannot infer a frequency for ds of dtype {arrays[0].dtype}")
    arrays = [a.astype("datetime64[s]") for a in arrays]
    diffs = np.concatenate([np.diff(a).astype(np.int64) for a in arrays])
    if np.any(diffs <= 0):
        raise ValueError("ds must be strictly increasing within each series to infer a frequency")
    values, counts = np.unique(diffs, return_counts=True)
    mode = int(values[np.argmax(counts)])
    if mode >= 28 * 86400:
        all_ds = np.concatenate(arrays)
        anchor = _month_anchor(all_ds)
        if anchor is not False:
            mdiffs = np.concatenate(
                [np.diff(a.astype("datetime64[M]").astype(np.int64)) for a in arrays]
            )
            mvals, mcounts = np.unique(mdiffs, return_counts=True)
            months = int(mvals[np.argmax(mcounts)])
            if months >= 1:
                if months % 12 == 0:
                    unit, n = "Y", months // 12
                elif months % 3 == 0:
                    unit, n = "Q", months // 3
                else:
                    unit, n = "M", months
                return Frequency(unit, n, anchor)
    for unit in ("W", "D", "H", "min", "s"):
        size = _FIXED_SECONDS[unit]
        if mode % size == 0:
            return Frequency(unit, mode // size)
    raise AssertionError("unreachable: every positive number of seconds is a multiple of 1 s")


def coerce_frequency(freq) -> Optional[Frequency]:
    """None, a Frequency, a str or an int -> Frequency or None (TypeError for other types)."""
    if freq is None:
        return None
    return Frequency.parse(freq)
