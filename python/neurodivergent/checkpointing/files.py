"""Checkpoint and model files: safetensors with a checksum, versions, optional compression.

A file is a safetensors file (:mod:`.safetensors`) whose ``__metadata__`` (strings only) holds

* ``format``: ``neurodivergent.model`` (``model.save``) or ``neurodivergent.checkpoint``
  (``model.save_checkpoint`` and automatic checkpoints), ``format_version`` and the writer's
  ``library_version``;
* ``sha256``: the SHA-256 (hex) of the canonical JSON of every other metadata entry (keys sorted,
  separators ``,`` and ``:``, UTF-8) followed by the data section (every tensor's bytes, in file order);
  a reader recomputes it and refuses a file whose bytes changed;
* whatever the writer adds (model class, configs and the training state, as JSON strings).

Compressed files (``compression="gzip"`` or ``"lzma"``) are the gzip / xz stream of exactly that
safetensors file: ``gunzip`` / ``unxz`` gives a plain safetensors file. The fastest levels are used (gzip
level 1, xz preset 0): trained float32 parameters are close to random bits and shrink by about a quarter
at any level, while the higher levels cost several times the time. Readers recognise them by their
magic bytes, whatever the file is called. Nothing in a file is ever imported or executed, and there is
no pickle anywhere: tensors are raw bytes, everything else JSON.

Errors are typed: :class:`CheckpointError` (a ``ValueError``) for a file that is not what it should be,
with the subclasses :class:`CheckpointCorruptError` (checksum mismatch, broken compression stream,
malformed safetensors layout: :class:`~.safetensors.SafetensorsError` is raised as is, it is also a
``ValueError``) and :class:`CheckpointVersionError` (a format this version cannot read).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import threading
import zlib
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np

from .._version import __version__
from .atomic import atomic_create, atomic_open
from .safetensors import HEADER_CAP, SafetensorsError, _finish, _header_length, _parse_header, _prepare, _raw, load_bytes

PathLike = Union[str, "os.PathLike[str]"]

MODEL_FORMAT = "neurodivergent.model"
CHECKPOINT_FORMAT = "neurodivergent.checkpoint"
FORMAT_VERSION = 1
"""Version of the layout of both kinds of files (tensor names, metadata keys, training state)."""

_GZIP_MAGIC = b"\x1f\x8b"
_XZ_MAGIC = b"\xfd7zXZ\x00"
SUFFIXES = {None: ".safetensors", "gzip": ".safetensors.gz", "lzma": ".safetensors.xz"}


class CheckpointError(ValueError):
    """A file that is not a valid neurodivergent model / checkpoint file."""


class CheckpointCorruptError(CheckpointError):
    """The file's bytes are damaged: checksum mismatch or a broken compression stream."""


class CheckpointVersionError(CheckpointError):
    """The file was written in a format version this library cannot read."""


