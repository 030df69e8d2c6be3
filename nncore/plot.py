"""Training curves as a PNG: the loss (and accuracy) per epoch of a ``fit`` run.

    history = nncore.fit(...)
    nncore.plot.plot_history(history, "run.png", title="digits")

Left panel: ``loss`` and ``val_loss`` against the epoch (1-based); right panel, for classification only:
``accuracy`` and ``val_accuracy``. The best epoch of early stopping (``history.best_epoch``, the weights
the model kept) is marked with a dotted line. A loss that falls by more than two orders of magnitude (a
regression's MSE, typically) is drawn on a log scale so that the later epochs stay readable.

matplotlib is imported on the first call, not with nncore, and only its object API is used (a ``Figure``
on an Agg canvas): no display is needed and pyplot's global state is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .training import History

__all__ = ["plot_history"]

_LOG_SCALE_RATIO = 100.0  # max/min loss above which the loss axis is logarithmic


def plot_history(history, path, *, title=None):
    """Write the loss/accuracy curves of ``history`` to ``path`` as a PNG; returns path.

    history: the History that ``fit`` returns, or a dict of per-epoch lists ("loss", "val_loss", ...).

    Raises FileNotFoundError when the directory of ``path`` does not exist, ValueError when the history has
    no epochs.
    """
    if not isinstance(history, (History, Mapping)):
        raise TypeError(f"history must be an nncore History (what fit returns) or a dict of per-epoch lists, "
                        f"got {type(history).__name__}")
    if "loss" not in history or len(history["loss"]) == 0:
        raise ValueError("history has no epochs to plot (its 'loss' list is empty)")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write the plot {os.fspath(path)!r}: directory {directory!r} does not exist")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    accuracy = "accuracy" in history
    fig = Figure(figsize=(11 if accuracy else 6, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    panels = [("loss", fig.add_subplot(1, 2 if accuracy else 1, 1))]
    if accuracy:
        panels.append(("accuracy", fig.add_subplot(1, 2, 2)))
    best = getattr(history, "best_epoch", None)

    for key, ax in panels:
        for name, style in ((key, "-"), ("val_" + key, "--")):
            if name in history and len(history[name]):
                values = history[name]
                ax.plot(range(1, len(values) + 1), values, style, marker="." if len(values) <= 50 else None,
                        label=name)
        if key == "loss":
            losses = [v for name in ("loss", "val_loss") if name in history for v in history[name]]
            if min(losses) > 0 and max(losses) / min(losses) > _LOG_SCALE_RATIO:
                ax.set_yscale("log")
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", label=f"best epoch {best}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.savefig(path, format="png", dpi=100)
    return path
