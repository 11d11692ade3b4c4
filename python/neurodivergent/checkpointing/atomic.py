"""Crash-safe file writes: a crash at any instant leaves the old file or the new one, never a mix.

Each writer goes to a temporary file in the target's directory (same file system, so the rename is
atomic), flushes and fsyncs it, ``os.replace``-s it over the target and then fsyncs the directory so
the rename itself is durable. On any error, ``KeyboardInterrupt`` included, the temporary file is
removed and the exception propagates; the target is untouched.

The new file gets the permissions of the file it replaces, or ``0o666`` less the umask for a new one
(what ``open(path, "w")`` would give). A target that is a symbolic link is replaced by a regular file
(the link is not followed).

A temporary file cannot survive an error, but it can survive SIGKILL or a power cut (nothing runs
then). :func:`atomic_create` writes a file under a *new* name without any named temporary on Linux
(``O_TMPFILE``: the data goes to an unnamed inode that ``linkat`` names only once it is complete and
fsynced), so a killed writer leaves either the complete file or nothing. :func:`remove_stale_temporaries`
deletes what a killed :func:`atomic_open` left behind (names ``.<target>.<random>.tmp``).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from typing import IO, Any, Iterator, Optional, Union

__all__ = ["atomic_open", "atomic_create", "remove_stale_temporaries", "unnamed_temporaries_supported", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "fsync_dir"]

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


def _open_unnamed(directory: str) -> Optional[int]:
    """An O_TMPFILE descriptor in ``directory``, or None where the OS / file system has none."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(directory, flag | os.O_WRONLY, 0o666)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None
        raise


def unnamed_temporaries_supported(directory: PathLike) -> bool:
    """Whether :func:`atomic_create` can write into ``directory`` without a named temporary file."""
    fd = _open_unnamed(os.fspath(directory))
    if fd is None:
        return False
    os.close(fd)
    return True


@contextlib.contextmanager
def atomic_create(path: PathLike) -> Iterator[IO]:
    """Create the new file ``path`` all-or-nothing: ``with atomic_create(p) as f: f.write(...)``.

    Raises ``FileExistsError`` (before anything is written) when ``path`` exists: it never replaces a
    file (use :func:`atomic_open` for that). On Linux the data is written to an unnamed file
    (``O_TMPFILE``), fsynced, and then linked under ``path`` in one step, so even SIGKILL leaves either
    the complete file or no trace; elsewhere a named temporary is linked (no overwrite) and removed.
    The directory is fsynced after. Binary mode only.
    """
    path = os.fspath(path)
    if not path:
        raise ValueError("path is empty")
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if not base:
        raise ValueError(f"path {path!r} names a directory, not a file")
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "file exists (atomic_create never replaces)", path)
    perms = 0o666 & ~_umask()
    fd = _open_unnamed(directory)
    if fd is None:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    else:
        tmp = None
    try:
        try:
            f = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if tmp is None:
                os.chmod(f"/proc/self/fd/{f.fileno()}", perms)
                # linkat(AT_SYMLINK_FOLLOW) on the /proc link names the unnamed inode; a dir fd makes
                # CPython call linkat (plain link() would try to link the /proc symlink itself)
                dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
                try:
                    os.link(f"/proc/self/fd/{f.fileno()}", base, dst_dir_fd=dfd, follow_symlinks=True)
                finally:
                    os.close(dfd)
        if tmp is not None:
            os.chmod(tmp, perms)
            os.link(tmp, path)  # fails with FileExistsError instead of replacing
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    fsync_dir(directory)


def remove_stale_temporaries(directory: PathLike, names: Optional[Any] = None) -> list:
    """Delete the temporary files (``.<name>.<random>.tmp``) that a killed writer left in ``directory``;
    with ``names`` (an iterable of target base names, or a predicate on them) only those of these targets.
    Returns the paths removed. Do not call it while another process writes into the same directory."""
    directory = os.fspath(directory)
    if names is None or callable(names):
        accept = names
    else:
        wanted = {str(n) for n in names}
        accept = wanted.__contains__
    removed = []
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for e in entries:
        if not (e.startswith(".") and e.endswith(".tmp")) or e.count(".") < 3:
            continue
        target = e[1:-4].rsplit(".", 1)[0]
        if accept is not None and not accept(target):
            continue
        p = os.path.join(directory, e)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(p)
            removed.append(p)
    if removed:
        fsync_dir(directory)
    return removed
