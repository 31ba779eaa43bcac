"""The transfer claim's quantity across training seeds: a band over seeds per target model."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from gradreg_tf.plotting.style import PUBLISHED_LABEL, model_color, model_label, model_marker, new_figure

__all__ = ["plot_seed_bands"]


def plot_seed_bands(eps: Sequence[float], curves: Mapping[str, np.ndarray], targets: Sequence[str],
                    *, reference: Mapping[str, np.ndarray] | None = None, seeds: Sequence = (),
                    title: str | None = None, caption: str | None = None):
    """One panel per attack: each target's black-box accuracy vs eps, the mean over seeds as a
    line and the range over seeds as a band, the published curve dashed.

    Args:
        eps: perturbation sizes ``(E,)``.
        curves: ``{attack label: (n_seeds, len(targets), E) array}``.
        targets: target model names.
        reference: ``{attack label: (len(targets), E)}`` published curves (optional).
        seeds: the seeds, for the legend.
        title: figure title.
        caption: a small line under the panels.

    Returns:
        The Figure.

    Raises:
        ValueError: if an array's shape does not match ``targets`` and ``eps``.
    """
    eps = np.asarray(eps, dtype=float)
    fig = new_figure((5.2 * len(curves) + 2.2, 4.4))
    axes = np.atleast_1d(fig.subplots(1, len(curves), sharey=True))
    for ax, (label, arr) in zip(axes, curves.items()):
        arr = np.asarray(arr, dtype=float)
        if arr.ndim != 3 or arr.shape[1:] != (len(targets), len(eps)):
            raise ValueError(f"curves[{label!r}] must be (seeds, {len(targets)}, {len(eps)}), "
                             f"received {arr.shape}.")
        for i, name in enumerate(targets):
            color = model_color(name)
            ax.fill_between(eps, arr[:, i].min(0), arr[:, i].max(0), color=color, alpha=0.22,
                            lw=0)
            ax.plot(eps, arr[:, i].mean(0), color=color, marker=model_marker(name), lw=2,
                    ms=5, mec="black", mew=0.5)
            if reference is not None:
                ax.plot(eps, np.asarray(reference[label])[i], color=color, lw=1.2,
                        ls=(0, (4, 2)), alpha=0.6)
        ax.set_title(f"{label}: mean over the other non-distilled sources", fontsize=10.5)
        ax.set_xlabel(r"Perturbation $\epsilon$")
        ax.set_xlim(eps.min(), eps.max())
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.25, lw=0.6)
    axes[0].set_ylabel("Black-box accuracy")
    handles = [Line2D([], [], color=model_color(m), marker=model_marker(m), lw=2, mec="black",
                      mew=0.5, label=model_label(m)) for m in targets]
    if len(seeds) > 1:
        handles.append(Patch(color="0.5", alpha=0.3,
                             label=f"range over seeds {', '.join(map(str, seeds))}"))
    elif seeds:  # one seed: no band to explain
        handles.append(Line2D([], [], color="none", label=f"seed {seeds[0]} only (no band yet)"))
    if reference is not None:
        handles.append(Line2D([], [], color="black", ls=(0, (4, 2)), alpha=0.6,
                              label=PUBLISHED_LABEL))
    fig.legend(handles=handles, loc="outside right center", frameon=False, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=13)
    if caption:
        fig.supxlabel(caption, fontsize=9, color="0.3")
    return fig
