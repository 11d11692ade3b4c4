"""Neural-network building blocks: the flat parameter buffer, the tape, ops and numpy functional API."""
from .params import ParameterBuffer
from .tape import Tape, Var

__all__ = ["ParameterBuffer", "Tape", "Var", "functional"]


def __getattr__(name):
    if name == "functional":
        from . import functional

        return functional
    raise AttributeError(name)
