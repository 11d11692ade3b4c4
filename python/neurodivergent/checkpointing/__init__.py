"""Checkpoint files: safetensors-compatible tensors and crash-safe (atomic) writes. No pickle anywhere."""
from .atomic import atomic_open, atomic_write_bytes, atomic_write_json, atomic_write_text, fsync_dir
from .safetensors import HEADER_CAP, SafetensorsError, load_bytes, load_file, save_bytes, save_file

__all__ = [
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
