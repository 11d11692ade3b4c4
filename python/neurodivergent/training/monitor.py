"""TrainingMonitor: which metrics are recorded, how often they are logged, and loss/metric plots.

::

    monitor = (TrainingMonitor()
               .with_metrics([Metric.TrainingLoss, Metric.ValidationLoss, Metric.MAE, Metric.MAPE,
                              Metric.LearningRate])
               .with_log_interval(10)      # a logging.INFO line every 10 epochs
               .with_plot_interval(50)     # write the plots every 50 epochs (and at the end)
               .with_save_plots(True))     # ... into plot_directory ("training_plots")
    TrainingConfig().with_monitor(monitor)

Every metric asked for is recorded in ``TrainingLogs.history`` each epoch (see
:class:`~neurodivergent.training.config.Metric` for the definitions). Metrics computed on validation
windows (``ValidationLoss``, ``MAE``, ``MAPE``, ``RMSE``, ``SMAPE``) need ``validation_split > 0``; without a
validation part they are not recorded and a warning is logged once when ``fit`` starts. MAPE is NaN
when a true value is 0 (it is undefined there).

Logging goes through the ``logging`` module (logger ``"neurodivergent"``, level INFO), never print.
Plots are written only with ``save_plots=True``: ``loss.png`` (training and validation loss per epoch)
and ``metrics.png`` (one panel per other recorded metric), every ``plot_interval`` epochs when set and
always when training ends; each file is written atomically (a reader never sees half a PNG). Plotting
needs matplotlib: without it ``fit`` raises an ImportError naming the ``[plot]`` extra before training
starts. ``plot_interval`` without ``save_plots`` writes nothing.
"""
from __future__ import annotations

import io
import logging
import os
from typing import Any, Dict, List, Sequence, Tuple

from .._config import boolean, cfg_field, config_class, optional, positive_int
from .config import Metric

log = logging.getLogger("neurodivergent")

DEFAULT_METRICS = (Metric.TrainingLoss, Metric.ValidationLoss, Metric.LearningRate)


def _metrics(name, v):
    if isinstance(v, (str, Metric)) or not isinstance(v, (list, tuple)):
        raise TypeError(f"{name} must be a list of Metric values, got {type(v).__name__} {v!r}")
    out = tuple(Metric.coerce(f"{name}[{i}]", m) for i, m in enumerate(v))
    if len(set(out)) != len(out):
        raise ValueError(f"{name} lists a metric twice: {[m.name for m in out]}")
    return out


def _dir(name, v):
    if not isinstance(v, str) or not v:
        raise TypeError(f"{name} must be a non-empty str, got {v!r}")
    return v


@config_class
class TrainingMonitor:
    """What to record, log and plot during training (see the module docstring)."""

    metrics: Tuple[Metric, ...] = cfg_field(DEFAULT_METRICS, _metrics, "Metrics recorded every epoch.")
    log_interval: int = cfg_field(1, positive_int, "Log a line every N epochs (logging.INFO).")
    plot_interval: Any = cfg_field(None, optional(positive_int), "Write the plots every N epochs (with save_plots).")
    save_plots: bool = cfg_field(False, boolean, "Write PNG curves (needs matplotlib: pip install neurodivergent[plot]).")
    plot_directory: str = cfg_field("training_plots", _dir, "Directory of the PNG files.")

    def with_plot_directory(self, path) -> "TrainingMonitor":
        """Directory of the PNG files (created when the first plot is written)."""
        import dataclasses

        return dataclasses.replace(self, plot_directory=os.fspath(path) if isinstance(path, os.PathLike) else path)


def require_matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("TrainingMonitor.with_save_plots(True) needs matplotlib: "
                          "pip install neurodivergent[plot]") from None
    return Figure, FigureCanvasAgg


class MonitorRunner:
    """Runtime side of a TrainingMonitor for one ``fit`` (logging and plotting after the callbacks)."""

    def __init__(self, monitor: TrainingMonitor, has_validation: bool, model_name: str):
        self.monitor = monitor
        self.model_name = model_name
        if monitor.save_plots:
            require_matplotlib()
        missing = [m for m in monitor.metrics if m.needs_validation and not has_validation]
        if missing:
            log.warning("TrainingMonitor: %s need a validation part (validation_split > 0) and are not recorded",
                        ", ".join(f"Metric.{m.name}" for m in missing))

    def on_epoch_end(self, epoch: int, logs) -> None:
        m = self.monitor
        if (epoch + 1) % m.log_interval == 0:
            parts = []
            for metric in m.metrics:
                v = logs.get_metric(metric)
                if v is not None:
                    parts.append(f"{metric.value}={v:.6g}")
            log.info("%s epoch %d step %d %s", self.model_name, epoch + 1, logs.get_metric("step"), " ".join(parts))
        if m.save_plots and m.plot_interval and (epoch + 1) % m.plot_interval == 0:
            self.plot(logs)

    def on_train_end(self, logs) -> None:
        if self.monitor.save_plots and len(logs) > 0:
            self.plot(logs)

    def plot(self, logs) -> List[str]:
        return save_plots(logs, self.monitor.plot_directory, [m.value for m in self.monitor.metrics],
                          title=self.model_name)


def save_plots(logs, directory: str, metrics: Sequence[str], title: str = "") -> List[str]:
    """Write ``loss.png`` and (when other metrics were recorded) ``metrics.png`` into ``directory``
    atomically; returns the paths written."""
    Figure, FigureCanvasAgg = require_matplotlib()
    from ..checkpointing.atomic import atomic_write_bytes

    os.makedirs(directory, exist_ok=True)
    hist: Dict[str, List[float]] = logs.history
    epochs = hist.get("epoch", [])
    written = []

    def _write(fig, name):
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        path = os.path.join(directory, name)
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    for key in ("training_loss", "validation_loss"):
        if key in hist and hist[key]:
            ax.plot(epochs[: len(hist[key])], hist[key], label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(f"{title} loss".strip())
    ax.legend()
    _write(fig, "loss.png")

    others = [k for k in metrics if k not in ("training_loss", "validation_loss") and hist.get(k)]
    if others:
        fig = Figure(figsize=(6, 2.5 * len(others)))
        for i, k in enumerate(others):
            ax = fig.add_subplot(len(others), 1, i + 1)
            ax.plot(epochs[: len(hist[k])], hist[k])
            ax.set_ylabel(k.replace("_", " "))
            if k == "learning_rate":
                ax.set_yscale("log")
        ax.set_xlabel("epoch")
        fig.tight_layout()
        _write(fig, "metrics.png")
    return written


__all__ = ["TrainingMonitor", "Metric", "save_plots"]
