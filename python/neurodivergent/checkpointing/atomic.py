"""Crash-safe file writes: a crash at any instant leaves the old file or the new one, never a mix.

Each writer goes to a temporary file in the target's directory (same file system, so the rename is
atomic), flushes and fsyncs it, ``os.replace``-s it over the target and then fsyncs the directory so
the rename itself is durable. On any error, ``KeyboardInterrupt`` included, the temporary file is
removed and the exception propagates; the target is untouched.

The new file gets the permissions of the file it replaces, or ``0o666`` less the umask for a new one
(what ``open(path, "w")`` would give). A target that is a symbolic link is replaced by a regular file
(the link is not followed).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from typing import IO, Any, Iterator, Optional, Union

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "fsync_dir"]

PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide and racy to toggle)
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(directory: PathLike) -> None:
    """fsync a directory so that a rename inside it survives a crash (no-op where unsupported)."""
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(os.fspath(directory), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems do not support fsync on directories
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", *, encoding: str = "utf-8", newline: Optional[str] = None) -> Iterator[IO]:
    """Open ``path`` for an all-or-nothing write: ``with atomic_open(p) as f: f.write(...)``.

    ``mode`` is ``"wb"`` (bytes) or ``"w"`` (text, ``encoding`` defaults to UTF-8). The target is
    replaced only when the ``with`` block exits normally.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports mode 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    if not path:
        raise ValueError("path is empty")
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if not base:
        raise ValueError(f"path {path!r} names a directory, not a file")
    try:
        perms = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        perms = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        kwargs = {} if mode == "wb" else {"encoding": encoding, "newline": newline}
        try:
            f = os.fdopen(fd, mode, **kwargs)
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, perms)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docs)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: PathLike, text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically, encoded as ``encoding`` (UTF-8), newlines untranslated."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON (sorted keys, indent 2, trailing newline) to ``path`` atomically.

    NaN and infinities are not JSON: they raise ``ValueError`` before anything is written, as do
    objects that JSON cannot encode (``TypeError``).
    """
    try:
        text = json.dumps(obj, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False)
    except ValueError as exc:
        raise ValueError(
            f"cannot write {os.fspath(path)!r} as JSON: {exc} (NaN/inf are not allowed; "
            f"store them as strings or null)"
        ) from None
    except TypeError as exc:
        raise TypeError(f"cannot write {os.fspath(path)!r} as JSON: {exc}") from None
    atomic_write_text(path, text + "\n")
