"""GRU forecaster (see models/recurrent.py for the architecture and options)."""
from __future__ import annotations

from .base import register
from .recurrent import RecurrentModel, make_config

GRUConfig = make_config("GRUConfig", __name__)


@register
class GRU(RecurrentModel):
    """GRU encoder over the scaled input window with a direct multi-horizon MLP decoder (default) or
    a recurrent sequence-to-sequence decoder (``mode="seq2seq"``). Weights use PyTorch's layout and
    names (``encoder.weight_ih_l0`` ...) so they can be exchanged with ``torch.nn.GRU``."""

    config_class = GRUConfig
    cell = "gru"
    gates = 3
