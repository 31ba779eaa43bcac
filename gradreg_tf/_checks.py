"""Input validation shared by the models, attacks and data loaders.

Every check raises ``ValueError`` (or ``TypeError`` for a wrong kind of object)
naming what was received and what was expected. Checks run eagerly on numpy
values before any graph is built, so they survive ``python -O``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gradreg_tf.types import Bounds


def as_bounds(bounds) -> Bounds:
    """Returns ``bounds`` as a :class:`Bounds`, checking ``lower < upper``.

    Raises:
        ValueError: if ``bounds`` is not a pair of finite numbers with lower < upper.
    """
    try:
        lower, upper = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(
            f"bounds must be a pair (lower, upper) of numbers, received {bounds!r}."
        ) from None
    if not (np.isfinite(lower) and np.isfinite(upper)):
        raise ValueError(f"bounds must be finite, received {bounds!r}.")
    if lower >= upper:
        raise ValueError(
            f"bounds must satisfy lower < upper, received lower={lower}, upper={upper}."
        )
    return Bounds(lower, upper)


def check_images(x, *, name: str = "x", rank: int | Sequence[int] = 4, bounds=None) -> np.ndarray:
    """Checks an image batch and returns it as a numpy float array.

    Args:
        x: array-like batch (numpy or tensor).
        name: argument name used in error messages.
        rank: expected rank (or ranks).
        bounds: optional ``(lower, upper)``; values outside it are an error.

    Returns:
        ``x`` as a floating numpy array (its float dtype is kept).

    Raises:
        TypeError: if ``x`` is not numeric or has an integer/bool dtype.
        ValueError: on wrong rank, an empty batch, non-finite values or values outside ``bounds``.
    """
    arr = np.asarray(x)
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(
            f"{name} must have a floating dtype (e.g. float32), received dtype {arr.dtype}. "
            "Convert integer images with the dataset's preprocessing (gradreg_tf.data.load) first."
        )
    if arr.ndim not in ranks:
        raise ValueError(
            f"{name} must have rank {' or '.join(map(str, ranks))} (batch, ...), "
            f"received shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {arr.shape}).")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains {int(np.sum(~np.isfinite(arr)))} NaN or infinite values.")
    if bounds is not None:
        b = as_bounds(bounds)
        lo, hi = float(arr.min()), float(arr.max())
        tol = 1e-6 * max(1.0, abs(b.lower), abs(b.upper))
        if lo < b.lower - tol or hi > b.upper + tol:
            raise ValueError(
                f"{name} has values in [{lo:.6g}, {hi:.6g}], outside bounds "
                f"[{b.lower:.6g}, {b.upper:.6g}]."
            )
    return arr


def check_labels(y, *, n_classes: int, n_examples: int | None = None, name: str = "y") -> np.ndarray:
    """Checks integer class labels and returns them as an int64 numpy vector.

    Raises:
        TypeError: if ``y`` holds non-integer values.
        ValueError: on wrong rank, wrong length or labels outside ``[0, n_classes)``.
    """
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a vector of integer labels, received shape {arr.shape}."
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise TypeError(f"{name} must hold integer labels, received non-integer values.")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer labels, received dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if n_examples is not None and arr.shape[0] != n_examples:
        raise ValueError(
            f"{name} has {arr.shape[0]} labels but the batch has {n_examples} examples."
        )
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(
            f"{name} must be in [0, {n_classes - 1}], received labels in "
            f"[{int(arr.min())}, {int(arr.max())}]."
        )
    return arr


def check_eps(eps, *, name: str = "eps") -> float:
    """Checks a perturbation size: a finite number >= 0.

    Raises:
        ValueError: if ``eps`` is negative, NaN or infinite.
    """
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, received {eps!r}.") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, received {eps!r}.")
    return value
