"""Grids of images: gradient maps, adversarial examples, and 10 x 10 target grids.

The functions take display-ready arrays (see :mod:`gradreg_tf.saliency` for normalizers)
and draw them with ``imshow``; nothing is computed here.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.patches import Rectangle

from gradreg_tf.plotting.style import new_figure

__all__ = ["plot_image_grid", "plot_target_grid", "plot_target_grids"]


def _squeeze(images: np.ndarray, ndim: int) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == ndim + 1 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != ndim:
        raise ValueError(f"images must have {ndim} dimensions (plus an optional trailing "
                         f"channel of size 1), received shape {np.shape(images)}.")
    return arr


def _frame(ax, color, lw):
    ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, edgecolor=color,
                           lw=lw, clip_on=False, zorder=5))


def plot_image_grid(images: np.ndarray, *, row_labels: Sequence[str] | None = None,
                    col_labels: Sequence[str] | None = None, title: str | None = None,
                    cmap: str = "gray", vmin: float | None = 0.0, vmax: float | None = 1.0,
                    cell_size: float = 1.0, fig=None):
    """Draws ``images[r, c]`` in a rows x columns grid with labels on the left and on top.

    Args:
        images: ``(rows, cols, H, W)`` (or ``(..., 1)``) display-ready values.
        row_labels: one label per row, written vertically on the left.
        col_labels: one label per column, written on top.
        title: figure title.
        cmap: matplotlib colormap name.
        vmin: value shown as the darkest colour (None: per image).
        vmax: value shown as the brightest colour (None: per image).
        cell_size: inches per image.
        fig: Figure or SubFigure to draw in (default: a new one).

    Returns:
        The Figure.

    Raises:
        ValueError: on a wrong shape or label count.
    """
    arr = _squeeze(images, 4)
    rows, cols = arr.shape[:2]
    for labels, n, what in ((row_labels, rows, "row_labels"), (col_labels, cols, "col_labels")):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{what} must have {n} entries, received {len(labels)}.")
    title_in = 0.08 + 0.22 * (title.count("\n") + 1) if title else 0.05
    top_in = title_in + (0.25 if col_labels is not None else 0.0)
    left_in = 0.35 if row_labels is not None else 0.05
    width, height = cell_size * cols + left_in + 0.05, cell_size * rows + top_in + 0.05
    if fig is None:
        fig = new_figure((width, height), layout=None)
    axes = fig.subplots(rows, cols, squeeze=False,
                        gridspec_kw=dict(hspace=0.04, wspace=0.04, left=left_in / width,
                                         right=1 - 0.05 / width, bottom=0.05 / height,
                                         top=1 - top_in / height))
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(arr[r, c], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], fontsize=9)
            if r == 0 and col_labels is not None:
                ax.set_title(col_labels[c], fontsize=9, pad=3)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.06 / height, va="top")
    return fig


def plot_target_grid(images: np.ndarray, class_names: Sequence[str], *,
                     success: np.ndarray | None = None, title: str | None = None,
                     subtitle: str | None = None, fig=None):
    """A K x K grid: row = original class, column = target class, diagonal = the original.

    The layout of the paper's iterated-TGSM figure (MNIST cell 50, ``generate_tgsm_grids.py``):
    the diagonal image (the unattacked original) is outlined in black. When ``success`` is
    given, every off-diagonal cell where the model does NOT predict the target gets a thin
    orange frame (attacks usually succeed, so the failures are the few cells worth marking).

    Args:
        images: ``(K, K, H, W)`` (or ``(..., 1)``) display-ready values in [0, 1].
        class_names: the K class names.
        success: optional ``(K, K)`` bool array, True where the attack reached the target.
        title: title above the grid (e.g. the model's name).
        subtitle: smaller line under the title (attack and budget).
        fig: Figure or SubFigure to draw in (default: a new 6 x 6.4 in figure).

    Returns:
        The Figure (or SubFigure).

    Raises:
        ValueError: on a non-square grid or a wrong number of class names.
    """
    arr = _squeeze(images, 4)
    k = arr.shape[0]
    if arr.shape[1] != k or len(class_names) != k:
        raise ValueError(f"images must be (K, K, H, W) with K = len(class_names) = "
                         f"{len(class_names)}, received shape {np.shape(images)}.")
    if fig is None:
        fig = new_figure((6, 6.4), layout=None)
    axes = fig.subplots(k, k, squeeze=False, gridspec_kw=dict(hspace=0.08, wspace=0.08,
                                                              left=0.1, right=0.98, bottom=0.08,
                                                              top=0.88 if subtitle else 0.91))
    for r in range(k):
        for c in range(k):
            ax = axes[r, c]
            ax.imshow(arr[r, c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == c:
                _frame(ax, "black", 2.0)
            elif success is not None and not success[r, c]:
                _frame(ax, "darkorange", 1.2)
            if c == 0:
                ax.set_ylabel(class_names[r], fontsize=7, rotation=0, ha="right", va="center")
            if r == k - 1:
                ax.set_xlabel(class_names[c], fontsize=7)
    fig.supylabel("Original label", fontsize=10)
    fig.supxlabel("Target label", fontsize=10)
    if title:
        fig.suptitle(title if subtitle is None else f"{title}\n", fontsize=13)
    if subtitle:
        fig.text(0.5, 0.915, subtitle, ha="center", va="bottom", fontsize=8, color="0.3")
    return fig


def plot_target_grids(images: Mapping[str, np.ndarray], class_names: Sequence[str], *,
                      success: Mapping[str, np.ndarray] | None = None, title: str | None = None,
                      subtitle: str | None = None, caption: str | None = None, ncols: int = 3):
    """One :func:`plot_target_grid` per model, side by side (the paper's MNIST cell 50).

    Args:
        images: model name -> ``(K, K, H, W)`` display-ready grid.
        class_names: the K class names.
        success: optional model name -> ``(K, K)`` bool "reached the target" (failures are
            framed, see :func:`plot_target_grid`).
        title: figure title.
        subtitle: line under each model's name (e.g. "TGSM, 10 iterations at eps=0.1").
        caption: small text at the bottom (budget).
        ncols: grids per row.

    Returns:
        The Figure.
    """
    from gradreg_tf.plotting.style import model_label

    names = list(images)
    nrows = max(1, -(-len(names) // ncols))
    head, foot = (0.55 if title else 0.05), (0.3 if caption else 0.05)
    fig = new_figure((5.4 * ncols, 5.8 * nrows + head + foot), layout=None)
    bands = fig.subfigures(nrows + 2, 1, height_ratios=[head] + [5.8] * nrows + [foot])
    for r in range(nrows):
        for c, sub in enumerate(bands[r + 1].subfigures(1, ncols, wspace=0.02)):
            i = r * ncols + c
            if i < len(names):
                plot_target_grid(images[names[i]], class_names,
                                 success=None if success is None else success.get(names[i]),
                                 title=model_label(names[i]), subtitle=subtitle, fig=sub)
    if title:
        bands[0].text(0.5, 0.5, title, ha="center", va="center", fontsize=15)
    if caption:
        bands[-1].text(0.5, 0.5, caption, ha="center", va="center", fontsize=9, color="0.3")
    return fig
