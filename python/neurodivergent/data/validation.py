"""Validation of long-format time-series data, with specific messages.

Every check raises ValueError (TypeError for wrong Python types of arguments) naming what is wrong:
the column, the offending series ids (first five and a count), the first offending ds and, for
files, the line. Nothing is silently dropped or repaired, except that unsorted rows are sorted
(stably) by the frame.

The helpers here work on plain numpy arrays so that the frame, the CSV reader and the
pandas / polars paths share one set of rules and messages.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .frequency import Frequency

__all__ = [
    "MAX_SHOWN",
    "format_ds",
    "format_id_list",
    "check_required_columns",
    "parse_ds",
    "parse_float",
    "check_ids",
    "check_finite",
    "check_duplicates",
    "check_regular",
    "check_static",
]

MAX_SHOWN = 5
_MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "null", "none", "-nan", "<na>"})
_INT_RE = re.compile(r"^[+-]?\d+$")
_TZ_RE = re.compile(r"([+-]\d{2}:?\d{2})$")


# -------------------------------------------------------------------- formatting
def format_ds(value) -> str:
    """ISO text of one ds value: '2015-01-02' for midnight, '2015-01-02 13:00:00' otherwise,
    the integer for integer time steps."""
    v = np.asarray(value)
    if v.dtype.kind == "M":
        s = v.astype("datetime64[s]")
        day = s.astype("datetime64[D]")
        if s == day.astype("datetime64[s]"):
            return str(day)
        return str(s).replace("T", " ")
    if v.dtype.kind in "iu":
        return str(int(v))
    return str(value)


def format_ds_array(ds: np.ndarray) -> List[str]:
    """ISO text of a ds column: dates only when every timestamp is at midnight."""
    ds = np.asarray(ds)
    if ds.dtype.kind in "iu":
        return [str(v) for v in ds.tolist()]
    s = ds.astype("datetime64[s]")
    days = s.astype("datetime64[D]")
    if np.all(s == days.astype("datetime64[s]")):
        return np.datetime_as_string(days).tolist()
    return [t.replace("T", " ") for t in np.datetime_as_string(s, unit="s").tolist()]


def format_id_list(items: Sequence[str], total: Optional[int] = None) -> str:
    """"'a', 'b', 'c'" with at most MAX_SHOWN shown and "and N more" after."""
    total = len(items) if total is None else total
    shown = ", ".join(items[:MAX_SHOWN])
    if total > MAX_SHOWN:
        shown += f" and {total - MAX_SHOWN} more"
    return shown


def _join_clauses(clauses: List[str]) -> str:
    text = "; ".join(clauses[:MAX_SHOWN])
    if len(clauses) > MAX_SHOWN:
        text += f"; and {len(clauses) - MAX_SHOWN} more series ({len(clauses)} in all)"
    return text


# -------------------------------------------------------------------- columns
def check_required_columns(found: Sequence[str], required: Sequence[Tuple[str, str]], *, source: str,
                           hint: str = "") -> None:
    """``required``: (column name, role) pairs such as ("ds", "time_col"). Raises naming the
    missing ones and listing the columns found."""
    missing = [(name, role) for name, role in required if name not in found]
    if missing:
        what = ", ".join(f"{name!r} ({role})" for name, role in missing)
        noun = "column" if len(missing) == 1 else "columns"
        raise ValueError(
            f"{source}: missing {noun} {what}; columns found: {list(found)}{hint}"
        )


# -------------------------------------------------------------------- parsing
def _where(i: int, ids: Optional[np.ndarray], lines: Optional[np.ndarray]) -> str:
    parts = []
    if ids is not None:
        parts.append(f"series {str(ids[i])!r}")
    if lines is not None:
        parts.append(f"line {int(lines[i])}")
    else:
        parts.append(f"row {i}")
    return ", ".join(parts)


def parse_ds(values: np.ndarray, *, column: str = "ds", ids: Optional[np.ndarray] = None,
             lines: Optional[np.ndarray] = None) -> np.ndarray:
    """Parse a ds column to int64 (integer time steps) or datetime64[s].

    Accepted: numpy datetime64 / integer arrays as they are; strings that are all integers; ISO
    dates and timestamps ('2020-01-01', '2020-01-01 13:00:00', '2020-01-01T13:00', a trailing 'Z').
    Rejected with a message: unparseable values, a mix of integers and dates, timezone offsets,
    sub-second timestamps, empty values, floats."""
    values = np.asarray(values)
    if values.dtype.kind == "M":
        out = values.astype("datetime64[s]")
        if np.any(out != values):
            raise ValueError(f"{column!r}: sub-second timestamps are not supported (ds is stored as datetime64[s])")
        if np.any(np.isnat(out)):
            i = int(np.argmax(np.isnat(out)))
            raise ValueError(f"{column!r} has missing timestamps (NaT), first at {_where(i, ids, lines)}")
        return out
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "b":
        raise ValueError(f"{column!r} is boolean; expected integers or ISO dates/timestamps")
    if values.dtype.kind == "f":
        if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            return values.astype(np.int64)
        bad = np.nonzero(~np.isfinite(values) | (values != np.round(values)))[0]
        i = int(bad[0])
        raise ValueError(
            f"{column!r} has non-integer numbers (first {values[i]!r} at {_where(i, ids, lines)}); "
            f"expected integer time steps or ISO dates/timestamps"
        )
    strs = values.astype(str)
    if strs.size == 0:
        return np.zeros(0, dtype=np.int64)
    stripped = np.char.strip(strs)
    empty = stripped == ""
    if np.any(empty):
        idx = np.nonzero(empty)[0]
        raise ValueError(
            f"{column!r} has {idx.size} empty value(s), first at {_where(int(idx[0]), ids, lines)}"
        )
    strings = getattr(np, "strings", np.char)
    unsigned = np.where(np.char.startswith(stripped, "-") | np.char.startswith(stripped, "+"),
                        np.char.lstrip(stripped, "+-"), stripped) if np.any(np.char.find(stripped, "-", 0, 1) == 0) \
        or np.any(np.char.find(stripped, "+", 0, 1) == 0) else stripped
    is_int = strings.isdigit(unsigned)
    if np.all(is_int):
        try:
            return stripped.astype(np.int64)
        except (ValueError, OverflowError):
            bad = [i for i, v in enumerate(stripped.tolist()) if not _INT_RE.match(v)] or [0]
            i = bad[0]
            raise ValueError(f"{column!r} has an integer that cannot be read: {str(stripped[i])!r} at {_where(i, ids, lines)}") from None
    if np.any(is_int):
        i = int(np.argmax(is_int))
        j = int(np.argmax(~is_int))
        raise ValueError(
            f"{column!r} mixes integer time steps and dates: {str(stripped[i])!r} at {_where(i, ids, lines)} "
            f"but {str(stripped[j])!r} at {_where(j, ids, lines)}; use one kind for every row"
        )
    return _parse_datetimes(stripped, column=column, ids=ids, lines=lines)


def _parse_datetimes(strs: np.ndarray, *, column, ids, lines) -> np.ndarray:
    # A trailing 'Z' means UTC, which is what naive timestamps are taken as.
    cleaned = np.char.rstrip(strs, "Zz") if any(s.endswith(("Z", "z")) for s in strs[:1000].tolist()) else strs
    tz = (np.char.find(cleaned, "+", 10) >= 0) | (np.char.rfind(cleaned, "-") > 10)
    if np.any(tz):
        i = int(np.argmax(tz))
        raise ValueError(
            f"{column!r}: timezone offsets are not supported ({str(strs[i])!r} at {_where(i, ids, lines)}); "
            f"convert the timestamps to naive UTC or local time"
        )
    try:
        us = cleaned.astype("datetime64[us]")
    except (ValueError, OverflowError):
        us = None
    if us is None:
        bad = []
        for i, s in enumerate(cleaned.tolist()):
            try:
                np.datetime64(s, "us")
            except (ValueError, OverflowError):
                bad.append(i)
                if len(bad) > MAX_SHOWN:
                    break
        if not bad:  # pragma: no cover - defensive
            raise ValueError(f"{column!r}: cannot parse timestamps")
        i = bad[0]
        tz = _TZ_RE.search(str(strs[i]))
        if tz and re.match(r"^\d{4}-\d{2}-\d{2}[T ]", str(strs[i])):
            raise ValueError(
                f"{column!r}: timezone offsets are not supported ({str(strs[i])!r} at {_where(i, ids, lines)}); "
                f"convert the timestamps to naive UTC or local time"
            )
        shown = ", ".join(f"{str(strs[k])!r} ({_where(k, ids, lines)})" for k in bad[:MAX_SHOWN])
        raise ValueError(
            f"{column!r} has values that are neither integers nor ISO dates/timestamps: {shown}; "
            f"expected e.g. '2020-01-01', '2020-01-01 13:00:00' or '2020-01-01T13:00'"
        )
    if np.any(np.isnat(us)):
        i = int(np.argmax(np.isnat(us)))
        raise ValueError(f"{column!r} has a missing timestamp ({str(strs[i])!r}) at {_where(i, ids, lines)}")
    out = us.astype("datetime64[s]")
    frac = us != out.astype("datetime64[us]")
    if np.any(frac):
        i = int(np.argmax(frac))
        raise ValueError(
            f"{column!r}: sub-second timestamps are not supported ({str(strs[i])!r} at {_where(i, ids, lines)}); "
            f"ds is stored with a resolution of one second"
        )
    return out


def parse_float(values, *, column: str, ids: Optional[np.ndarray] = None, ds: Optional[np.ndarray] = None,
                lines: Optional[np.ndarray] = None, hint: str = "") -> np.ndarray:
    """A column as float64. Empty cells and NA/NaN/null tokens become NaN (reported later by
    :func:`check_finite` as missing values); anything else non-numeric raises, naming the first
    offending values with their series and ds."""
    arr = np.asarray(values)
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64)
    if arr.dtype.kind == "b":
        raise ValueError(f"{column!r} is boolean; expected numbers{hint}")
    if arr.dtype.kind not in "USO":
        raise ValueError(f"{column!r} has dtype {arr.dtype}; expected numbers{hint}")
    try:
        if arr.dtype.kind == "O":
            return np.array([np.nan if v is None else v for v in arr.tolist()], dtype=np.float64)
        return arr.astype(np.float64)
    except (ValueError, TypeError):
        pass
    out = np.empty(arr.shape[0], dtype=np.float64)
    bad: List[int] = []
    for i, v in enumerate(arr.tolist()):
        if v is None:
            out[i] = np.nan
            continue
        if isinstance(v, (float, int)) and not isinstance(v, bool):
            out[i] = v
            continue
        s = str(v).strip()
        try:
            out[i] = float(s)
        except ValueError:
            if s.lower() in _MISSING_TOKENS:
                out[i] = np.nan
            else:
                bad.append(i)
    if bad:
        def where(i):
            parts = []
            if ids is not None:
                parts.append(f"series {str(ids[i])!r}")
            if ds is not None:
                parts.append(f"ds={format_ds(ds[i])}")
            if lines is not None:
                parts.append(f"line {int(lines[i])}")
            if not parts:
                parts.append(f"row {i}")
            return ", ".join(parts)
        shown = ", ".join(f"{str(arr[i])!r} ({where(i)})" for i in bad[:MAX_SHOWN])
        more = f" and {len(bad) - MAX_SHOWN} more" if len(bad) > MAX_SHOWN else ""
        raise ValueError(f"{column!r} must be numeric; {len(bad)} non-numeric value(s): {shown}{more}{hint}")
    return out


# -------------------------------------------------------------------- checks on grouped data
def check_ids(ids: np.ndarray, *, column: str, lines: Optional[np.ndarray] = None) -> None:
    """No empty (or whitespace-only) unique_id values."""
    empty = np.char.strip(ids.astype(str)) == ""
    if np.any(empty):
        idx = np.nonzero(empty)[0]
        where = ", ".join(
            (f"line {int(lines[i])}" if lines is not None else f"row {int(i)}") for i in idx[:MAX_SHOWN]
        )
        more = f" and {idx.size - MAX_SHOWN} more" if idx.size > MAX_SHOWN else ""
        raise ValueError(f"{column!r} has {idx.size} empty value(s): {where}{more}; every row needs a series id")


def check_finite(values: np.ndarray, *, column: str, ids: np.ndarray, offsets: np.ndarray, ds: np.ndarray) -> None:
    """No NaN / inf. Message: "series 'H17' has 3 missing values in 'y' (first at ds=2015-01-02)";
    several series are joined with '; ' (first five and a count)."""
    nan = np.isnan(values)
    inf = np.isinf(values)
    for mask, word in ((nan, "missing"), (inf, "infinite")):
        if not np.any(mask):
            continue
        counts = np.add.reduceat(mask.astype(np.int64), offsets[:-1]) if values.size else np.zeros(0, np.int64)
        counts = np.where(np.diff(offsets) > 0, counts, 0)
        clauses = []
        for s in np.nonzero(counts)[0]:
            lo, hi = offsets[s], offsets[s + 1]
            first = lo + int(np.argmax(mask[lo:hi]))
            n = int(counts[s])
            noun = "value" if n == 1 else "values"
            clauses.append(
                f"series {str(ids[s])!r} has {n} {word} {noun} in {column!r} (first at ds={format_ds(ds[first])})"
            )
        raise ValueError(_join_clauses(clauses))


def check_duplicates(ids: np.ndarray, offsets: np.ndarray, ds: np.ndarray) -> None:
    """No repeated ds within a series (``ds`` sorted within each series)."""
    if ds.shape[0] < 2:
        return
    same = ds[1:] == ds[:-1]
    # pairs that straddle a series boundary do not count
    boundary = np.zeros(ds.shape[0] - 1, dtype=bool)
    starts = offsets[1:-1]
    starts = starts[(starts > 0) & (starts < ds.shape[0])]
    boundary[starts - 1] = True
    dup = same & ~boundary
    if not np.any(dup):
        return
    rows = np.nonzero(dup)[0] + 1
    series = np.searchsorted(offsets, rows, side="right") - 1
    clauses = []
    for s in np.unique(series):
        r = rows[series == s]
        n = r.size
        noun = "timestamp" if n == 1 else "timestamps"
        clauses.append(
            f"series {str(ids[s])!r} has {n} duplicated {noun} (first ds={format_ds(ds[r[0]])})"
        )
    raise ValueError("duplicate (unique_id, ds) pairs: " + _join_clauses(clauses))


def check_regular(freq: Frequency, ids: np.ndarray, offsets: np.ndarray, ds: np.ndarray, *, declared: bool) -> None:
    """Every series is spaced exactly one ``freq`` step apart; names the series and its first gap."""
    if ds.shape[0] < 2:
        return
    expected = freq.add(ds[:-1], 1)
    ok = expected == ds[1:]
    boundary = np.zeros(ds.shape[0] - 1, dtype=bool)
    starts = offsets[1:-1]
    starts = starts[(starts > 0) & (starts < ds.shape[0])]
    boundary[starts - 1] = True
    bad = ~ok & ~boundary
    if not np.any(bad):
        return
    pos = np.nonzero(bad)[0]
    series = np.searchsorted(offsets, pos + 1, side="right") - 1
    clauses = []
    for s in np.unique(series):
        p = pos[series == s]
        i = int(p[0])
        found = ds[i + 1]
        gap = int(freq.steps_between(ds[i], found))
        if gap > 1 and freq.add(ds[i], gap) == found:
            detail = f"{gap - 1} missing step{'s' if gap > 2 else ''}"
        else:
            detail = "not on the frequency's grid"
        extra = f", {p.size} irregular steps in all" if p.size > 1 else ""
        clauses.append(
            f"series {str(ids[s])!r}: after ds={format_ds(ds[i])} expected {format_ds(expected[i])}, "
            f"found {format_ds(found)} ({detail}{extra})"
        )
    origin = "declared" if declared else "inferred"
    n = len(clauses)
    head = f"{n} series {'is' if n == 1 else 'are'} not regular at the {origin} frequency {str(freq)!r}: "
    tail = "" if declared else "; pass freq=... if the inferred frequency is wrong"
    raise ValueError(head + _join_clauses(clauses) + tail)


def check_static(name: str, values: np.ndarray, ids: np.ndarray, offsets: np.ndarray, ds: np.ndarray) -> np.ndarray:
    """A static column must be constant within each series; returns the (S,) per-series values."""
    first = values[offsets[:-1]] if values.size else values[:0]
    per_row_first = np.repeat(first, np.diff(offsets))
    if values.dtype.kind == "f":
        differs = ~((values == per_row_first) | (np.isnan(values) & np.isnan(per_row_first)))
    else:
        differs = values != per_row_first
    if np.any(differs):
        pos = np.nonzero(differs)[0]
        series = np.searchsorted(offsets, pos, side="right") - 1
        clauses = []
        for s in np.unique(series):
            r = int(pos[series == s][0])
            clauses.append(
                f"series {str(ids[s])!r} has {name}={str(first[s])!r} at ds={format_ds(ds[offsets[s]])} "
                f"but {str(values[r])!r} at ds={format_ds(ds[r])}"
            )
        raise ValueError(f"static column {name!r} varies within a series: " + _join_clauses(clauses))
    return first


def shortness_message(lengths: np.ndarray, ids: np.ndarray, min_length: int, what: str) -> Optional[str]:
    """The check_length message, or None when every series is long enough."""
    short = np.nonzero(lengths < min_length)[0]
    if short.size == 0:
        return None
    n = short.size
    items = [f"{str(ids[s])!r} ({int(lengths[s])})" for s in short]
    subject = "1 series is" if n == 1 else f"{n} series are"
    label = f"{what} = {min_length}" if what else f"{min_length}"
    return f"{subject} shorter than {label} (need >= {min_length} points): {format_id_list(items)}"
