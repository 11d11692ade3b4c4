"""The only module that imports the compiled extension(s); device selection and array coercion."""
from __future__ import annotations

import os

import numpy as np

try:
    from . import _core  # noqa: F401
except ImportError as exc:  # pragma: no cover - only when the package was not built
    raise ImportError(
        "neurodivergent's C++ extension (_core) is missing: install the package with "
        "'pip install .' (or tools/dev-build.sh for a working-tree build)"
    ) from exc

core = _core

try:  # the CUDA twin is optional; absent on CPU-only builds
    from . import _cuda  # type: ignore  # noqa: F401

    cuda = _cuda
except ImportError:
    cuda = None

FLOAT_DTYPES = (np.float32, np.float64)


def set_num_threads(n: int) -> None:
    """Threads used by every C++ kernel (default: all cores, or ND_NUM_THREADS)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"num_threads must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"num_threads must be >= 1, got {n}")
    core.set_num_threads(int(n))


def get_num_threads() -> int:
    return int(core.get_num_threads())


def as_float_array(x, name: str, dtype=None) -> np.ndarray:
    """Coerce to a C-contiguous float32/float64 array; ints/bools become float32 unless dtype is given."""
    a = np.asarray(x)
    if dtype is None:
        dtype = a.dtype if a.dtype in FLOAT_DTYPES else np.float32
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def env_threads() -> int | None:
    v = os.environ.get("ND_NUM_THREADS")
    return int(v) if v and v.isdigit() else None
