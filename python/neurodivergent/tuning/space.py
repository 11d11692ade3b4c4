"""The search space: named categorical, discrete and continuous dimensions.

>>> space = (HyperparameterSpace()
...          .add_categorical("model_type", ["mlp", "lstm"])
...          .add_discrete("hidden_size", [16, 32, 64])
...          .add_continuous("learning_rate", 1e-4, 1e-2, log_scale=True))

A space is immutable: every ``add_*`` returns a new space. Dimensions keep the order in which they
were added (grids enumerate them in that order, the last one varying fastest).

Each dimension also has a position in the unit interval, used by the Gaussian process and by
NSGA-II: a continuous value maps linearly from ``[low, high]`` (from ``[log low, log high]`` when
``log_scale``) onto ``[0, 1]``; the ``i``-th of ``k`` discrete values sits at ``i / (k - 1)`` (so values
in a geometric progression, such as 16, 32, 64, are evenly spaced, as on a log scale); a categorical
value is its index (one-hot columns for the Gaussian process, ``floor(u * k)`` for NSGA-II genes).

Spaces round-trip through plain dicts (``to_dict`` / ``from_dict``) and load from JSON or TOML files
(``from_file``)::

    {"parameters": [
        {"name": "model_type", "type": "categorical", "values": ["mlp", "gru"]},
        {"name": "hidden_size", "type": "discrete", "values": [16, 32, 64]},
        {"name": "learning_rate", "type": "continuous", "low": 1e-4, "high": 1e-2, "log_scale": true}]}
"""
from __future__ import annotations

import itertools
import json
import math
import numbers
import os
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import numpy as np

__all__ = ["HyperparameterSpace", "Categorical", "Discrete", "Continuous", "DEFAULT_GRID_RESOLUTION"]

