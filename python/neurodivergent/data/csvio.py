"""A small CSV reader and an atomic writer (no pandas).

The reader uses Python's C ``csv`` module: quoted fields (with embedded delimiters, quotes and
newlines), CRLF or LF line ends, a UTF-8 byte-order mark and blank lines (skipped) are handled.
Files ending in ``.gz`` (or starting with the gzip magic bytes) are decompressed transparently.
Every problem raises ValueError naming the file, the line and what is wrong.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import tempfile
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

__all__ = ["read_csv", "CsvTable", "atomic_write_bytes", "atomic_write_text", "write_csv"]

PathLike = Union[str, "os.PathLike[str]"]
_CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "'\\t' (tab)", "|": "'|'"}


class CsvTable:
    """Column-major result of :func:`read_csv`.

    ``header``: column names; ``columns``: name -> numpy array of str (one per data row);
    ``line_numbers``: (N,) int64, the 1-based file line on which each data row starts
    (used by error messages); ``path``: the file name for messages.
    """

    __slots__ = ("header", "columns", "line_numbers", "path")

    def __init__(self, header: List[str], columns: Dict[str, np.ndarray], line_numbers: np.ndarray, path: str):
        self.header = header
        self.columns = columns
        self.line_numbers = line_numbers
        self.path = path

    def __len__(self) -> int:
        return int(self.line_numbers.shape[0])


def _read_bytes(path: PathLike) -> bytes:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{os.fspath(path)!s}: looks gzip-compressed but cannot be decompressed: {exc}") from None
    return raw


def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start
        line = raw.count(b"\n", 0, offset) + 1
        line_start = raw.rfind(b"\n", 0, offset) + 1
        column = offset - line_start + 1
        bad = raw[offset:offset + 1].hex()
        snippet = raw[line_start:offset].decode("utf-8", errors="replace")[-40:]
        raise ValueError(
            f"{name}: not valid UTF-8: byte 0x{bad} at byte offset {offset} (line {line}, column {column}, "
            f"after {snippet!r}); re-save the file as UTF-8 (e.g. from Latin-1 or cp1252)"
        ) from None


def sniff_delimiter(first_line: str, current: str) -> Union[str, None]:
    """The candidate delimiter occurring most in ``first_line`` if ``current`` does not occur."""
    if current in first_line:
        return None
    best, count = None, 0
    for cand in _CANDIDATE_DELIMITERS:
        if cand == current:
            continue
        c = first_line.count(cand)
        if c > count:
            best, count = cand, c
    return best


def read_csv(path: PathLike, *, delimiter: str = ",") -> CsvTable:
    """Read a delimited text file into string columns (see :class:`CsvTable`)."""
    if not isinstance(delimiter, str):
        raise TypeError(f"delimiter must be a str, got {type(delimiter).__name__}")
    if len(delimiter) != 1:
        raise ValueError(f"delimiter must be a single character, got {delimiter!r}")
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else str(path)
    text = _decode(_read_bytes(path), name)
    if text.strip() == "":
        raise ValueError(f"{name}: the file is empty (no header, no data rows)")
    header = None
    rows: List[List[str]] = []
    lines: List[int] = []
    if '"' not in text:
        fast = _read_unquoted_fast(name, text, delimiter)
        if fast is not None:
            return fast
        # Without quotes every record is one physical line.
        physical = text.splitlines()
        numbered = [(i + 1, ln) for i, ln in enumerate(physical) if ln and not ln.isspace()]
        header_line = numbered[0][0]
        header = [h.strip() for h in numbered[0][1].split(delimiter)]
        lines = [n for n, _ in numbered[1:]]
        rows = [ln.split(delimiter) for _, ln in numbered[1:]]
        return _finish(name, text, delimiter, header, header_line, rows, lines)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        line_no = 1
        for record in reader:
            start = line_no
            line_no = reader.line_num + 1
            if not record or (len(record) == 1 and record[0].strip() == ""):
                continue  # blank line
            if header is None:
                header = [h.strip() for h in record]
                header_line = start
                continue
            rows.append(record)
            lines.append(start)
    except csv.Error as exc:
        raise ValueError(f"{name}: malformed CSV near line {reader.line_num}: {exc}") from None
    assert header is not None
    return _finish(name, text, delimiter, header, header_line, rows, lines)


_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n")


def _read_unquoted_fast(name: str, text: str, delimiter: str):
    """One C-level split of the whole body when the text has no quotes, no blank lines except
    trailing ones and no lone CR; None to fall back to the line-by-line path."""
    body = text.replace("\r\n", "\n")
    if "\r" in body:
        return None
    body = body.rstrip()
    head_end = body.find("\n")
    if head_end < 0 or _BLANK_LINE.search(body) or body[:1].isspace():
        return None
    header = [h.strip() for h in body[:head_end].split(delimiter)]
    width = len(header)
    rest = body[head_end + 1:]
    n_rows = rest.count("\n") + 1
    flat = rest.replace("\n", delimiter).split(delimiter)
    if len(flat) != n_rows * width or width == 1:
        return None
    if rest.count(delimiter) != n_rows * (width - 1):
        return None
    table = np.array(flat, dtype=str).reshape(n_rows, width)
    lines = np.arange(2, n_rows + 2, dtype=np.int64)
    _check_header(name, text, delimiter, header, 1)
    columns = {h: _strip(table[:, j].copy()) for j, h in enumerate(header)}
    return CsvTable(header, columns, lines, name)


def _strip(arr: np.ndarray) -> np.ndarray:
    strings = getattr(np, "strings", None)
    return strings.strip(arr) if strings is not None else np.char.strip(arr)


def _finish(name, text, delimiter, header, header_line, rows, lines) -> CsvTable:
    _check_header(name, text, delimiter, header, header_line)
    if not rows:
        raise ValueError(f"{name}: no data rows after the header {header}")
    width = len(header)
    bad = [(ln, len(r)) for ln, r in zip(lines, rows) if len(r) != width]
    if bad:
        shown = ", ".join(f"line {ln} has {n}" for ln, n in bad[:5])
        more = f" ({len(bad)} rows in all)" if len(bad) > 5 else ""
        raise ValueError(
            f"{name}: rows with the wrong number of fields (expected {width}, the header has {header}): {shown}{more}"
        )
    # column-major string arrays; surrounding whitespace of every field is stripped
    transposed = list(zip(*rows))
    columns = {h: _strip(np.array(col, dtype=str)) for h, col in zip(header, transposed)}
    return CsvTable(header, columns, np.asarray(lines, dtype=np.int64), name)


def _check_header(name, text, delimiter, header, header_line) -> None:
    if len(header) == 1:
        first_line = text.splitlines()[header_line - 1]
        guess = sniff_delimiter(first_line, delimiter)
        if guess is not None:
            raise ValueError(
                f"{name}: only one column {header[0]!r} found with delimiter {_DELIMITER_NAMES.get(delimiter, repr(delimiter))}; "
                f"the file looks {_DELIMITER_NAMES[guess]}-separated: pass delimiter={guess!r}"
            )
    seen = set()
    dups = [h for h in header if h in seen or seen.add(h)]
    if dups:
        raise ValueError(f"{name}: duplicate column names in the header: {', '.join(repr(d) for d in dups)}")
    empty = [i + 1 for i, h in enumerate(header) if h == ""]
    if empty:
        raise ValueError(f"{name}: empty column name in the header at position(s) {empty} (header {header})")


# -------------------------------------------------------------------- writing
def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory, flushed and
    fsynced, renamed over ``path`` with os.replace, then the directory is fsynced. A crash at any
    instant leaves either the old file or the new one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def atomic_write_text(path: PathLike, text: str) -> None:
    """UTF-8 text written atomically; gzip-compressed (deterministically) when ``path`` ends in .gz."""
    data = text.encode("utf-8")
    if os.fspath(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(path, data)


def write_csv(path: PathLike, header: Sequence[str], columns: Sequence[Sequence[str]]) -> None:
    """Write string columns as CSV (quoted where needed, LF line ends), atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(header))
    writer.writerows(zip(*columns))
    atomic_write_text(path, buf.getvalue())


def format_floats(values: np.ndarray) -> List[str]:
    """Shortest round-trip text of float64 values ('nan', 'inf' kept as such)."""
    return [repr(v) for v in np.asarray(values, dtype=np.float64).tolist()]
