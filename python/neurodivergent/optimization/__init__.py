"""The training guide's module path for hyperparameter search (``neuro_divergent::optimization``).

The implementation lives in :mod:`neurodivergent.tuning`; this module re-exports the same objects so that
``from neurodivergent.optimization import GridSearch, HyperparameterSpace`` works as the guide writes it.
"""
from ..tuning import *  # noqa: F401,F403
from ..tuning import __all__  # noqa: F401
