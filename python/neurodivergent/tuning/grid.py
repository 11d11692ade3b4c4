"""Exhaustive search over every combination of the space."""
from __future__ import annotations

from typing import Optional

from .base import Search, Session, _int
from .space import DEFAULT_GRID_RESOLUTION

__all__ = ["GridSearch"]


class GridSearch(Search):
    """Evaluate every point of ``parameter_space.grid(resolution)``: categorical and discrete values as
    given; each continuous dimension at ``resolution`` (default 5) evenly spaced points from low to high,
    both included (evenly spaced in log space with ``log_scale=True``). Trials follow the grid order (the
    dimensions in the order added, the last varying fastest); with ``with_timeout`` the search stops when
    the time is up and keeps the best point so far."""

    method = "GridSearch"

    def __init__(self) -> None:
        super().__init__()
        self.resolution = DEFAULT_GRID_RESOLUTION

    def with_resolution(self, resolution: int) -> "GridSearch":
        """Points per continuous dimension (default 5)."""
        return self._with(resolution=_int("resolution", resolution, 1))

    def _expected_trials(self) -> Optional[int]:
        return self.parameter_space.grid_size(self.resolution)

    def _search(self, session: Session) -> None:
        session.evaluate(list(self.parameter_space.grid(self.resolution)))
