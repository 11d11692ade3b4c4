"""What a search returns: every trial in a table, the best one, and the configuration it stands for."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["Trial", "SearchResults", "BestConfiguration", "ParetoFront"]

OK, FAILED, TIMEOUT = "ok", "failed", "timeout"


@dataclass
class Trial:
    """One evaluated point. ``value`` is the score (lower is better) of a single-objective search or
    the tuple of objective values (in the objectives' own directions) of a multi-objective one; it is
    None unless ``status == "ok"``. ``status`` is ``"ok"``, ``"failed"`` (the objective raised or
    returned NaN / inf; ``error`` says why) or ``"timeout"`` (still running when the search's time ran
    out). ``extra`` holds side values (e.g. ``score_std``, ``training_time``, ``model_size``)."""

    number: int
    params: Dict[str, Any]
    value: Any = None
    status: str = OK
    error: str = ""
    duration: float = 0.0
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK


def _cell(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return ""
    return v


class SearchResults:
    """Every trial of a search, in trial order (``trial`` numbers from 0)."""

    def __init__(self, trials: Sequence[Trial], param_names: Sequence[str],
                 objective_names: Sequence[str] = ("value",), method: str = ""):
        self.trials: List[Trial] = list(trials)
        self.param_names = list(param_names)
        self.objective_names = list(objective_names)
        self.method = method
        self.stopped_reason = ""  # "", "early_stopping", "timeout", "space_exhausted"

    def __len__(self) -> int:
        return len(self.trials)

    def __iter__(self):
        return iter(self.trials)

    def __getitem__(self, i: int) -> Trial:
        return self.trials[i]

    @property
    def completed(self) -> List[Trial]:
        return [t for t in self.trials if t.ok]

    @property
    def values(self) -> List[Any]:
        """The value of each trial in order (None for a trial that did not complete)."""
        return [t.value for t in self.trials]

    @property
    def best(self) -> Trial:
        """The completed trial with the lowest value (the earliest on a tie). Single-objective only."""
        if len(self.objective_names) != 1:
            raise ValueError("a multi-objective search has no single best trial: see its pareto front")
        done = self.completed
        if not done:
            reasons = sorted({t.error or t.status for t in self.trials})[:3]
            raise RuntimeError(f"no trial completed ({len(self.trials)} started; {'; '.join(reasons) or 'none ran'})")
        return min(done, key=lambda t: (t.value, t.number))

    @property
    def best_params(self) -> Dict[str, Any]:
        return dict(self.best.params)

    @property
    def best_value(self) -> float:
        return self.best.value

    def best_so_far(self) -> List[float]:
        """The running minimum of the values in trial order (NaN until a trial completes)."""
        out, cur = [], math.inf
        for t in self.trials:
            if t.ok and t.value < cur:
                cur = t.value
            out.append(cur if math.isfinite(cur) else math.nan)
        return out

    # ---------------------------------------------------------------- the table
    def columns(self) -> List[str]:
        extras: List[str] = []
        for t in self.trials:
            for k in t.extra:
                if k not in extras:
                    extras.append(k)
        return ["trial", *self.param_names, *self.objective_names, *extras, "status", "duration_s", "error"]

    def rows(self) -> List[List[Any]]:
        cols = self.columns()
        extras = cols[1 + len(self.param_names) + len(self.objective_names):-3]
        out = []
        for t in self.trials:
            if t.value is None:
                vals = [math.nan] * len(self.objective_names)
            elif len(self.objective_names) == 1:
                vals = [t.value]
            else:
                vals = list(t.value)
            out.append([t.number, *(t.params.get(n) for n in self.param_names), *vals,
                        *(t.extra.get(k, math.nan) for k in extras), t.status, round(t.duration, 6), t.error])
        return out

    def to_dict(self) -> Dict[str, List[Any]]:
        cols = self.columns()
        rows = self.rows()
        return {c: [r[i] for r in rows] for i, c in enumerate(cols)}

    def to_pandas(self):
        """The results table as a pandas DataFrame (needs ``pip install neurodivergent[pandas]``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas needs pandas: pip install neurodivergent[pandas]") from None
        return pd.DataFrame(self.to_dict(), columns=self.columns())

    def to_csv(self, path: Optional[str] = None) -> Optional[str]:
        """Write the table to ``path`` (atomically) or return it as a string when ``path`` is None."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns())
        for r in self.rows():
            w.writerow([_cell(v) for v in r])
        text = buf.getvalue()
        if path is None:
            return text
        from ..checkpointing.atomic import atomic_write_text

        atomic_write_text(path, text)
        return None

    def __repr__(self) -> str:
        done = len(self.completed)
        head = f"SearchResults({self.method}: {len(self.trials)} trials, {done} completed"
        if done and len(self.objective_names) == 1:
            b = self.best
            head += f", best {b.value:.6g} at trial {b.number}: {b.params}"
        return head + ")"


class BestConfiguration:
    """The winning point of a search over forecasting models, turned into configs.

    ``params`` as searched, ``score`` its cross-validated score, ``model_class`` / ``model_config`` /
    ``training_config`` what the trial trained with; :meth:`build_model` returns a fresh, unfitted model
    (fit it with ``model.fit_with_config(data, best.training_config)``)."""

    def __init__(self, params: Dict[str, Any], score: float, model_class: type, model_config: Any,
                 training_config: Any, trial: Optional[Trial] = None):
        self.params = dict(params)
        self.score = score
        self.model_class = model_class
        self.model_config = model_config
        self.training_config = training_config
        self.trial = trial

    @property
    def model_type(self) -> str:
        return self.model_class.__name__

    def build_model(self):
        return self.model_class(self.model_config)

    def __getitem__(self, name: str) -> Any:
        return self.params[name]

    def to_dict(self) -> Dict[str, Any]:
        return {"params": dict(self.params), "score": self.score, "model_type": self.model_type,
                "model_config": self.model_config.to_dict(),
                "training_config": self.training_config.to_dict(lossy=True)}

    def __repr__(self) -> str:
        return f"BestConfiguration(score={self.score:.6g}, model_type={self.model_type}, params={self.params})"


class ParetoFront:
    """The non-dominated completed trials of a multi-objective search, sorted by the first objective.

    ``objectives`` names them; ``values()`` is an (n, m) array in the objectives' own units and
    directions; ``best(weights)`` picks the trial with the best weighted sum of objective values
    normalised to [0, 1] over the front (1 = best on that objective)."""

    def __init__(self, trials: Sequence[Trial], objectives: Sequence[str], directions: Sequence[str],
                 weights: Sequence[float]):
        self.trials = list(trials)
        self.objectives = list(objectives)
        self.directions = list(directions)
        self.weights = list(weights)

    def __len__(self) -> int:
        return len(self.trials)

    def __iter__(self):
        return iter(self.trials)

    def __getitem__(self, i: int) -> Trial:
        return self.trials[i]

    def values(self):
        import numpy as np

        return np.array([list(t.value) for t in self.trials], dtype=np.float64).reshape(len(self.trials),
                                                                                        len(self.objectives))

    @property
    def params(self) -> List[Dict[str, Any]]:
        return [dict(t.params) for t in self.trials]

    def best(self, weights: Optional[Sequence[float]] = None) -> Trial:
        import numpy as np

        if not self.trials:
            raise RuntimeError("the Pareto front is empty: no trial completed")
        w = np.asarray(self.weights if weights is None else weights, dtype=np.float64)
        if w.shape != (len(self.objectives),):
            raise ValueError(f"weights must have {len(self.objectives)} entries, got {w.tolist()}")
        v = self.values()
        lo, hi = v.min(axis=0), v.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        goodness = np.empty_like(v)
        for j, d in enumerate(self.directions):
            goodness[:, j] = (hi[j] - v[:, j]) / span[j] if d == "min" else (v[:, j] - lo[j]) / span[j]
        score = goodness @ w
        return self.trials[int(np.argmax(score))]

    def to_pandas(self):
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas needs pandas: pip install neurodivergent[pandas]") from None
        names = list(self.trials[0].params) if self.trials else []
        rows = [[t.number, *(t.params[n] for n in names), *t.value] for t in self.trials]
        return pd.DataFrame(rows, columns=["trial", *names, *self.objectives])

    def __repr__(self) -> str:
        return f"ParetoFront({len(self.trials)} trials, objectives {self.objectives})"


