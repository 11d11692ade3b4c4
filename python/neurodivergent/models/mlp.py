"""MLP forecaster: the scaled input window -> ``num_layers`` hidden layers -> ``horizon`` outputs."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .._config import cfg_field, config_class, fraction, one_of, optional, positive_int
from ..data.scalers import SCALERS
from ..nn import layers
from ..nn.init import linear_init
from ..nn.tape import Tape, Var
from .base import BaseModel, register


def _alias(name, v):
    if v is not None and (not isinstance(v, str) or not v):
        raise TypeError(f"{name} must be a non-empty str or None, got {v!r}")
    return v


@config_class
class MLPConfig:
    input_size: Optional[int] = cfg_field(None, optional(positive_int), "Length of the input window.")
    horizon: Optional[int] = cfg_field(None, optional(positive_int), "Steps forecast at once.")
    hidden_size: int = cfg_field(512, positive_int, "Units per hidden layer.")
    num_layers: int = cfg_field(2, positive_int, "Hidden layers.")
    activation: str = cfg_field("relu", one_of(*layers.ACTIVATIONS), "Hidden activation.")
    dropout: float = cfg_field(0.0, fraction, "Dropout after each hidden layer (training only).")
    scaler: str = cfg_field("standard", one_of(*SCALERS), "Per-window scaler (see data.scalers).")
    alias: Optional[str] = cfg_field(None, _alias, "Column name of the forecast (default: 'MLP').")


@register
class MLP(BaseModel):
    """Multilayer perceptron over the last ``input_size`` values, predicting ``horizon`` values at once
    (a direct multi-horizon model, like NeuralForecast's MLP). Each window is scaled by its input's
    statistics (``scaler``) and the forecast is scaled back."""

    config_class = MLPConfig

    def _sizes(self) -> List[Tuple[int, int]]:
        inp, h = self._require_sizes()
        c = self.config
        dims = [inp] + [c.hidden_size] * c.num_layers + [self.output_size]
        return list(zip(dims[:-1], dims[1:]))

    def _parameter_specs(self):
        specs = []
        for i, (a, b) in enumerate(self._sizes()):
            specs += [(f"layers.{i}.weight", (b, a)), (f"layers.{i}.bias", (b,))]
        return specs

    def _init_parameters(self, rng: np.random.Generator) -> None:
        for i in range(len(self._sizes())):
            linear_init(rng, self.params[f"layers.{i}.weight"], self.params[f"layers.{i}.bias"])

    def _forward(self, x: np.ndarray, tape: Optional[Tape], rng: Optional[np.random.Generator]) -> Var:
        h = tape.var(x) if tape is not None else Var(x, -1)
        n = len(self._sizes())
        for i in range(n):
            h = layers.linear(tape, self.params, h, f"layers.{i}.weight", f"layers.{i}.bias")
            if i < n - 1:
                h = layers.activation(tape, self.config.activation, h)
                h = layers.dropout(tape, h, self.config.dropout, rng)
        return h
