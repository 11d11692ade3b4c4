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
    statistics (``scaler``) and the forecast is scaled back.

    Hidden layer: linear -> [batch norm] -> activation -> dropout. With
    ``TrainingConfig.with_batch_norm(True)`` each hidden linear layer is followed by batch normalisation
    (``torch.nn.BatchNorm1d`` semantics: batch statistics in training, running statistics, momentum 0.1,
    eps 1e-5, at inference; the running statistics are saved with the model). With a quantile loss the
    head emits ``horizon * Q`` values. No gradient clipping by default."""

    config_class = MLPConfig
    default_gradient_clipping = None
    supports_batch_norm = True

    def _sizes(self) -> List[Tuple[int, int]]:
        inp, h = self._require_sizes()
        c = self.config
        dims = [inp] + [c.hidden_size] * c.num_layers + [self.output_size]
        return list(zip(dims[:-1], dims[1:]))

    def _parameter_specs(self):
        specs = []
        sizes = self._sizes()
        for i, (a, b) in enumerate(sizes):
            specs += [(f"layers.{i}.weight", (b, a)), (f"layers.{i}.bias", (b,))]
            if self.batch_norm and i < len(sizes) - 1:
                specs += [(f"layers.{i}.bn.weight", (b,)), (f"layers.{i}.bn.bias", (b,))]
        return specs

    def _init_parameters(self, rng: np.random.Generator) -> None:
        for i in range(len(self._sizes())):
            linear_init(rng, self.params[f"layers.{i}.weight"], self.params[f"layers.{i}.bias"])
            if f"layers.{i}.bn.weight" in self.params:
                self.params[f"layers.{i}.bn.weight"][...] = 1.0
                self.params[f"layers.{i}.bn.bias"][...] = 0.0

    def _init_buffers(self) -> None:
        self.buffers = {}
        if self.batch_norm:
            for i, (_, b) in enumerate(self._sizes()[:-1]):
                self.buffers[f"layers.{i}.bn.running_mean"] = np.zeros(b, np.float64)
                self.buffers[f"layers.{i}.bn.running_var"] = np.ones(b, np.float64)

    def _forward(self, x: np.ndarray, tape: Optional[Tape], rng: Optional[np.random.Generator]) -> Var:
        h = tape.var(x) if tape is not None else Var(x, -1)
        n = len(self._sizes())
        p = self._dropout_rate()
        for i in range(n):
            h = layers.linear(tape, self.params, h, f"layers.{i}.weight", f"layers.{i}.bias")
            if i < n - 1:
                if self.batch_norm:
                    h = layers.batch_norm(tape, self.params, h, f"layers.{i}.bn.weight", f"layers.{i}.bn.bias",
                                          self.buffers[f"layers.{i}.bn.running_mean"],
                                          self.buffers[f"layers.{i}.bn.running_var"])
                h = layers.activation(tape, self.config.activation, h)
                h = layers.dropout(tape, h, p, rng)
        return h
