"""Immutable, validated configuration objects with ``with_*`` builders.

Every config class is a frozen dataclass. For each field ``f`` a ``with_f(value)`` method returns a new
object; the value is validated at once (the error names the field), so a bad learning rate fails at
the ``with_learning_rate`` call and not ten minutes into training. ``X()`` and ``X.new()`` both build the
defaults; ``to_dict()`` / ``from_dict()`` round-trip through plain JSON types.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable, Dict

Check = Callable[[str, Any], Any]


def _fmt(v: Any) -> str:
    return repr(v)


# ---------------------------------------------------------------- field checks (return the normalised value)
def positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} {_fmt(v)}")
    if v < 1:
        raise ValueError(f"{name} must be >= 1, got {v}")
    return int(v)


def nonneg_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} {_fmt(v)}")
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return int(v)


def optional(check: Check) -> Check:
    def f(name: str, v: Any) -> Any:
        return None if v is None else check(name, v)

    return f


def _real(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(v).__name__} {_fmt(v)}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def positive_float(name: str, v: Any) -> float:
    v = _real(name, v)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    return v


def nonneg_float(name: str, v: Any) -> float:
    v = _real(name, v)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def fraction(name: str, v: Any) -> float:
    """A value in [0, 1)."""
    v = _real(name, v)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {v}")
    return v


def boolean(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"{name} must be True or False, got {type(v).__name__} {_fmt(v)}")
    return v


def one_of(*choices: str) -> Check:
    def f(name: str, v: Any) -> str:
        if not isinstance(v, str) or v.lower() not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {_fmt(v)}")
        return v.lower()

    return f


def any_value(name: str, v: Any) -> Any:
    return v


def cfg_field(default: Any, check: Check = any_value, doc: str = "") -> Any:
    return dataclasses.field(default=default, metadata={"check": check, "doc": doc})


# ---------------------------------------------------------------- the decorator
def config_class(cls: type) -> type:
    """Turn a class with ``cfg_field`` attributes into a frozen, validated config with builders."""
    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check", any_value)
            value = check(f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        extra = getattr(self, "_validate", None)
        if extra is not None:
            extra()

    cls.__post_init__ = __post_init__  # before dataclass() so that the generated __init__ calls it
    cls = dataclasses.dataclass(frozen=True)(cls)

    def make_with(fname: str) -> Callable:
        def with_(self, value):
            return dataclasses.replace(self, **{fname: value})

        with_.__name__ = f"with_{fname}"
        doc = next(f.metadata.get("doc", "") for f in dataclasses.fields(cls) if f.name == fname)
        with_.__doc__ = f"Return a copy with ``{fname}`` set (validated now). {doc}".strip()
        return with_

    for f in dataclasses.fields(cls):
        if f"with_{f.name}" not in cls.__dict__:
            setattr(cls, f"with_{f.name}", make_with(f.name))

    cls.new = classmethod(lambda c, **kw: c(**kw))

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if hasattr(v, "to_dict"):
                v = {"__type__": type(v).__name__, **v.to_dict()}
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    def from_dict(c, d: Dict[str, Any]):
        if not isinstance(d, dict):
            raise TypeError(f"{c.__name__}.from_dict needs a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(c)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {c.__name__} fields: {', '.join(unknown)}")
        kw = {}
        for k, v in d.items():
            if isinstance(v, dict) and "__type__" in v:
                v = _decode_nested(v)
            kw[k] = v
        return c(**kw)

    cls.to_dict = to_dict
    cls.from_dict = classmethod(from_dict)
    _REGISTRY[cls.__name__] = cls
    return cls


_REGISTRY: Dict[str, type] = {}


def _decode_nested(d: Dict[str, Any]) -> Any:
    d = dict(d)
    name = d.pop("__type__")
    if name not in _REGISTRY:
        raise ValueError(f"unknown config type {name!r} in dict")
    return _REGISTRY[name].from_dict(d)
