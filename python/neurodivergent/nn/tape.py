"""A small reverse-mode tape: forward ops record a backward closure; ``backward`` replays them in reverse.

Values are numpy arrays wrapped in :class:`Var` (an id plus the array). Each recorded entry maps the
gradient of its output to the gradients of its inputs; gradients reaching the same Var from several
consumers are summed. Parameter gradients are not Vars: ops accumulate them straight into the
model's flat gradient buffer (``+=``), following the kernel rule.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

BackwardFn = Callable[[np.ndarray], Sequence[Optional[np.ndarray]]]


class Var:
    __slots__ = ("data", "id")

    def __init__(self, data: np.ndarray, id_: int):
        self.data = data
        self.id = id_

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.data.shape


class Tape:
    def __init__(self) -> None:
        self._next = 0
        self._entries: List[Tuple[object, Tuple[int, ...], BackwardFn]] = []

    def var(self, data: np.ndarray) -> Var:
        v = Var(data, self._next)
        self._next += 1
        return v

    def record(self, out: Var, inputs: Sequence[Var], fn: BackwardFn) -> None:
        self._entries.append((out.id, tuple(v.id for v in inputs), fn))

    def record_multi(self, outs: Sequence[Var], inputs: Sequence[Var], fn) -> None:
        """An op with several outputs: ``fn`` receives a tuple with the gradient of each output (None
        where no gradient reached it) and returns the gradients of the inputs."""
        self._entries.append((tuple(v.id for v in outs), tuple(v.id for v in inputs), fn))

    def backward(self, out: Var, grad: np.ndarray) -> Dict[int, np.ndarray]:
        """Run every recorded backward in reverse; returns gradients of Vars that were not consumed
        (e.g. the model inputs)."""
        grads: Dict[int, np.ndarray] = {out.id: grad}
        entries = self._entries
        try:
            while entries:
                # pop each step as it runs: its closure (the saved activations) is freed before the next
                # one, so memory falls during the backward instead of being held to its end
                out_id, in_ids, fn = entries.pop()
                if isinstance(out_id, tuple):
                    gs = tuple(grads.pop(o, None) for o in out_id)
                    if all(g is None for g in gs):
                        continue
                    in_grads = fn(gs)
                else:
                    g = grads.pop(out_id, None)
                    if g is None:
                        continue
                    in_grads = fn(g)
                fn = None
                for iid, ig in zip(in_ids, in_grads):
                    if ig is None:
                        continue
                    if iid in grads:
                        grads[iid] = grads[iid] + ig
                    else:
                        grads[iid] = ig
                in_grads = None
        finally:
            entries.clear()
        return grads

    def __len__(self) -> int:
        return len(self._entries)
