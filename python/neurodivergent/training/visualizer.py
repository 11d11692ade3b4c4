"""TrainingVisualizer: PNG plots written while a model trains (the guide's "Visualization" section).

::

    visualizer = (TrainingVisualizer()
                  .with_live_plotting(True)           # rewrite the curves after every epoch
                  .with_metrics_dashboard(True)       # one figure: every recorded metric + a summary
                  .with_model_architecture_plot(True) # the model's tensors, layer by layer
                  .with_save_directory("training_plots/"))
    TrainingConfig().with_visualizer(visualizer)

"Live" plotting here means files that are rewritten (atomically) after every epoch, so that an image
viewer or a notebook that reloads them follows training; nothing opens a window (the library runs
headless). Without ``live_plotting`` the figures are written once, when training ends. Files:
``curves.png`` (training / validation loss), ``dashboard.png`` (one panel per recorded metric and a
text panel with the last values and the best epoch) and ``architecture.png`` (one bar per parameter
tensor, in forward order, labelled with its name and shape, length proportional to its size), written
at the start of training. Needs matplotlib (``pip install neurodivergent[plot]``): without it ``fit``
raises ImportError before training starts.
"""
from __future__ import annotations

import io
import os
from typing import Any

from .._config import boolean, cfg_field, config_class
from ..checkpointing.atomic import atomic_write_bytes
from .callbacks import Callback


def _dir(name, v):
    if not isinstance(v, str) or not v:
        raise TypeError(f"{name} must be a non-empty str, got {v!r}")
    return v


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("TrainingVisualizer needs matplotlib: pip install neurodivergent[plot]") from exc
    return plt


def _save(fig, path: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    atomic_write_bytes(path, buf.getvalue())


@config_class
class TrainingVisualizer:
    """Which training plots to write, and where (see the module docstring)."""

    live_plotting: bool = cfg_field(False, boolean, "Rewrite the plots after every epoch (else once, at the end).")
    metrics_dashboard: bool = cfg_field(True, boolean, "Write dashboard.png with every recorded metric.")
    model_architecture_plot: bool = cfg_field(False, boolean, "Write architecture.png at the start of training.")
    save_directory: str = cfg_field("training_plots", _dir, "Directory of the PNG files (created if needed).")

    def callback(self) -> "VisualizerCallback":
        return VisualizerCallback(self)


class VisualizerCallback(Callback):
    """The callback that draws a TrainingVisualizer's figures (added by the trainer after the user's
    callbacks and the built-in ones)."""

    def __init__(self, vis: TrainingVisualizer):
        self.vis = vis
        self.plt = _pyplot()  # fail before training starts when matplotlib is missing

    def path(self, name: str) -> str:
        os.makedirs(self.vis.save_directory, exist_ok=True)
        return os.path.join(self.vis.save_directory, name)

    def on_train_begin(self, logs) -> None:
        if self.vis.model_architecture_plot and self.model is not None and self.model.params is not None:
            self.architecture()

    def on_epoch_end(self, epoch: int, logs) -> None:
        if self.vis.live_plotting:
            self.draw(logs)

    def on_train_end(self, logs) -> None:
        self.draw(logs)

    def draw(self, logs) -> None:
        plt = self.plt
        h = logs.history
        if not h.get("epoch"):
            return
        ep = h["epoch"]
        fig, ax = plt.subplots(figsize=(6, 4))
        for key in ("training_loss", "validation_loss"):
            if h.get(key):
                ax.plot(ep[: len(h[key])], h[key], label=key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
        ax.set_title(f"{type(self.model).__name__} training")
        _save(fig, self.path("curves.png"))
        plt.close(fig)
        if self.vis.metrics_dashboard:
            keys = [k for k, v in h.items() if k not in ("epoch", "step") and v]
            n = len(keys) + 1
            cols = min(3, n)
            rows = -(-n // cols)
            fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
            flat = [a for row in axes for a in row]
            for a, k in zip(flat, keys):
                a.plot(ep[: len(h[k])], h[k])
                a.set_title(k.replace("_", " "))
                a.set_xlabel("epoch")
            summary = "\n".join(f"{k}: {h[k][-1]:.5g}" for k in keys)
            if logs.best_epoch is not None:
                summary += f"\nbest epoch: {logs.best_epoch}"
            if logs.stopped_early:
                summary += "\nstopped early"
            flat[len(keys)].axis("off")
            flat[len(keys)].text(0.0, 1.0, summary, va="top", family="monospace", fontsize=8)
            for a in flat[len(keys) + 1:]:
                a.axis("off")
            fig.tight_layout()
            _save(fig, self.path("dashboard.png"))
            plt.close(fig)

    def architecture(self) -> None:
        plt = self.plt
        pb = self.model.params
        names = list(pb.names)
        sizes = [int(pb[n].size) for n in names]
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.2))
        ax.barh(range(len(names)), sizes)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([f"{n} {tuple(pb.shapes[n])}" for n in names], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("parameters")
        ax.set_title(f"{type(self.model).__name__}: {pb.size:,} parameters")
        fig.tight_layout()
        _save(fig, self.path("architecture.png"))
        plt.close(fig)


def _visualizer(name: str, v: Any) -> Any:
    if v is None or isinstance(v, TrainingVisualizer):
        return v
    raise TypeError(f"{name} must be a TrainingVisualizer or None, got {type(v).__name__}")
