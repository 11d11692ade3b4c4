"""Random search: independent draws from the space."""
from __future__ import annotations

import math
from typing import Optional

from .base import Search, Session, _int
from .results import Trial

__all__ = ["RandomSearch"]


class RandomSearch(Search):
    """Evaluate ``n_trials`` (default 100) points drawn independently from the space (continuous
    dimensions uniformly, in log space with ``log_scale``; discrete and categorical values with equal
    probability). Every draw is made from the seed before any result is known, so the trials do not
    depend on ``n_jobs``.

    ``with_early_stopping(k)`` stops after ``k`` consecutive trials (in trial order) without a new best
    value; trials that workers had already started beyond that point are discarded."""

    method = "RandomSearch"

    def __init__(self) -> None:
        super().__init__()
        self.n_trials = 100
        self.early_stopping: Optional[int] = None

    def with_n_trials(self, n_trials: int) -> "RandomSearch":
        return self._with(n_trials=_int("n_trials", n_trials, 1))

    def with_early_stopping(self, patience: Optional[int]) -> "RandomSearch":
        """Stop after ``patience`` trials without improvement (None: run all ``n_trials``)."""
        return self._with(early_stopping=None if patience is None else _int("early_stopping", patience, 1))

    def _expected_trials(self) -> Optional[int]:
        return self.n_trials

    def _search(self, session: Session) -> None:
        points = [self.parameter_space.sample(session.rng) for _ in range(self.n_trials)]
        patience = self.early_stopping
        state = {"best": math.inf, "since": 0}

        def stop(t: Trial) -> bool:
            if patience is None:
                return False
            if t.ok and t.value < state["best"]:
                state["best"], state["since"] = t.value, 0
            else:
                state["since"] += 1
            return state["since"] >= patience

        session.evaluate(points, stop)
