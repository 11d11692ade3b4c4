"""Gradient clipping and L1 / L2 penalties over the flat gradient buffer.

``GradientClipping.ByNorm(max_norm)`` rescales the whole gradient when its **global** L2 norm (over every
parameter of the model, one flat buffer) exceeds ``max_norm``, as ``torch.nn.utils.clip_grad_norm_``:
``g *= max_norm / (norm + 1e-6)`` when that factor is below 1. ``GradientClipping.ByValue(lo, hi)`` clamps
every element into ``[lo, hi]`` (``torch.nn.utils.clip_grad_value_`` with ``lo = -hi``). Both may be set.

Order of application in every training step (after the loss gradient is in the buffer):

1. the L1 / L2 penalty gradients are added: ``grad += l1 * sign(p) + l2 * p`` (``add_penalties``), i.e.
   the gradient of ``l1 * sum|p| + 0.5 * l2 * sum p^2`` (``penalty_value``), over every parameter
   (weights and biases alike; ``sign(0) = 0``);
2. clip by value;
3. clip by norm (the norm of the already value-clipped gradient).

``apply_clipping`` applies steps 2 and 3 in that order whatever the order of the ``clips`` given;
``regularize_and_clip`` runs 1 to 3. The heavy passes are C++ kernels: ``_core.add_penalty_grad``,
``_core.clip_by_value``, ``_core.sum_squares`` (accumulated in double) and ``_core.scale_inplace``.

A non-finite gradient norm (inf / NaN in the gradient) is reported as such and the gradient is left
unscaled (torch would multiply it by NaN): the trainer's divergence check reports it instead.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Tuple, Union

import numpy as np

from .._backend import core as _core
from .._config import _real, cfg_field, config_class, positive_float

__all__ = [
    "GradientClipping",
    "ClipByNorm",
    "ClipByValue",
    "normalize_clipping",
    "apply_clipping",
    "add_penalties",
    "penalty_value",
    "regularize_and_clip",
    "global_norm",
]

_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s


def _finite(name: str, v: Any) -> float:
    return _real(name, v)


@config_class
class ClipByNorm:
    """Rescale the gradient so that its global L2 norm is at most ``max_norm`` (``GradientClipping.ByNorm``)."""

    max_norm: float = cfg_field(1.0, positive_float, "Largest global L2 norm of the gradient.")

    kind = "norm"

    def __repr__(self) -> str:
        return f"GradientClipping.ByNorm({self.max_norm!r})"


@config_class
class ClipByValue:
    """Clamp every gradient element into ``[lo, hi]`` (``GradientClipping.ByValue``)."""

    lo: float = cfg_field(-1.0, _finite, "Lower bound.")
    hi: float = cfg_field(1.0, _finite, "Upper bound (> lo).")

    kind = "value"

    def _validate(self) -> None:
        if not self.lo < self.hi:
            raise ValueError(f"GradientClipping.ByValue needs lo < hi, got lo={self.lo}, hi={self.hi}")

    def __repr__(self) -> str:
        return f"GradientClipping.ByValue({self.lo!r}, {self.hi!r})"


Clip = Union[ClipByNorm, ClipByValue]


class GradientClipping:
    """``GradientClipping.ByNorm(max_norm)`` and ``GradientClipping.ByValue(lo, hi)``."""

    def __init__(self) -> None:
        raise TypeError("GradientClipping is a namespace: use GradientClipping.ByNorm(1.0) or .ByValue(-1.0, 1.0)")

    @staticmethod
    def ByNorm(max_norm: float) -> ClipByNorm:  # noqa: N802 (the guide's name)
        return ClipByNorm(max_norm=max_norm)

    @staticmethod
    def ByValue(lo: float, hi: float) -> ClipByValue:  # noqa: N802
        return ClipByValue(lo=lo, hi=hi)

    @staticmethod
    def from_dict(d: Dict[str, Any]) -> Clip:
        if not isinstance(d, dict):
            raise TypeError(f"GradientClipping.from_dict needs a dict, got {type(d).__name__}")
        d = dict(d)
        t = d.pop("__type__", None)
        if t == "ClipByNorm" or (t is None and "max_norm" in d):
            return ClipByNorm.from_dict(d)
        if t == "ClipByValue" or (t is None and ("lo" in d or "hi" in d)):
            return ClipByValue.from_dict(d)
        raise ValueError(f"not a gradient clipping dict: {d!r}")


def normalize_clipping(clips: Any, name: str = "gradient_clipping") -> Tuple[Clip, ...]:
    """``None`` / one clip / a sequence of clips -> a tuple in application order (value first, then norm).
    At most one of each kind."""
    if clips is None:
        return ()
    if isinstance(clips, (ClipByNorm, ClipByValue)):
        clips = (clips,)
    elif isinstance(clips, (list, tuple)):
        clips = tuple(clips)
    else:
        raise TypeError(f"{name} must be GradientClipping.ByNorm(...), GradientClipping.ByValue(...), a tuple of "
                        f"them or None, got {type(clips).__name__} {clips!r}")
    by_value = [c for c in clips if isinstance(c, ClipByValue)]
    by_norm = [c for c in clips if isinstance(c, ClipByNorm)]
    if len(by_value) + len(by_norm) != len(clips):
        bad = next(c for c in clips if not isinstance(c, (ClipByNorm, ClipByValue)))
        raise TypeError(f"{name} entries must be GradientClipping.ByNorm / ByValue, got {type(bad).__name__} {bad!r}")
    if len(by_value) > 1 or len(by_norm) > 1:
        raise ValueError(f"{name} may hold at most one ByNorm and one ByValue, got {list(clips)!r}")
    return tuple(by_value) + tuple(by_norm)


def _flat(grad: Any, name: str) -> np.ndarray:
    if not isinstance(grad, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(grad).__name__}")
    if grad.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {grad.dtype}")
    if not grad.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    return grad.reshape(-1)


def global_norm(grad: np.ndarray) -> float:
    """sqrt(sum(grad ** 2)) accumulated in double (C++)."""
    return math.sqrt(_core.sum_squares(_flat(grad, "grad")))


def apply_clipping(grad: np.ndarray, clips: Any) -> Dict[str, float]:
    """Clip ``grad`` in place: by value, then by norm (see the module docstring).

    Returns ``{"norm_before": ..., "norm_after": ..., "clip_coef": ...}``: the global L2 norm before any
    clipping, after all clipping (after ByNorm it is computed as ``norm * clip_coef``, not re-measured) and
    the factor ByNorm applied (1.0 when it did not scale)."""
    g = _flat(grad, "grad")
    if not g.flags.writeable:
        raise ValueError("grad is read-only")
    order = normalize_clipping(clips, "clips")
    norm = math.sqrt(_core.sum_squares(g))
    out = {"norm_before": norm, "norm_after": norm, "clip_coef": 1.0}
    for c in order:
        if isinstance(c, ClipByValue):
            _core.clip_by_value(g, c.lo, c.hi)
            norm = math.sqrt(_core.sum_squares(g))
        else:
            coef = c.max_norm / (norm + _EPS)
            if math.isfinite(norm) and coef < 1.0:
                _core.scale_inplace(g, coef)
                out["clip_coef"] = coef
                norm = norm * coef
    out["norm_after"] = norm
    return out


def add_penalties(grad: np.ndarray, params: np.ndarray, l1: float = 0.0, l2: float = 0.0) -> None:
    """``grad += l1 * sign(params) + l2 * params`` in place (C++; one pass; nothing when both are 0)."""
    g = _flat(grad, "grad")
    p = _flat(params, "params")
    l1 = _nonneg("l1", l1)
    l2 = _nonneg("l2", l2)
    if g.shape != p.shape:
        raise ValueError(f"params must have grad's size {g.size}, got {p.size}")
    if g.dtype != p.dtype:
        raise TypeError(f"params has dtype {p.dtype} but grad has {g.dtype}")
    if l1 == 0.0 and l2 == 0.0:
        return
    if not g.flags.writeable:
        raise ValueError("grad is read-only")
    _core.add_penalty_grad(g, p, l1, l2)


def penalty_value(params: np.ndarray, l1: float = 0.0, l2: float = 0.0) -> float:
    """The penalty whose gradient ``add_penalties`` adds: ``l1 * sum|p| + 0.5 * l2 * sum p^2`` (float64)."""
    p = _flat(params, "params")
    l1 = _nonneg("l1", l1)
    l2 = _nonneg("l2", l2)
    out = 0.0
    if l1:
        out += l1 * float(np.abs(p, dtype=np.float64).sum())
    if l2:
        out += 0.5 * l2 * _core.sum_squares(p)
    return out


def regularize_and_clip(grad: np.ndarray, params: np.ndarray, l1: float = 0.0, l2: float = 0.0,
                        clips: Any = None) -> Dict[str, float]:
    """Steps 1 to 3 of the module docstring; returns ``apply_clipping``'s dict (norms after the penalties)."""
    add_penalties(grad, params, l1, l2)
    return apply_clipping(grad, clips)


def _nonneg(name: str, v: Any) -> float:
    v = _real(name, v)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v
