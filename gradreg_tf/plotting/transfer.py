"""The paper's transfer-grid figure: accuracy vs eps, one panel per source model.

Ross & Doshi-Velez (AAAI 2018), "CNN Accuracy on <dataset> Adversarial Examples (FGSM/TGSM)"
(MNIST cells 33 and 45): a 2 x 3 grid with one panel per SOURCE model (whose input gradients
made the examples) and one line per TARGET model (the model evaluated). Here the sixth panel
holds the legend, and published curves can be drawn faintly beside ours.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.lines import Line2D

from gradreg_tf.plotting.style import (PUBLISHED_LABEL, model_color, model_label, model_marker,
                                       new_figure)

__all__ = ["plot_cells_vs_published", "plot_transfer_grid", "plot_transfer_panel"]

_OURS = dict(lw=2.2, ms=5.5, mec="black", mew=0.5, zorder=3)
_THEIRS = dict(lw=1.3, ls=(0, (4, 2)), alpha=0.55, zorder=2)


def plot_transfer_panel(eps: Sequence[float], accuracy: np.ndarray, targets: Sequence[str], *,
                        reference: np.ndarray | None = None, ax=None, title: str | None = None,
                        ylabel: str | None = "Accuracy"):
    """One panel: accuracy of each target model vs eps on one source's examples.

    Args:
        eps: perturbation sizes, shape ``(E,)``.
        accuracy: ``(len(targets), E)`` accuracies in [0, 1] (NaN = not computed).
        targets: target-model names (colours, markers and labels follow the paper).
        reference: optional ``(len(targets), E)`` published accuracies at the same eps, drawn
            thin, dashed and faint in the same colours (NaN rows are skipped).
        ax: axes to draw on (default: a new figure).
        title: panel title.
        ylabel: y-axis label (None: none).

    Returns:
        The Figure holding ``ax``.
    """
    if ax is None:
        ax = new_figure((4.2, 3.2)).add_subplot()
    eps = np.asarray(eps, dtype=float)
    accuracy = np.asarray(accuracy, dtype=float)
    if accuracy.shape != (len(targets), len(eps)):
        raise ValueError(f"accuracy must have shape ({len(targets)}, {len(eps)}) "
                         f"(targets, eps), received {accuracy.shape}.")
    for i, name in enumerate(targets):
        color = model_color(name)
        if reference is not None and not np.all(np.isnan(reference[i])):
            ax.plot(eps, reference[i], color=color, **_THEIRS)
        ax.plot(eps, accuracy[i], color=color, marker=model_marker(name),
                label=model_label(name), **_OURS)
    ax.set_xlim(eps.min(), eps.max())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(r"Perturbation $\epsilon$")
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10.5)
    ax.grid(True, alpha=0.25, lw=0.6)
    return ax.figure


def plot_transfer_grid(eps: Sequence[float], accuracy: np.ndarray, models: Sequence[str], *,
                       reference: np.ndarray | None = None, attack_label: str = "FGSM",
                       title: str | None = None, caption: str | None = None,
                       notes: Sequence[str] = (), fig=None):
    """The paper's 2 x 3 transfer figure: one panel per source model, one line per target.

    Args:
        eps: perturbation sizes ``(E,)``.
        accuracy: ``(S, T, E)`` array, ``accuracy[s, t, e]`` = accuracy of target ``models[t]``
            on examples crafted with source ``models[s]`` at ``eps[e]``.
        models: model names, the order of both the source and the target axes (at most 5).
        reference: optional published ``(S, T, E)`` array (NaN where unknown), drawn faintly.
        attack_label: ``"FGSM"``/``"TGSM"``, used in the y labels.
        title: figure title (e.g. "CNN Accuracy on MNIST Adversarial Examples (FGSM)").
        caption: a small line under the panels (budget, number of examples).
        notes: extra lines written under the legend in the sixth panel.
        fig: Figure (or SubFigure) to draw in (default: a new 12 x 6.6 in figure).

    Returns:
        The Figure.

    Raises:
        ValueError: if ``accuracy`` is not ``(len(models), len(models), len(eps))`` or more
            than 5 models are given.
    """
    accuracy = np.asarray(accuracy, dtype=float)
    n = len(models)
    if n > 5 or accuracy.shape != (n, n, len(eps)):
        raise ValueError(f"accuracy must have shape (sources, targets, eps) = ({n}, {n}, "
                         f"{len(eps)}) for at most 5 models, received {accuracy.shape}.")
    if reference is not None:
        reference = np.asarray(reference, dtype=float)
        if reference.shape != accuracy.shape:
            raise ValueError(f"reference must have the shape of accuracy {accuracy.shape}, "
                             f"received {reference.shape}.")
    fig = fig if fig is not None else new_figure((12, 6.8))
    axes = fig.subplots(2, 3, sharex=True, sharey=True).ravel()
    for s, source in enumerate(models):
        plot_transfer_panel(eps, accuracy[s], models,
                            reference=None if reference is None else reference[s], ax=axes[s],
                            title=f"{model_label(source)}\nadversarial examples",
                            ylabel=f"{attack_label} Accuracy" if s % 3 == 0 else None)
        axes[s].tick_params(labelbottom=True)
    legend_ax = axes[5]
    legend_ax.axis("off")
    handles = [Line2D([], [], color=model_color(m), marker=model_marker(m), label=model_label(m),
                      **{k: v for k, v in _OURS.items() if k != "zorder"}) for m in models]
    handles.append(Line2D([], [], color="black", lw=2.2, label="this reproduction"))
    if reference is not None:
        handles.append(Line2D([], [], color="black", label=PUBLISHED_LABEL,
                              **{k: v for k, v in _THEIRS.items() if k != "zorder"}))
    legend_ax.legend(handles=handles, loc="upper center", title="Target model (evaluated)",
                     frameon=False, fontsize=10, title_fontsize=10.5)
    if notes:
        legend_ax.text(0.5, 0.02, "\n".join(notes), transform=legend_ax.transAxes, ha="center",
                       va="bottom", fontsize=8.5, color="0.25", wrap=True)
    if title:
        fig.suptitle(title, fontsize=14)
    if caption:
        fig.supxlabel(caption, fontsize=9, color="0.3")
    return fig


CELL_MARKERS = {"target": "o", "source": "s", "white-box": "*"}


def plot_cells_vs_published(pairs, *, notes, title: str):
    """Ours against published for every cell that involves one model, one panel per attack, one
    colour per candidate in that model's place, one marker per cell group (attacked by the
    others, its examples against the others, white-box).

    Args:
        pairs: ``{(candidate, attack): {group: [(ours, published), ...]}}`` (e.g. from
            :func:`gradreg_tf.eval.compare.model_cells`); groups ``target``, ``source``,
            ``white-box``.
        notes: attack -> a text box drawn in the panel's lower right (where no cell lies).
        title: the figure's title.

    Returns:
        The Figure.
    """
    attacks = list(dict.fromkeys(a for _, a in pairs))
    candidates = list(dict.fromkeys(c for c, _ in pairs))
    fig = new_figure((10.5, 6.6))
    axes = np.atleast_1d(fig.subplots(1, len(attacks), sharey=True))
    for ax, attack in zip(axes, attacks):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", zorder=0)
        for name in candidates:
            for group, marker in CELL_MARKERS.items():
                pts = np.array(pairs[(name, attack)][group]).reshape(-1, 2)
                ax.scatter(pts[:, 1], pts[:, 0], s=42 if group == "white-box" else 22,
                           marker=marker, color=model_color(name), alpha=0.75,
                           label=f"{model_label(name)}: as {group}")
        ax.text(0.97, 0.03, notes[attack], transform=ax.transAxes, ha="right", va="bottom",
                multialignment="left", fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.9})
        ax.set(title=attack.upper(), xlabel=f"published ({PUBLISHED_LABEL})",
               xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal")
        ax.grid(True, alpha=0.25)
    axes[0].set_ylabel("ours")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    return fig
