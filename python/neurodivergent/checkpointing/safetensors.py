"""Read and write safetensors files with numpy only: no pickle, nothing executed, strict validation.

Format (the safetensors specification)::

    8 bytes       N, unsigned little-endian: the header's length
    N bytes       UTF-8 JSON object, padded with spaces:
                    {"__metadata__": {"k": "v", ...},                      (optional, strings only)
                     "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
    rest          the data section: each tensor's raw little-endian C-order bytes; offsets are relative
                  to the start of the data section, and the tensors cover it exactly, without gaps or
                  overlaps.

Writing (:func:`save_file`, :func:`save_bytes`): tensors are laid out in the reference implementation's
order (by dtype, largest item size first: U64 I64 F64 F32 U32 I32 F16 U16 I16 I8 U8 BOOL; then by name),
metadata keys are sorted, and the header is compact JSON padded with spaces to a multiple of 8 bytes, so
every tensor starts at an offset aligned to its item size and the output is byte-identical to the
reference writer's (given at most one metadata key, whose order that writer does not fix). Supported dtypes: F64, F32, F16, I64, I32, I16, I8,
U64, U32, U16, U8, BOOL; any other numpy dtype raises ``TypeError`` naming the tensor. ``save_file``
writes atomically (:mod:`.atomic`).

Reading (:func:`load_file`, :func:`load_bytes`) returns ``(tensors, metadata)``. Every array is an
independent, writeable, C-contiguous copy in native byte order; the dict is in the file's data order. BF16 tensors (which numpy lacks) load
as float32, exactly. Every malformed input raises :class:`SafetensorsError` (a ``ValueError``) saying
what is wrong; sizes are checked against the file's length before anything is allocated, so a lying
header cannot cause a huge allocation. Files this reader rejects although the reference implementation
accepts them: headers that do not start with ``{``, duplicate JSON keys, JSON NaN/Infinity, tensor
entries with fields other than dtype/shape/data_offsets, empty tensor names, ``__metadata__: null``,
BOOL bytes other than 0/1, and F8/F4/complex dtypes (unsupported: numpy has no such types).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from .atomic import atomic_open

__all__ = ["SafetensorsError", "save_file", "save_bytes", "load_file", "load_bytes", "HEADER_CAP"]

HEADER_CAP = 100_000_000
"""Largest header accepted (bytes), as in the reference implementation."""

_MAX_NDIM = 32  # numpy 1.x's limit; numpy 2 allows 64
_MAX_BYTES = 2**63 - 1

# name -> little-endian numpy dtype (BF16 is read as uint16 and widened to float32)
_DTYPES: Dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_KNOWN_UNSUPPORTED = ("F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64")
# (numpy kind, itemsize) -> name, for writing
_NAMES = {
    ("f", 8): "F64",
    ("f", 4): "F32",
    ("f", 2): "F16",
    ("i", 8): "I64",
    ("i", 4): "I32",
    ("i", 2): "I16",
    ("i", 1): "I8",
    ("u", 8): "U64",
    ("u", 4): "U32",
    ("u", 2): "U16",
    ("u", 1): "U8",
    ("b", 1): "BOOL",
}
_FIELDS = ("dtype", "shape", "data_offsets")
# the reference implementation's dtype order; it lays tensors out by this, descending, then by name
_RANK = {n: i for i, n in enumerate(
    ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"]
)}

PathLike = Union[str, "os.PathLike[str]"]
Tensors = Dict[str, np.ndarray]
Metadata = Dict[str, str]


class SafetensorsError(ValueError):
    """A file or buffer that is not a valid safetensors file."""


# ------------------------------------------------------------------------------------------- writing
def _prepare(tensors: Mapping[str, Any], metadata: Optional[Mapping[str, str]]):
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a dict of name -> numpy array, got {type(tensors).__name__}")
    items = []
    for name, arr in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r} ({type(name).__name__})")
        if not name:
            raise ValueError("tensor names must be non-empty")
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved and cannot name a tensor")
        _check_utf8(name, f"tensor name {name!r}")
        if isinstance(arr, np.generic):
            arr = np.asarray(arr)
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"tensor {name!r} must be a numpy array, got {type(arr).__name__}")
        dt_name = _NAMES.get((arr.dtype.kind, arr.dtype.itemsize))
        if dt_name is None:
            raise TypeError(
                f"tensor {name!r} has dtype {arr.dtype}, which safetensors files cannot hold "
                f"(supported: {', '.join(sorted(set(_NAMES.values())))})"
            )
        le = np.asarray(arr, dtype=arr.dtype.newbyteorder("<"))  # (ascontiguousarray turns 0-d into 1-d)
        if not le.flags.c_contiguous:
            le = le.copy(order="C")
        items.append((name, dt_name, le))
    # as the reference implementation: dtype rank descending (so item size descending), then name;
    # with the 8-byte padded header every tensor starts aligned to its item size
    items.sort(key=lambda t: (-_RANK[t[1]], t[0]))

    header: Dict[str, Any] = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a dict of str -> str, got {type(metadata).__name__}")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(
                    f"metadata must map str -> str; entry {k!r}: {v!r} has types "
                    f"{type(k).__name__} -> {type(v).__name__}"
                )
            _check_utf8(k, f"metadata key {k!r}")
            _check_utf8(v, f"metadata value for {k!r}")
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    for name, dt_name, le in items:
        header[name] = {"dtype": dt_name, "shape": list(le.shape), "data_offsets": [offset, offset + le.nbytes]}
        offset += le.nbytes
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    if len(raw) > HEADER_CAP:
        raise ValueError(f"the header would be {len(raw)} bytes, over the {HEADER_CAP}-byte cap of readers")
    return len(raw).to_bytes(8, "little") + raw, [le for _, _, le in items]


def _check_utf8(s: str, what: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not encodable as UTF-8 (lone surrogate?)") from None


def _raw(le: np.ndarray) -> memoryview:
    return memoryview(le.reshape(-1).view(np.uint8))


def save_bytes(tensors: Mapping[str, np.ndarray], metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """The safetensors bytes of ``tensors`` (name -> array) with optional string ``metadata``."""
    head, arrays = _prepare(tensors, metadata)
    return b"".join([head] + [_raw(a) for a in arrays])


def save_file(tensors: Mapping[str, np.ndarray], path: PathLike, metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write ``tensors`` (name -> array) and optional string ``metadata`` to ``path``, atomically."""
    head, arrays = _prepare(tensors, metadata)
    with atomic_open(path, "wb") as f:
        f.write(head)
        for a in arrays:
            f.write(_raw(a))


