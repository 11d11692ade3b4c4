"""``Likelihood``: the output distribution of a probabilistic model (DeepAR).

``Likelihood.Gaussian`` (real values; mu, sigma), ``Likelihood.StudentT`` (real values with heavy tails;
mu, sigma, nu > 2) and ``Likelihood.NegativeBinomial`` (non-negative integer counts; mean mu, shape alpha,
variance mu + alpha mu^2). See :mod:`neurodivergent.nn.functional_likelihood` for how the network's raw
outputs map to the parameters and how the scale enters.

Members are strings too (``Likelihood.StudentT == "student_t"``), so configs serialise them as their
value; :meth:`Likelihood.coerce` accepts a member, its value or its name (any case).
"""
from __future__ import annotations

import enum
from typing import Any

__all__ = ["Likelihood"]


class Likelihood(str, enum.Enum):
    Gaussian = "gaussian"
    StudentT = "student_t"
    NegativeBinomial = "negative_binomial"

    @property
    def kind(self) -> str:
        """Name of the likelihood in the C++ kernels."""
        return self.value

    @property
    def n_params(self) -> int:
        """Raw network outputs per point."""
        return 3 if self is Likelihood.StudentT else 2

    @property
    def param_names(self):
        return {"gaussian": ("mu", "sigma"), "student_t": ("mu", "sigma", "nu"),
                "negative_binomial": ("mu", "alpha")}[self.value]

    @property
    def is_count(self) -> bool:
        """Whether targets must be non-negative integers (and are not divided by the scale)."""
        return self is Likelihood.NegativeBinomial

    @classmethod
    def coerce(cls, name: str, v: Any) -> "Likelihood":
        if isinstance(v, Likelihood):
            return v
        if isinstance(v, str):
            key = v.lower().replace("-", "_")
            for m in cls:
                if key in (m.value, m.name.lower(), m.value.replace("_", "")):
                    return m
        raise ValueError(f"{name} must be Likelihood.Gaussian, Likelihood.StudentT or Likelihood.NegativeBinomial, "
                         f"got {v!r}")

    def __repr__(self) -> str:
        return f"Likelihood.{self.name}"

    def __str__(self) -> str:
        return self.value
