"""Neural-network building blocks: the flat parameter buffer, the tape, ops and numpy functional API."""
from . import functional
from .params import ParameterBuffer
from .tape import Tape, Var

__all__ = ["ParameterBuffer", "Tape", "Var", "functional"]
