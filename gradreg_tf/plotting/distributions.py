"""Log-probability histograms and gradient-norm box plots (MNIST cells 21 and 25)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from gradreg_tf.plotting.style import model_color, model_label, new_figure

__all__ = ["plot_gradient_norms", "plot_histograms"]


def plot_histograms(edges: Sequence[float], counts: Mapping[str, np.ndarray], *, ax=None,
                    xlabel: str | None = "Predicted log probability",
                    ylabel: str | None = "Frequency", alpha: float = 0.5):
    """Overlaid histograms with shared bins, one per model, in the paper's colours.

    Args:
        edges: ``(B + 1,)`` bin edges.
        counts: model name -> ``(B,)`` counts (e.g. from ``np.histogram``).
        ax: axes to draw on (default: a new figure).
        xlabel: x-axis label (None: none).
        ylabel: y-axis label (None: none).
        alpha: fill opacity.

    Returns:
        The Figure holding ``ax``.

    Raises:
        ValueError: if a counts array does not have ``len(edges) - 1`` entries.
    """
    if ax is None:
        ax = new_figure((5, 3.6)).add_subplot()
    edges = np.asarray(edges, dtype=float)
    for name, c in counts.items():
        c = np.asarray(c)
        if c.shape != (len(edges) - 1,):
            raise ValueError(f"counts[{name!r}] must have {len(edges) - 1} entries, "
                             f"received shape {c.shape}.")
        ax.stairs(c, edges, fill=True, alpha=alpha, color=model_color(name),
                  label=model_label(name))
        ax.stairs(c, edges, color="black", lw=0.4, alpha=0.6)
    ax.set_xlim(edges[0], edges[-1])
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize=9)
    return ax.figure


def plot_gradient_norms(norms: Mapping[str, np.ndarray], *, ax=None, ylabel: str | None = None,
                        ylim: tuple[float, float] | None = None):
    """Box plots (log scale) of per-example gradient norms, one per model on its colour band.

    As the original's ``grad_size_boxplot`` (plot_helpers.py:97-104): a light band of the
    model's colour behind each box, means shown as markers, fliers translucent.

    Args:
        norms: model name -> ``(n,)`` positive norms (floor them first, e.g. at 1e-20).
        ax: axes to draw on (default: a new figure).
        ylabel: y-axis label.
        ylim: y-axis limits (default: automatic).

    Returns:
        The Figure holding ``ax``.

    Raises:
        ValueError: if a norm is not positive (a log axis cannot show it).
    """
    if ax is None:
        ax = new_figure((8, 3.4)).add_subplot()
    names = list(norms)
    data = []
    for name in names:
        values = np.asarray(norms[name], dtype=float).ravel()
        if values.size and not np.all(values > 0):
            raise ValueError(f"norms[{name!r}] must be positive for a log axis; floor them "
                             f"first (min received {values.min()!r}).")
        data.append(values)
    for i, name in enumerate(names):
        ax.axvspan(i + 0.5, i + 1.5, color=model_color(name), alpha=0.1, lw=0)
    ax.boxplot(data, showmeans=True, widths=0.55,
               flierprops=dict(marker="+", alpha=0.25, markeredgecolor="black"),
               meanprops=dict(marker="s", markerfacecolor="red", markeredgecolor="black",
                              zorder=3),
               medianprops=dict(color="red"), boxprops=dict(color="blue"),
               whiskerprops=dict(color="blue", ls="--"))
    ax.set_yscale("log")
    ax.set_xlim(0.5, len(names) + 0.5)
    ax.set_xticks(range(1, len(names) + 1), [model_label(n) for n in names], fontsize=11)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if ylabel:
        ax.set_ylabel(ylabel)
    return ax.figure