DEFAULT_GRID_RESOLUTION = 5


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a parameter name must be a non-empty str, got {name!r}")
    return name


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars (so that params are JSON-friendly and compare by value)."""
    if isinstance(v, np.generic):
        return v.item()
    return v


class Categorical:
    """Unordered choices (strings, numbers or booleans)."""

    kind = "categorical"

    def __init__(self, name: str, values: Sequence[Any]):
        self.name = _check_name(name)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) and not isinstance(values, np.ndarray):
            raise TypeError(f"parameter {name!r}: values must be a list, got {type(values).__name__}")
        vals = tuple(_plain(v) for v in values)
        if not vals:
            raise ValueError(f"parameter {name!r}: needs at least one value")
        for v in vals:
            if not isinstance(v, (str, bool, numbers.Real)) or (_is_number(v) and not math.isfinite(v)):
                raise TypeError(f"parameter {name!r}: categorical values must be str, bool or finite numbers, got {v!r}")
        if len(set(map(repr, vals))) != len(vals):
            raise ValueError(f"parameter {name!r}: duplicate values in {list(vals)!r}")
        self.values = vals

    @property
    def size(self) -> int:
        return len(self.values)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def grid(self, resolution: int) -> List[Any]:
        return list(self.values)

    def index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if type(v) is type(value) and v == value or repr(v) == repr(value):
                return i
        raise ValueError(f"parameter {self.name!r}: {value!r} is not one of {list(self.values)!r}")

    def to_unit(self, value: Any) -> float:
        k = len(self.values)
        return (self.index(value) + 0.5) / k

    def from_unit(self, u: float) -> Any:
        k = len(self.values)
        return self.values[min(k - 1, max(0, int(math.floor(float(u) * k))))]

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "type": self.kind, "values": list(self.values)}

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        return f"Categorical({self.name!r}, {list(self.values)!r})"


class Discrete:
    """Ordered numeric values (sorted ascending); ints stay ints."""

    kind = "discrete"

    def __init__(self, name: str, values: Sequence[Any]):
        self.name = _check_name(name)
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise TypeError(f"parameter {name!r}: values must be a list of numbers, got {type(values).__name__}")
        vals = [_plain(v) for v in values]
        if not vals:
            raise ValueError(f"parameter {name!r}: needs at least one value")
        for v in vals:
            if not _is_number(v) or not math.isfinite(v):
                raise TypeError(f"parameter {name!r}: discrete values must be finite numbers, got {v!r}")
        if len(set(vals)) != len(vals):
            raise ValueError(f"parameter {name!r}: duplicate values in {vals!r}")
        self.values = tuple(sorted(vals))

    @property
    def size(self) -> int:
        return len(self.values)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def grid(self, resolution: int) -> List[Any]:
        return list(self.values)

    def index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if v == value:
                return i
        raise ValueError(f"parameter {self.name!r}: {value!r} is not one of {list(self.values)!r}")

    def to_unit(self, value: Any) -> float:
        k = len(self.values)
        return 0.0 if k == 1 else self.index(value) / (k - 1)

    def from_unit(self, u: float) -> Any:
        k = len(self.values)
        i = int(round(min(1.0, max(0.0, float(u))) * (k - 1)))
        return self.values[i]

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "type": self.kind, "values": list(self.values)}

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        return f"Discrete({self.name!r}, {list(self.values)!r})"


class Continuous:
    """A real interval ``[low, high]``, sampled uniformly (in log space with ``log_scale``)."""

    kind = "continuous"

    def __init__(self, name: str, low: Any, high: Any, log_scale: bool = False):
        self.name = _check_name(name)
        for what, v in (("low", low), ("high", high)):
            if not _is_number(v):
                raise TypeError(f"parameter {name!r}: {what} must be a number, got {v!r}")
            if not math.isfinite(v):
                raise ValueError(f"parameter {name!r}: {what} must be finite, got {v!r}")
        if not isinstance(log_scale, bool):
            raise TypeError(f"parameter {name!r}: log_scale must be True or False, got {log_scale!r}")
        low, high = float(low), float(high)
        if not low < high:
            raise ValueError(f"parameter {name!r}: needs low < high, got low={low:g}, high={high:g}")
        if log_scale and low <= 0:
            raise ValueError(f"parameter {name!r}: log_scale needs low > 0, got low={low:g}")
        self.low, self.high, self.log_scale = low, high, log_scale

    size = 1

    def _warp(self, v: float) -> float:
        return math.log(v) if self.log_scale else v

    def _unwarp(self, w: float) -> float:
        return math.exp(w) if self.log_scale else w

    def sample(self, rng: np.random.Generator) -> float:
        return self.from_unit(float(rng.random()))

    def grid(self, resolution: int) -> List[float]:
        if resolution == 1:
            return [self.from_unit(0.5)]
        return [self.from_unit(i / (resolution - 1)) for i in range(resolution)]

    def to_unit(self, value: Any) -> float:
        if not _is_number(value):
            raise TypeError(f"parameter {self.name!r}: expected a number, got {value!r}")
        if not self.low <= value <= self.high:
            raise ValueError(f"parameter {self.name!r}: {value!r} is outside [{self.low:g}, {self.high:g}]")
        a, b = self._warp(self.low), self._warp(self.high)
        return (self._warp(float(value)) - a) / (b - a)

    def from_unit(self, u: float) -> float:
        u = min(1.0, max(0.0, float(u)))
        if u == 0.0:
            return self.low
        if u == 1.0:
            return self.high
        a, b = self._warp(self.low), self._warp(self.high)
        return min(self.high, max(self.low, self._unwarp(a + u * (b - a))))

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "type": self.kind, "low": self.low, "high": self.high, "log_scale": self.log_scale}

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        log = ", log_scale=True" if self.log_scale else ""
        return f"Continuous({self.name!r}, {self.low:g}, {self.high:g}{log})"


Dimension = Any  # Categorical | Discrete | Continuous


class HyperparameterSpace:
    """Named dimensions to search over (immutable; ``add_*`` returns a new space)."""

    def __init__(self, dimensions: Sequence[Dimension] = ()):
        dims = tuple(dimensions)
        seen = set()
        for d in dims:
            if not isinstance(d, (Categorical, Discrete, Continuous)):
                raise TypeError(f"a dimension must be Categorical, Discrete or Continuous, got {type(d).__name__}")
            if d.name in seen:
                raise ValueError(f"parameter {d.name!r} is defined twice")
            seen.add(d.name)
        self._dims = dims
        self._names = tuple(d.name for d in dims)

    @classmethod
    def new(cls) -> "HyperparameterSpace":
        return cls()

    # ---------------------------------------------------------------- building
    def _add(self, dim: Dimension) -> "HyperparameterSpace":
        return HyperparameterSpace(self._dims + (dim,))

    def add_categorical(self, name: str, values: Sequence[Any]) -> "HyperparameterSpace":
        """Unordered choices, e.g. ``add_categorical("model_type", ["mlp", "lstm", "gru"])``."""
        return self._add(Categorical(name, values))

    def add_discrete(self, name: str, values: Sequence[Any]) -> "HyperparameterSpace":
        """Ordered numeric values, e.g. ``add_discrete("hidden_size", [64, 128, 256])``."""
        return self._add(Discrete(name, values))

    def add_continuous(self, name: str, low: float, high: float, log_scale: bool = False) -> "HyperparameterSpace":
        """A real interval; ``log_scale=True`` samples (and models) it uniformly in log space."""
        return self._add(Continuous(name, low, high, log_scale))

    # ---------------------------------------------------------------- reading
    @property
    def dimensions(self) -> Tuple[Dimension, ...]:
        return self._dims

    @property
    def names(self) -> List[str]:
        return list(self._names)

    def __len__(self) -> int:
        return len(self._dims)

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self._dims)

    def __getitem__(self, name: str) -> Dimension:
        for d in self._dims:
            if d.name == name:
                return d
        raise KeyError(f"no parameter {name!r} in the space (has: {', '.join(self.names) or 'none'})")

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, HyperparameterSpace) and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        return f"HyperparameterSpace({list(self._dims)!r})"

    def require_nonempty(self) -> None:
        if not self._dims:
            raise ValueError("the parameter space is empty: add dimensions with add_categorical / add_discrete / "
                             "add_continuous and pass it with with_parameter_space(space)")

    # ---------------------------------------------------------------- sampling and grids
    def sample(self, rng: np.random.Generator) -> Dict[str, Any]:
        """One random point (each dimension drawn independently, in the order added)."""
        return {d.name: d.sample(rng) for d in self._dims}

    def grid_size(self, resolution: int = DEFAULT_GRID_RESOLUTION) -> int:
        n = 1
        for d in self._dims:
            n *= resolution if isinstance(d, Continuous) else d.size
        return n

    def grid(self, resolution: int = DEFAULT_GRID_RESOLUTION) -> Iterator[Dict[str, Any]]:
        """Every combination: discrete and categorical values as given, continuous dimensions at
        ``resolution`` evenly spaced points from low to high inclusive (in log space with
        ``log_scale``; the midpoint when ``resolution == 1``). The last dimension varies fastest."""
        if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral) or resolution < 1:
            raise ValueError(f"resolution must be an int >= 1, got {resolution!r}")
        names = self.names
        for combo in itertools.product(*(d.grid(int(resolution)) for d in self._dims)):
            yield dict(zip(names, combo))

    def validate(self, params: Dict[str, Any]) -> None:
        """Raise when ``params`` does not hold exactly the space's names with values inside it."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict, got {type(params).__name__}")
        missing = [n for n in self.names if n not in params]
        extra = [n for n in params if n not in self.names]
        if missing or extra:
            raise ValueError(f"params do not match the space: missing {missing}, unknown {extra}")
        for d in self._dims:
            d.to_unit(params[d.name])

    # ---------------------------------------------------------------- unit-cube codes
    def to_unit(self, params: Dict[str, Any]) -> np.ndarray:
        """One position in [0, 1] per dimension (NSGA-II genes)."""
        return np.array([d.to_unit(params[d.name]) for d in self._dims], dtype=np.float64)

    def from_unit(self, u: Sequence[float]) -> Dict[str, Any]:
        u = np.asarray(u, dtype=np.float64)
        if u.shape != (len(self._dims),):
            raise ValueError(f"expected {len(self._dims)} unit coordinates, got shape {u.shape}")
        u = np.clip(u, 0.0, 1.0)
        out = {}
        for d, x in zip(self._dims, u.tolist()):
            if type(d) is Continuous and not d.log_scale:  # fast path of Continuous.from_unit
                out[d.name] = d.high if x == 1.0 else min(d.high, d.low + x * (d.high - d.low))
            else:
                out[d.name] = d.from_unit(x)
        return out

    def key(self, params: Dict[str, Any]) -> tuple:
        """A hashable identity of a point (its values in dimension order)."""
        return tuple(params[n] for n in self._names)

    @property
    def n_features(self) -> int:
        """Width of the Gaussian-process encoding: one column per continuous / discrete dimension,
        one per value of a categorical dimension (one-hot)."""
        return sum(d.size if isinstance(d, Categorical) else 1 for d in self._dims)

    def feature_slices(self) -> List[slice]:
        out, a = [], 0
        for d in self._dims:
            w = d.size if isinstance(d, Categorical) else 1
            out.append(slice(a, a + w))
            a += w
        return out

    def encode(self, params: Dict[str, Any]) -> np.ndarray:
        """The Gaussian-process features of one point (see :attr:`n_features`)."""
        x = np.zeros(self.n_features)
        for d, s in zip(self._dims, self.feature_slices()):
            v = params[d.name]
            if isinstance(d, Categorical):
                x[s.start + d.index(v)] = 1.0
            else:
                x[s.start] = d.to_unit(v)
        return x

    def decode(self, x: Sequence[float]) -> Dict[str, Any]:
        """Inverse of :meth:`encode` (rounding: the largest one-hot column, the nearest discrete value)."""
        x = np.asarray(x, dtype=np.float64)
        out = {}
        for d, s in zip(self._dims, self.feature_slices()):
            if isinstance(d, Categorical):
                out[d.name] = d.values[int(np.argmax(x[s]))]
            else:
                out[d.name] = d.from_unit(x[s.start])
        return out

    # ---------------------------------------------------------------- files
    def to_dict(self) -> Dict[str, Any]:
        return {"parameters": [d.to_dict() for d in self._dims]}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "HyperparameterSpace":
        if not isinstance(d, dict) or not isinstance(d.get("parameters"), list):
            raise ValueError("a space must be a mapping with a list 'parameters' of "
                             "{name, type, values | low, high[, log_scale]} entries")
        dims = []
        for i, p in enumerate(d["parameters"]):
            if not isinstance(p, dict):
                raise ValueError(f"parameters[{i}] must be a mapping, got {type(p).__name__}")
            name, kind = p.get("name"), p.get("type")
            allowed = {"categorical": {"name", "type", "values"}, "discrete": {"name", "type", "values"},
                       "continuous": {"name", "type", "low", "high", "log_scale"}}
            if kind not in allowed:
                raise ValueError(f"parameters[{i}] ({name!r}): type must be 'categorical', 'discrete' or "
                                 f"'continuous', got {kind!r}")
            unknown = sorted(set(p) - allowed[kind])
            if unknown:
                raise ValueError(f"parameters[{i}] ({name!r}): unknown keys {unknown}")
            try:
                if kind == "continuous":
                    dims.append(Continuous(name, p.get("low"), p.get("high"), p.get("log_scale", False)))
                elif kind == "discrete":
                    dims.append(Discrete(name, p.get("values")))
                else:
                    dims.append(Categorical(name, p.get("values")))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"parameters[{i}]: {exc}") from None
        return cls(dims)

    @classmethod
    def from_file(cls, path: str) -> "HyperparameterSpace":
        """Read a space from a ``.json`` or ``.toml`` file (``[[parameters]]`` tables in TOML)."""
        ext = os.path.splitext(str(path))[1].lower()
        if ext == ".toml":
            try:
                import tomllib  # Python >= 3.11
            except ImportError:  # pragma: no cover - older Pythons
                try:
                    import tomli as tomllib
                except ImportError:
                    raise ImportError("reading a TOML space needs Python >= 3.11 or the tomli package: "
                                      "pip install tomli") from None
            with open(path, "rb") as f:
                try:
                    d = tomllib.load(f)
                except tomllib.TOMLDecodeError as exc:
                    raise ValueError(f"{path}: invalid TOML: {exc}") from None
        elif ext == ".json":
            with open(path, encoding="utf-8") as f:
                try:
                    d = json.load(f)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}: invalid JSON: {exc}") from None
        else:
            raise ValueError(f"{path}: a space file must end in .json or .toml")
        try:
            return cls.from_dict(d)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
