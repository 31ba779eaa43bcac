"""Input validation shared by the models, attacks and data loaders.

Every check raises ``ValueError`` (or ``TypeError`` for a wrong kind of object)
naming what was received and what was expected. Checks run eagerly on numpy
values before any graph is built, so they survive ``python -O``.
"""

from __future__ import annotations

import enum
from typing import Sequence

import numpy as np

from gradreg_tf.types import Bounds


def as_bounds(bounds) -> Bounds:
    """Returns ``bounds`` as a :class:`Bounds`, checking ``lower < upper``.

    Raises:
        ValueError: if ``bounds`` is not a pair of finite numbers with lower < upper (a
            string such as ``"01"`` is refused, not read character by character).
    """
    if isinstance(bounds, (str, bytes, dict, set, frozenset)):
        raise ValueError(
            f"bounds must be a pair (lower, upper) of numbers, received {bounds!r} "
            f"({type(bounds).__name__})."
        )
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


def check_soft_labels(y, *, n_classes: int, n_examples: int | None = None,
                      name: str = "y") -> np.ndarray:
    """Checks target probabilities (soft labels, e.g. a distillation teacher's).

    Returns:
        ``y`` as a floating numpy array of shape ``(n_examples, n_classes)``.

    Raises:
        ValueError: on a wrong shape, non-finite or negative entries, or rows that do not
            sum to 1 (within 1e-3).
    """
    arr = np.asarray(y)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64) if np.issubdtype(arr.dtype, np.number) else arr
    if arr.ndim != 2 or arr.shape[1] != n_classes or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"{name} must be probabilities of shape (batch, {n_classes}), received "
            f"{arr.dtype} of shape {arr.shape}."
        )
    if n_examples is not None and len(arr) != n_examples:
        raise ValueError(f"{name} has {len(arr)} rows but the batch has {n_examples} examples.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains {int(np.sum(~np.isfinite(arr)))} NaN or infinite "
                         "values; soft labels must be probabilities.")
    sums = arr.sum(axis=1)
    if np.any(arr < 0) or not np.allclose(sums, 1, atol=1e-3):
        raise ValueError(
            f"{name} must hold probability rows (entries >= 0 summing to 1), received entries "
            f"in [{arr.min():.6g}, {arr.max():.6g}] and row sums in [{sums.min():.6g}, "
            f"{sums.max():.6g}]."
        )
    return arr


def check_temperature(temperature, *, name: str = "temperature") -> float:
    """Checks a softmax temperature: a finite number > 0.

    Raises:
        ValueError: if ``temperature`` is not a finite number > 0.
    """
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0, received {temperature!r}.") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, received {temperature!r}.")
    return value


def check_logits(values, *, name: str = "the model's output") -> int:
    """Checks one batch of a model's outputs: logits of shape ``(batch, K)`` with K >= 2.

    A batch whose every row lies in [0, 1] and sums to 1 is taken for probabilities (a
    network ending in softmax): the attacks and penalties differentiate the softmax
    cross-entropy of logits, which on probabilities is a different, much flatter function.

    Returns:
        The number of classes K.

    Raises:
        ValueError: on a wrong rank, fewer than 2 classes, or probability rows.
    """
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.shape[-1] < 2:
        raise ValueError(
            f"{name} must be logits of shape (batch, classes) with at least 2 classes, "
            f"received shape {arr.shape}."
        )
    rows = arr.astype(np.float64)
    if (np.all(np.isfinite(rows)) and rows.min() >= 0 and rows.max() <= 1
            and np.allclose(rows.sum(axis=1), 1, atol=1e-5)):
        raise ValueError(
            f"{name} looks like probabilities (every row in [0, 1] summing to 1), not logits: "
            "remove the final softmax from the network."
        )
    return int(arr.shape[-1])


def check_logits_model(model, x=None) -> int | None:
    """Checks that ``model`` returns logits of at least 2 classes.

    Uses the model's static output shape when it has one; with ``x``, also runs the model
    on up to 4 of its examples (inference mode) and checks the values with
    :func:`check_logits`. A model with a single output logit would make FGSM/TGSM return
    their input unchanged and the JSMA report success for every example.

    Args:
        model: a Keras model or any callable ``x -> logits``.
        x: optional input batch to run the model on.

    Returns:
        The number of classes, or ``None`` if neither the static shape nor ``x`` tells it.

    Raises:
        ValueError: if the output is not ``(batch, K)`` with K >= 2, or is probabilities.
    """
    shape = None
    try:
        shape = tuple(model.outputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        shape = None
    if shape is not None and (len(shape) != 2 or (shape[-1] is not None and shape[-1] < 2)):
        raise ValueError(
            "the model must return logits of shape (batch, classes) with at least 2 classes, "
            f"received output shape {shape}."
        )
    if x is None:
        return None if shape is None or shape[-1] is None else int(shape[-1])
    import keras
    import tensorflow as tf

    batch = tf.convert_to_tensor(np.asarray(x)[:4])
    out = model(batch, training=False) if isinstance(model, keras.layers.Layer) else model(batch)
    return check_logits(np.asarray(out))


def _as_float(value, message: str) -> float:
    """``float(value)``; ``ValueError(message)`` for a bool or anything that is not a number."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(message)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(message) from None


def check_eps(eps, *, name: str = "eps") -> float:
    """Checks a perturbation size: a finite number >= 0.

    Raises:
        ValueError: if ``eps`` is negative, NaN or infinite.
    """
    value = _as_float(eps, f"{name} must be a number >= 0, received {eps!r}.")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, received {eps!r}.")
    return value


def check_fraction(value, *, name: str) -> float:
    """Checks a number in (0, 1] (a momentum, a checkpoint rule, a square fraction).

    Raises:
        ValueError: anything else (named in the message).
    """
    message = f"{name} must be a number in (0, 1], received {value!r}."
    out = _as_float(value, message)
    if not (0.0 < out <= 1.0):
        raise ValueError(message)
    return out


def check_seed(seed) -> int:
    """Checks a random seed: an integer >= 0.

    Raises:
        ValueError: anything else (named in the message).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, received {seed!r}.")
    return int(seed)


def as_choice(value, kind: type[enum.Enum], *, name: str):
    """``value`` as a member of the string enum ``kind`` (a member or its value).

    Raises:
        ValueError: naming the allowed values and ``value``.
    """
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} must be one of {[v.value for v in kind]}, "
                         f"received {value!r}.") from None
