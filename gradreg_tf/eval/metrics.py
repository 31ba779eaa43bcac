"""Small measurements on predictions and grids: macro-F1, grid agreement, black-box means,
Venn regions, distribution summaries.

Each function here is the one place its number is computed; the scripts in ``experiments/``
and the tests call it (``figures/README.md``, "Measurement → function"). All are pure NumPy on
arrays already measured (no model is run here); the grids are ``[source, target, eps]`` arrays
as :func:`gradreg_tf.published.grid_array` builds them (NaN where a cell is missing).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["REGIONS", "blackbox_means", "distribution_summary", "grid_agreement",
           "gradient_map_stats", "macro_f1", "region_counts"]

REGIONS = ("100", "010", "001", "110", "101", "011", "111")
"""Venn region codes: a 1 at position i means "in set i"; e.g. "101" = in sets 0 and 2, not 1."""


def macro_f1(y_true, y_pred, n_classes: int) -> float:
    """Macro-averaged F1 over ``n_classes`` classes, as sklearn's ``f1_score(average="macro")``
    that the paper's notebooks print (a class absent from both labels and predictions counts 0).

    Args:
        y_true, y_pred: integer class labels of equal length.
        n_classes: the number of classes K.

    Returns:
        ``mean_k 2·TP_k / (2·TP_k + FP_k + FN_k)``. Scaling: O(K · n).

    Raises:
        ValueError: on unequal lengths, no labels, or ``n_classes < 1``.
    """
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and of equal length, received "
                         f"{y_true.size} and {y_pred.size}.")
    if int(n_classes) < 1:
        raise ValueError(f"n_classes must be >= 1, received {n_classes!r}.")
    f1 = []
    for k in range(int(n_classes)):
        tp = np.sum((y_pred == k) & (y_true == k))
        fp = np.sum((y_pred == k) & (y_true != k))
        fn = np.sum((y_pred != k) & (y_true == k))
        f1.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))


def grid_agreement(ours, theirs, models: Sequence[str], epsilons: Sequence[float],
                   n_examples: int, mean_abs_difference: float | None) -> dict:
    """How closely two ``[source, target, eps]`` accuracy grids agree (ours vs published).

    Args:
        ours, theirs: equal-shape arrays, NaN where a cell is missing on either side.
        models: the names along the source and target axes.
        epsilons: the eps along the last axis.
        n_examples: test images per cell of ``theirs`` (for its binomial standard error).
        mean_abs_difference: from :func:`gradreg_tf.eval.claims.mean_abs_difference` (the one
            implementation of that distance), copied into the result.

    Returns:
        ``{"n_points"}`` and, when any cell is on both sides, ``mean_abs_difference``,
        ``mean_difference``, ``max_abs_difference`` with ``max_at`` (source, target, eps) and
        ``fraction_within_2se``: the share of cells within two binomial standard errors of
        ``theirs`` (``sqrt(max(p(1−p), 1/n) / n)``). Scaling: O(cells).
    """
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    if ours.shape != theirs.shape:
        raise ValueError(f"the grids must have the same shape, received {ours.shape} and "
                         f"{theirs.shape}.")
    diff = ours - theirs
    ok = ~np.isnan(diff)
    out = {"n_points": int(ok.sum())}
    if not ok.any():
        return out
    se = np.sqrt(np.clip(theirs * (1 - theirs), 1 / n_examples, None) / n_examples)
    worst = np.unravel_index(np.nanargmax(np.abs(diff)), diff.shape)
    out.update({
        "mean_abs_difference": mean_abs_difference,
        "mean_difference": float(np.nanmean(diff)),
        "max_abs_difference": float(np.abs(diff[worst])),
        "max_at": {"source_model": models[worst[0]], "target_model": models[worst[1]],
                   "eps": float(epsilons[worst[2]])},
        "fraction_within_2se": float(np.mean(np.abs(diff[ok]) <= 2 * se[ok])),
    })
    return out


def blackbox_means(grid, models: Sequence[str], *, exclude: Sequence[str] = ("distilled",)) -> dict:
    """Per target and eps, its mean accuracy over the foreign sources not in ``exclude`` (the
    distilled model's FGSM examples are degenerate): the quantity of the paper's transfer claims
    (§4; :func:`gradreg_tf.eval.claims.blackbox_curve` is the same on result rows).

    Returns:
        ``{target: array over eps}`` (NaN where a target has no such source). Scaling: O(cells).
    """
    grid = np.asarray(grid, float)
    out = {}
    for t, target in enumerate(models):
        src = [s for s, name in enumerate(models) if name != target and name not in exclude]
        out[target] = (np.nanmean(grid[src, t, :], axis=0) if src
                       else np.full(grid.shape[2], np.nan))
    return out


def region_counts(masks: Sequence[np.ndarray]) -> dict[str, int]:
    """Sizes of the 7 regions of three boolean masks over the same items (the paper's
    misclassification-overlap Venn diagrams, MNIST cell 35).

    Args:
        masks: three boolean arrays of equal length (e.g. "model m misclassifies example i").

    Returns:
        ``{code: count}`` for every code in :data:`REGIONS` (items in no set are not counted).
        Scaling: O(n).

    Raises:
        ValueError: unless exactly three masks of equal length are given.
    """
    if len(masks) != 3:
        raise ValueError(f"need exactly three masks, received {len(masks)}.")
    arrs = [np.asarray(m, dtype=bool).ravel() for m in masks]
    if len({a.size for a in arrs}) != 1:
        raise ValueError(f"masks must have equal lengths, received {[a.size for a in arrs]}.")
    out = {}
    for code in REGIONS:
        sel = np.ones(arrs[0].size, bool)
        for bit, a in zip(code, arrs):
            sel &= a if bit == "1" else ~a
        out[code] = int(sel.sum())
    return out


def distribution_summary(values, *, floor: float | None = None) -> dict:
    """``n, mean, min, q1, median, q3, max`` of a sample (a box plot's numbers), and, with
    ``floor``, the fraction of values at or below it. Scaling: O(n log n)."""
    v = np.asarray(values, float).ravel()
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"values must be a non-empty finite sample, received {v.size} values "
                         f"({int(np.sum(~np.isfinite(v)))} non-finite).")
    q = np.quantile(v, [0, 0.25, 0.5, 0.75, 1])
    out = {"n": int(v.size), "mean": float(v.mean()), "min": float(q[0]), "q1": float(q[1]),
           "median": float(q[2]), "q3": float(q[3]), "max": float(q[4])}
    if floor is not None:
        out["fraction_at_floor"] = float(np.mean(v <= floor))
    return out


def gradient_map_stats(gradients: Mapping[str, np.ndarray], images) -> dict:
    """Per model, how its input-gradient maps look (the paper's Fig. 3 read as numbers): mean and
    max |gradient| and the correlation of |gradient| with the image's own ink (|pixel − median|;
    higher: the gradient lies on the digit). Scaling: O(models · pixels)."""
    ink = np.abs(np.asarray(images) - np.median(images)).ravel()
    return {name: {"mean_abs": float(np.mean(np.abs(g))), "max_abs": float(np.max(np.abs(g))),
                   "abs_corr_with_image": float(np.corrcoef(np.abs(g).ravel(), ink)[0, 1])}
            for name, g in gradients.items()}