# ------------------------------------------------------------------------------------------- writing
def _canonical(metadata: Mapping[str, str]) -> bytes:
    rest = {k: v for k, v in metadata.items() if k != "sha256"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def payload_sha256(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> str:
    """The ``sha256`` entry for these tensors and metadata (see the module docs)."""
    _, arrays = _prepare(tensors, None)
    h = hashlib.sha256(_canonical(metadata))
    for a in arrays:
        h.update(_raw(a))
    return h.hexdigest()


def write_file(path: PathLike, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str], *,
               compression: Optional[str] = None, create: bool = False) -> None:
    """Write ``tensors`` and ``metadata`` (plus ``sha256``) to ``path`` atomically.

    ``create=True`` writes a new name without any named temporary file (it raises FileExistsError when
    the file exists; :func:`~.atomic.atomic_create`), otherwise the target is replaced atomically.
    """
    if compression not in SUFFIXES:
        raise ValueError(f"compression must be None, 'gzip' or 'lzma', got {compression!r}")
    meta = {k: v for k, v in metadata.items() if k != "sha256"}
    _prepare(tensors, meta)  # validates names, dtypes and metadata types before anything is opened
    h = hashlib.sha256(_canonical(meta))
    opener = atomic_create(path) if create else atomic_open(path, "wb")
    if compression is None:
        # the header holds a placeholder that is overwritten once the data is written; meanwhile a thread
        # hashes the tensors (hashlib and file writes release the GIL: hashing overlaps the I/O)
        head, arrays = _prepare(tensors, {**meta, "sha256": "0" * 64})
        marker = b'"sha256":"' + b"0" * 64 + b'"'
        at = head.index(marker) + len(b'"sha256":"')
        big = sum(a.nbytes for a in arrays) >= 1 << 20
        hasher = threading.Thread(target=lambda: [h.update(_raw(a)) for a in arrays]) if big else None
        with opener as f:
            f.write(head)
            if hasher is not None:
                hasher.start()
            try:
                for a in arrays:
                    f.write(_raw(a))
            finally:
                if hasher is not None:
                    hasher.join()
            if hasher is None:
                for a in arrays:
                    h.update(_raw(a))
            f.seek(at)
            f.write(h.hexdigest().encode("ascii"))
        return
    _, arrays = _prepare(tensors, None)
    for a in arrays:
        h.update(_raw(a))
    meta["sha256"] = h.hexdigest()
    head, arrays = _prepare(tensors, meta)
    with opener as f:
        if compression == "gzip":
            out = gzip.GzipFile(fileobj=f, mode="wb", compresslevel=1, mtime=0)
        elif compression == "lzma":
            out = lzma.LZMAFile(f, "wb", preset=0)
        out.write(head)
        for a in arrays:
            out.write(_raw(a))
        out.close()  # flushes the stream's trailer into f (f itself stays open)


# ------------------------------------------------------------------------------------------- reading
def compression_of(path: PathLike) -> Optional[str]:
    """None, 'gzip' or 'lzma', from the file's first bytes."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(_GZIP_MAGIC):
        return "gzip"
    if magic.startswith(_XZ_MAGIC):
        return "lzma"
    return None


def _declared_end(raw: bytes) -> int:
    """Largest data offset the header declares (0 when it cannot tell; the full check comes later)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return 0
    end = 0
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k != "__metadata__" and isinstance(v, dict):
                offs = v.get("data_offsets")
                if isinstance(offs, list) and len(offs) == 2 and all(type(o) is int and o >= 0 for o in offs):
                    end = max(end, offs[1])
    return end


def _read_exact(stream, n: int, what: str) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = stream.read(min(n - got, 1 << 24))
        if not chunk:
            raise SafetensorsError(f"{what}: the decompressed file ends after {got} of {n} declared bytes")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _load_compressed(path: str, kind: str) -> bytes:
    """The decompressed safetensors bytes; memory never exceeds what the stream really holds."""
    opener = gzip.open if kind == "gzip" else lzma.open
    try:
        with opener(path, "rb") as s:
            prefix = s.read(8)
            if len(prefix) < 8:
                raise CheckpointCorruptError(f"{path}: the decompressed file is {len(prefix)} bytes, shorter "
                                             "than the 8-byte header length")
            n = int.from_bytes(prefix, "little")
            if n > HEADER_CAP:
                raise SafetensorsError(f"header length {n} exceeds the cap of {HEADER_CAP} bytes")
            raw = _read_exact(s, n, path)
            data = _read_exact(s, _declared_end(raw), path)
            if s.read(1):
                raise SafetensorsError(f"{path}: bytes follow the last tensor of the decompressed file")
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise CheckpointCorruptError(f"{path}: broken {kind} stream: {exc}") from None
    return prefix + raw + data


def _load_plain(path: str, verify: bool):
    """load_file, with the SHA-256 of the raw tensor bytes computed in a thread while the next tensor
    is read (both release the GIL). Returns (tensors, metadata, hash or None)."""
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        n = _header_length(f.read(8), total)
        raw = f.read(n)
        if len(raw) != n:
            raise SafetensorsError(f"file ended inside the header ({len(raw)} of {n} bytes)")
        entries, metadata = _parse_header(raw, total - 8 - n)
        h = hashlib.sha256(_canonical(metadata)) if verify and "sha256" in metadata else None
        pending: Optional[threading.Thread] = None
        tensors: Dict[str, np.ndarray] = {}
        try:
            for e in entries:  # sorted by offset and contiguous, so reads are sequential
                count = (e.end - e.begin) // e.dtype.itemsize
                flat = np.empty(count, dtype=e.dtype)
                got = f.readinto(flat.view(np.uint8)) if count else 0
                if got != e.end - e.begin:
                    raise SafetensorsError(f"file ended inside tensor {e.name!r} (changed while reading?)")
                if h is not None:
                    if pending is not None:
                        pending.join()
                    if flat.nbytes >= 1 << 20:
                        pending = threading.Thread(target=h.update, args=(flat.view(np.uint8),))
                        pending.start()
                    else:
                        pending = None
                        h.update(flat.view(np.uint8))
                tensors[e.name] = flat
        finally:
            if pending is not None:
                pending.join()
        for e in entries:
            tensors[e.name] = _finish(e, tensors[e.name])
    return tensors, metadata, h


def read_file(path: PathLike, *, verify: bool = True) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """``(tensors, metadata)`` of a plain or compressed file; with ``verify`` the ``sha256`` entry (when
    the file has one) is checked. Malformed files raise a :class:`CheckpointError` or
    :class:`~.safetensors.SafetensorsError` (both ``ValueError``), never anything else."""
    path = os.fspath(path)
    kind = compression_of(path)
    h = None
    try:
        if kind is None:
            tensors, meta, h = _load_plain(path, verify)
        else:
            tensors, meta = load_bytes(_load_compressed(path, kind))
    except (SafetensorsError, CheckpointError):
        raise
    except (MemoryError, OverflowError) as exc:  # a lying header that passes the size checks
        raise CheckpointCorruptError(f"{path}: declares more data than can be read: {exc!r}") from None
    if verify and "sha256" in meta:
        if h is None:
            h = hashlib.sha256(_canonical(meta))
            for a in tensors.values():  # in data order
                h.update(_raw(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))))
        if h.hexdigest() != meta["sha256"]:
            raise CheckpointCorruptError(f"{path}: checksum mismatch (sha256 {h.hexdigest()[:16]}... != "
                                         f"{meta['sha256'][:16]}... in the header): the file is damaged")
    return tensors, meta