# ------------------------------------------------------------------------------------------- reading
class _Entry:
    __slots__ = ("name", "dtype_name", "dtype", "shape", "begin", "end")

    def __init__(self, name, dtype_name, dtype, shape, begin, end):
        self.name, self.dtype_name, self.dtype, self.shape = name, dtype_name, dtype, shape
        self.begin, self.end = begin, end


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SafetensorsError(f"header has the key {k!r} twice")
        out[k] = v
    return out


def _reject_constant(name: str):
    raise SafetensorsError(f"header contains {name}, which is not JSON")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _header_length(prefix: bytes, total: int) -> int:
    if total < 8:
        raise SafetensorsError(f"file is {total} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(prefix[:8], "little")
    if n > HEADER_CAP:
        raise SafetensorsError(f"header length {n} exceeds the cap of {HEADER_CAP} bytes")
    if n > total - 8:
        raise SafetensorsError(f"header length {n} is larger than the rest of the file ({total - 8} bytes)")
    return n


def _parse_header(raw: bytes, data_len: int) -> Tuple[List[_Entry], Metadata]:
    if not raw.startswith(b"{"):
        raise SafetensorsError("header does not start with '{'" if raw else "header is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SafetensorsError(f"header is not valid UTF-8: {exc}") from None
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except SafetensorsError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers, deep nesting
        raise SafetensorsError(f"header is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise SafetensorsError(f"header must be a JSON object, got {type(obj).__name__}")

    metadata: Metadata = {}
    entries: List[_Entry] = []
    for name, info in obj.items():
        if name == "__metadata__":
            if not isinstance(info, dict):
                raise SafetensorsError(f"__metadata__ must be an object of strings, got {_json_type(info)}")
            for k, v in info.items():
                if not isinstance(v, str):
                    raise SafetensorsError(f"__metadata__[{k!r}] must be a string, got {_json_type(v)}")
            metadata = dict(info)
            continue
        entries.append(_parse_entry(name, info, data_len))

    # the tensors must tile the data section exactly: no gaps, no overlaps, nothing left over
    entries.sort(key=lambda e: (e.begin, e.end))
    pos, prev = 0, None
    for e in entries:
        if e.begin < pos:
            raise SafetensorsError(
                f"tensor {e.name!r} (bytes {e.begin}..{e.end}) overlaps tensor {prev.name!r} "
                f"(bytes {prev.begin}..{prev.end})"
            )
        if e.begin > pos:
            raise SafetensorsError(f"gap in the data section: bytes {pos}..{e.begin} belong to no tensor")
        pos, prev = e.end, e
    if pos != data_len:
        raise SafetensorsError(
            f"data section has {data_len} bytes but the tensors cover {pos}: "
            f"{data_len - pos} trailing byte(s)"
        )
    return entries, metadata


def _json_type(x: Any) -> str:
    if x is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(x), type(x).__name__
    )


def _parse_entry(name: str, info: Any, data_len: int) -> _Entry:
    if not name:
        raise SafetensorsError("a tensor has an empty name")
    if not isinstance(info, dict):
        raise SafetensorsError(f"tensor {name!r}: entry must be an object, got {_json_type(info)}")
    missing = [f for f in _FIELDS if f not in info]
    if missing:
        raise SafetensorsError(f"tensor {name!r}: missing field(s) {missing}")
    extra = sorted(k for k in info if k not in _FIELDS)
    if extra:
        raise SafetensorsError(f"tensor {name!r}: unknown field(s) {extra}")

    dt_name = info["dtype"]
    if not isinstance(dt_name, str):
        raise SafetensorsError(f"tensor {name!r}: dtype must be a string, got {_json_type(dt_name)}")
    if dt_name not in _DTYPES:
        if dt_name in _KNOWN_UNSUPPORTED:
            raise SafetensorsError(f"tensor {name!r}: dtype {dt_name} is not supported (numpy has no such type)")
        raise SafetensorsError(f"tensor {name!r}: unknown dtype {dt_name!r}")
    dtype = _DTYPES[dt_name]

    shape = info["shape"]
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise SafetensorsError(f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    if len(shape) > _MAX_NDIM:
        raise SafetensorsError(f"tensor {name!r}: shape has {len(shape)} dimensions, more than {_MAX_NDIM}")
    # numpy refuses shapes whose extent (zeros ignored) overflows, even for empty arrays
    if math.prod(max(d, 1) for d in shape) * dtype.itemsize > _MAX_BYTES:
        raise SafetensorsError(f"tensor {name!r}: shape {shape} is too large")
    nbytes = math.prod(shape) * dtype.itemsize

    offs = info["data_offsets"]
    if not (isinstance(offs, list) and len(offs) == 2 and all(_is_int(o) and o >= 0 for o in offs)):
        raise SafetensorsError(
            f"tensor {name!r}: data_offsets must be [begin, end] non-negative integers, got {offs!r}"
        )
    begin, end = offs
    if begin > end:
        raise SafetensorsError(f"tensor {name!r}: data_offsets begin {begin} > end {end}")
    if end > data_len:
        raise SafetensorsError(
            f"tensor {name!r}: data_offsets end {end} is past the data section ({data_len} bytes; truncated file?)"
        )
    if end - begin != nbytes:
        raise SafetensorsError(
            f"tensor {name!r}: {end - begin} bytes in data_offsets, but shape {shape} of {dt_name} "
            f"needs {nbytes}"
        )
    return _Entry(name, dt_name, dtype, tuple(shape), begin, end)


def _finish(e: _Entry, flat: np.ndarray) -> np.ndarray:
    """Little-endian flat data (a private copy) -> native-order array of the entry's shape."""
    if e.dtype_name == "BOOL":
        raw = flat.view(np.uint8)
        if raw.size and raw.max() > 1:
            raise SafetensorsError(f"tensor {e.name!r}: BOOL data holds bytes other than 0 and 1")
    if e.dtype_name == "BF16":
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    elif not flat.dtype.isnative:
        flat = flat.astype(flat.dtype.newbyteorder("="))
    return flat.reshape(e.shape)


def load_bytes(data: Union[bytes, bytearray, memoryview]) -> Tuple[Tensors, Metadata]:
    """Parse safetensors bytes into ``({name: array}, metadata)``; see the module docs."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    buf = memoryview(data)
    if not buf.c_contiguous:
        buf = memoryview(buf.tobytes())
    buf = buf.cast("B")
    total = buf.nbytes
    n = _header_length(bytes(buf[:8]), total)
    entries, metadata = _parse_header(bytes(buf[8 : 8 + n]), total - 8 - n)
    tensors: Tensors = {}
    start = 8 + n
    for e in entries:
        count = (e.end - e.begin) // e.dtype.itemsize
        flat = np.frombuffer(buf, dtype=e.dtype, count=count, offset=start + e.begin).copy()
        tensors[e.name] = _finish(e, flat)
    return tensors, metadata


def load_file(path: PathLike) -> Tuple[Tensors, Metadata]:
    """Read a safetensors file into ``({name: array}, metadata)``; see the module docs.

    The header is checked against the file's size before any tensor is allocated; tensors are read
    straight into their arrays (no second copy of the file in memory).
    """
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        n = _header_length(f.read(8), total)
        raw = f.read(n)
        if len(raw) != n:
            raise SafetensorsError(f"file ended inside the header ({len(raw)} of {n} bytes)")
        entries, metadata = _parse_header(raw, total - 8 - n)
        tensors: Tensors = {}
        for e in entries:  # sorted by offset and contiguous, so reads are sequential
            count = (e.end - e.begin) // e.dtype.itemsize
            flat = np.empty(count, dtype=e.dtype)
            got = f.readinto(flat.view(np.uint8)) if count else 0
            if got != e.end - e.begin:
                raise SafetensorsError(f"file ended inside tensor {e.name!r} (changed while reading?)")
            tensors[e.name] = _finish(e, flat)
    return tensors, metadata
