"""GRU forecaster (see models/recurrent.py for the architecture and options)."""
from __future__ import annotations

from typing import Optional

from .._config import config_class
from .base import register
from .recurrent import RecurrentModel, recurrent_fields


def _make_config():
    ns = {"__annotations__": {k: Optional[int] for k in recurrent_fields()}}
    ns.update(recurrent_fields())
    ns["__doc__"] = "Configuration of the GRU forecaster: window length, horizon, layers, decoder, mode."
    ns["__module__"] = __name__
    return config_class(type("GRUConfig", (), ns))


GRUConfig = _make_config()


@register
class GRU(RecurrentModel):
    """GRU encoder over the scaled input window with a direct multi-horizon MLP decoder (default) or
    a recurrent sequence-to-sequence decoder (``mode="seq2seq"``). Weights use PyTorch's layout and
    names (``encoder.weight_ih_l0`` ...) so they can be exchanged with ``torch.nn.GRU``."""

    config_class = GRUConfig
    cell = "gru"
    gates = 3
