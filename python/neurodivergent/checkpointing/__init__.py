"""Checkpoint files: safetensors-compatible tensors and crash-safe (atomic) writes. No pickle anywhere.

``CheckpointConfig`` / ``CheckpointStrategy`` / ``SaveFrequency`` configure automatic checkpoints
(:mod:`.config`); :mod:`.files` is the file format (checksum, versions, compression);
:func:`list_checkpoints` / :func:`latest_checkpoint` find the checkpoints of a directory.
"""
from .atomic import (atomic_create, atomic_open, atomic_write_bytes, atomic_write_json, atomic_write_text, fsync_dir,
                     remove_stale_temporaries)
from .config import CheckpointConfig, CheckpointStrategy, SaveFrequency
from .files import CheckpointCorruptError, CheckpointError, CheckpointVersionError, read_file, read_metadata, write_file
from .safetensors import HEADER_CAP, SafetensorsError, load_bytes, load_file, save_bytes, save_file

__all__ = [
    "CheckpointConfig",
    "CheckpointStrategy",
    "SaveFrequency",
    "CheckpointError",
    "CheckpointCorruptError",
    "CheckpointVersionError",
    "read_file",
    "read_metadata",
    "write_file",
    "list_checkpoints",
    "latest_checkpoint",
    "atomic_create",
    "remove_stale_temporaries",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "fsync_dir",
    "SafetensorsError",
    "save_file",
    "save_bytes",
    "load_file",
    "load_bytes",
    "HEADER_CAP",
]


def list_checkpoints(directory):
    """``[(path, step, epoch)]`` of the readable checkpoint files in ``directory``, oldest (fewest steps)
    first; headers only are read (files that are not checkpoints, or damaged headers, are skipped)."""
    import json
    import os

    from .files import CHECKPOINT_FORMAT

    out = []
    for name in sorted(os.listdir(directory)):
        p = os.path.join(directory, name)
        if name.startswith(".") or not os.path.isfile(p):
            continue
        try:
            meta = read_metadata(p)
            if meta.get("format") != CHECKPOINT_FORMAT:
                continue
            pos = json.loads(meta["training_state"])["position"]
            out.append((p, int(pos["step"]), int(pos["epoch"]), os.stat(p).st_mtime_ns))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    out.sort(key=lambda t: (t[1], t[2], t[3]))
    return [t[:3] for t in out]


def latest_checkpoint(directory):
    """Path of the checkpoint in ``directory`` furthest into training (most steps; ties: newest file),
    or None when there is none."""
    found = list_checkpoints(directory)
    return found[-1][0] if found else None
