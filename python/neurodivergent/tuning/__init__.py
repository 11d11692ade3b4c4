"""Hyperparameter search: grid, random, Bayesian (Gaussian process) and multi-objective (NSGA-II).

>>> from neurodivergent.tuning import HyperparameterSpace, RandomSearch
>>> space = HyperparameterSpace().add_continuous("x", -2.0, 2.0)
>>> res = RandomSearch().with_parameter_space(space).with_n_trials(20).optimize(lambda p: p["x"] ** 2)
>>> abs(res.best_params["x"]) < 0.5
True

Every search optimises a plain function (``optimize(objective)``) or forecasting models on a
TimeSeriesDataFrame (``fit(data)``, scored by time-series cross-validation). See
docs/hyperparameter-search.md.
"""
from .acquisition import AcquisitionFunction, ExpectedImprovement, LowerConfidenceBound, ProbabilityOfImprovement
from .bayes import BayesianOptimization
from .gp import GaussianProcess, Kernel
from .grid import GridSearch
from .nsga2 import Algorithm, Direction, MultiObjectiveOptimization
from .random_search import RandomSearch
from .results import BestConfiguration, ParetoFront, SearchResults, Trial
from .space import Categorical, Continuous, Discrete, HyperparameterSpace

__all__ = [
    "HyperparameterSpace", "Categorical", "Discrete", "Continuous",
    "GridSearch", "RandomSearch", "BayesianOptimization", "MultiObjectiveOptimization",
    "AcquisitionFunction", "ExpectedImprovement", "ProbabilityOfImprovement", "LowerConfidenceBound",
    "Kernel", "GaussianProcess", "Direction", "Algorithm",
    "SearchResults", "Trial", "BestConfiguration", "ParetoFront",
]