def read_metadata(path: PathLike) -> Dict[str, str]:
    """The metadata of a file without reading its tensors (the header only; not checksum-verified)."""
    path = os.fspath(path)
    kind = compression_of(path)
    if kind is None:
        with open(path, "rb") as f:
            total = os.fstat(f.fileno()).st_size
            n = _header_length(f.read(8), total)
            raw = f.read(n)
        data_len = total - 8 - n
    else:
        opener = gzip.open if kind == "gzip" else lzma.open
        try:
            with opener(path, "rb") as s:
                prefix = s.read(8)
                n = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
                if n < 0 or n > HEADER_CAP:
                    raise SafetensorsError(f"{path}: bad header length")
                raw = _read_exact(s, n, path)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise CheckpointCorruptError(f"{path}: broken {kind} stream: {exc}") from None
        data_len = _declared_end(raw)
    if len(raw) != n:
        raise SafetensorsError(f"{path}: file ended inside the header")
    _, meta = _parse_header(raw, data_len)
    return meta


def check_format(path: PathLike, meta: Mapping[str, str], accepted=(MODEL_FORMAT, CHECKPOINT_FORMAT)) -> int:
    """Raise unless ``meta`` is of an accepted format in a version this library reads; returns the version."""
    fmt = meta.get("format")
    if fmt not in accepted:
        kinds = " or ".join(accepted)
        if fmt in (MODEL_FORMAT, CHECKPOINT_FORMAT):
            hint = (" (a saved model has no training state: load it with load_model and train with fit)"
                    if fmt == MODEL_FORMAT else "")
            raise CheckpointError(f"{os.fspath(path)} is a {fmt} file, not a {kinds} file{hint}")
        raise CheckpointError(f"{os.fspath(path)} is not a neurodivergent model file (format={fmt!r})")
    raw = meta.get("format_version", "")
    try:
        version = int(raw)
    except ValueError:
        raise CheckpointError(f"{os.fspath(path)} has an unreadable format_version {raw!r}") from None
    if version > FORMAT_VERSION:
        raise CheckpointVersionError(
            f"{os.fspath(path)} was written by neurodivergent {meta.get('library_version', '?')} in format version "
            f"{version}; this version ({__version__}) reads format versions 1 to {FORMAT_VERSION}: upgrade "
            "neurodivergent to load it")
    if version < 1:
        raise CheckpointVersionError(f"{os.fspath(path)} has format version {version}, which never existed")
    return version


__all__ = ["CheckpointError", "CheckpointCorruptError", "CheckpointVersionError", "MODEL_FORMAT",
           "CHECKPOINT_FORMAT", "FORMAT_VERSION", "SUFFIXES", "write_file", "read_file", "read_metadata",
           "compression_of", "check_format", "payload_sha256"]
