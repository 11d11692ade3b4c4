"""LSTM forecaster (see models/recurrent.py for the architecture and options)."""
from __future__ import annotations

from .base import register
from .recurrent import RecurrentModel, make_config

LSTMConfig = make_config("LSTMConfig", __name__)


@register
class LSTM(RecurrentModel):
    """LSTM encoder over the scaled input window with a direct multi-horizon MLP decoder (default) or
    a recurrent sequence-to-sequence decoder (``mode="seq2seq"``). Weights use PyTorch's layout and
    names (``encoder.weight_ih_l0`` ...) so they can be exchanged with ``torch.nn.LSTM``."""

    config_class = LSTMConfig
    cell = "lstm"
    gates = 4
