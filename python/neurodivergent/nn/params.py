"""One contiguous float32 buffer for all parameters of a model (and one for their gradients).

Named tensors are views into the flat buffers (llm.c's ``malloc_and_point_parameters``), so the
optimizer, clipping, checkpointing and analyzers work on one array while layers see shaped views.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np


class ParameterBuffer:
    """Flat parameter and gradient storage with named, shaped views.

    >>> pb = ParameterBuffer([("w", (3, 2)), ("b", (3,))])
    >>> pb.data.shape, pb["w"].shape
    ((9,), (3, 2))
    """

    def __init__(self, specs: Sequence[Tuple[str, Tuple[int, ...]]], dtype=np.float32):
        names = [n for n, _ in specs]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate parameter names: {dup}")
        self.dtype = np.dtype(dtype)
        self.names: List[str] = names
        self.shapes: Dict[str, Tuple[int, ...]] = {}
        self.offsets: Dict[str, Tuple[int, int]] = {}
        off = 0
        for name, shape in specs:
            shape = tuple(int(s) for s in shape)
            if any(s < 0 for s in shape):
                raise ValueError(f"parameter {name!r} has a negative dimension: {shape}")
            n = int(np.prod(shape, dtype=np.int64))
            self.shapes[name] = shape
            self.offsets[name] = (off, off + n)
            off += n
        self.size = off
        self.data = np.zeros(off, dtype=self.dtype)
        self.grad = np.zeros(off, dtype=self.dtype)
        self._views = {n: self._view(self.data, n) for n in names}
        self._gviews = {n: self._view(self.grad, n) for n in names}

    def _view(self, flat: np.ndarray, name: str) -> np.ndarray:
        a, b = self.offsets[name]
        return flat[a:b].reshape(self.shapes[name])

    def __getitem__(self, name: str) -> np.ndarray:
        return self._views[name]

    def grad_of(self, name: str) -> np.ndarray:
        return self._gviews[name]

    def __contains__(self, name: str) -> bool:
        return name in self._views

    def __iter__(self) -> Iterable[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def zero_grad(self) -> None:
        self.grad.fill(0)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Copies of every named tensor."""
        return {n: self._views[n].copy() for n in self.names}

    def load_state_dict(self, tensors: Dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy tensors into the buffer; every name and shape must match (all or nothing)."""
        missing = [n for n in self.names if n not in tensors]
        unexpected = [n for n in tensors if n not in self._views]
        if strict and (missing or unexpected):
            raise ValueError(f"parameter names differ: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for n in self.names:
            if n in tensors and tuple(np.shape(tensors[n])) != self.shapes[n]:
                raise ValueError(
                    f"parameter {n!r} has shape {tuple(np.shape(tensors[n]))}, expected {self.shapes[n]}"
                )
        for n in self.names:
            if n in tensors:
                t = np.asarray(tensors[n])
                if not np.all(np.isfinite(t)):
                    raise ValueError(f"parameter {n!r} contains NaN or inf")
        for n in self.names:
            if n in tensors:
                self._views[n][...] = tensors[n]

    def copy_data(self) -> np.ndarray:
        return self.data.copy()

    def __repr__(self) -> str:
        return f"ParameterBuffer({len(self.names)} tensors, {self.size} values, {self.dtype})"
