"""Input gradients for figures, and pure-numpy normalizers that turn them into images.

Ross & Doshi-Velez (AAAI 2018, §Interpretability) display the input gradient of the sum of
all log-probabilities, ``∇x Σ_k log p_k(x)`` (the original's ``grad_sum_logps``; per example,
since examples do not interact in inference mode), and box-plot the L2 norms of the input
gradients of the batch-mean cross-entropy that FGSM (true labels) and TGSM (``(y+1) mod K``)
follow. The model is always called with ``training=False``.

The normalizers (:func:`minmax`, :func:`diverging`) take and return numpy arrays and know
nothing of matplotlib (PAIR ``saliency`` style): plotting code receives display-ready arrays.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gradreg_tf import gradients as G
from gradreg_tf.types import ModelFn, TensorLike

__all__ = ["NORM_FLOOR", "diverging", "gradient_norms", "log_probabilities", "minmax",
           "sum_logp_gradients"]

NORM_FLOOR = 1e-20
"""Floor of the plotted gradient norms: ``max(||g||, 1e-20)`` (plot_helpers.py:102)."""


def _as_float_batch(model, x) -> np.ndarray:
    return G.check_model_input(model, x, bounds=None)


def sum_logp_gradients(model: ModelFn, x: TensorLike, *, batch_size: int = 1000) -> np.ndarray:
    """``∇x Σ_k log softmax(model(x))_k`` for every example (the paper's gradient maps).

    Args:
        model: Keras model (called with ``training=False``) or callable returning logits.
        x: float input batch.
        batch_size: examples per backward pass (only matters for batch-dependent models).

    Returns:
        float32 array shaped like ``x``.

    Raises:
        ValueError: bad shapes, non-finite inputs or ``batch_size`` < 1.
        TypeError: integer ``x``.
    """
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    arr = _as_float_batch(model, x)
    out = np.empty(arr.shape, np.float32)
    for part in G.chunks(len(arr), batch_size):
        xs = tf.convert_to_tensor(arr[part], tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(xs)
            logits = tf.cast(G.call_logits(model, xs), tf.float32)
            total = tf.reduce_sum(tf.nn.log_softmax(logits, axis=-1))
        out[part] = tape.gradient(total, xs).numpy()
    return out


def log_probabilities(model: ModelFn, x: TensorLike, *, batch_size: int = 1000) -> np.ndarray:
    """Log-softmax of the logits, ``(n, K)`` float32, in chunks of ``batch_size``.

    Raises:
        ValueError: bad shapes or ``batch_size`` < 1.
    """
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    arr = _as_float_batch(model, x)
    parts = [tf.nn.log_softmax(G.logits(model, tf.convert_to_tensor(arr[p])), axis=-1).numpy()
             for p in G.chunks(len(arr), batch_size)]
    return np.concatenate(parts).astype(np.float32)


def gradient_norms(model: ModelFn, x: TensorLike, y: TensorLike, *, label_offset: int = 0,
                   batch_size: int = 1000, floor: float = NORM_FLOOR) -> np.ndarray:
    """Per-example L2 norms of the input gradient of the chunk-mean cross-entropy.

    The quantities of the paper's gradient-norm box plots (MNIST cell 25): labels are
    ``(y + label_offset) mod K`` (0 = the FGSM direction, 1 = the TGSM direction), the loss is
    the mean over each chunk of ``batch_size`` examples (so each gradient is scaled by
    ``1/batch_size``, as the original's ``batch_input_gradients(n=1000)``), and norms are
    floored at ``floor`` so exactly-zero gradients show on a log axis.

    Args:
        model: the model (``training=False``).
        x: float inputs.
        y: integer true labels.
        label_offset: added to ``y`` modulo the number of classes.
        batch_size: chunk size of the mean (see above).
        floor: lower bound of the returned norms.

    Returns:
        float64 array ``(n,)``.

    Raises:
        ValueError: bad shapes, labels or ``batch_size`` < 1.
    """
    from gradreg_tf import _checks

    batch_size = G.check_positive_int(batch_size, name="batch_size")
    arr = _as_float_batch(model, x)
    k = G.n_classes(model, arr)
    labels = (_checks.check_labels(y, n_classes=k, n_examples=len(arr)) + int(label_offset)) % k
    norms = np.empty(len(arr), np.float64)
    for part in G.chunks(len(arr), batch_size):
        grad, _ = G.xent_gradient(model, tf.convert_to_tensor(arr[part]),
                                  tf.constant(labels[part], tf.int32))
        g = grad.numpy().reshape(grad.shape[0], -1).astype(np.float64)
        norms[part] = np.sqrt(np.sum(g * g, axis=1))
    return np.maximum(norms, floor)


def minmax(images: np.ndarray, *, axis=None) -> np.ndarray:
    """Scales each image to [0, 1] by its own min and max (what ``imshow`` does by default).

    Args:
        images: array ``(..., H, W)`` or ``(..., H, W, 1)`` (the channel is squeezed).
        axis: axes that make up one image (default: the last two after squeezing).

    Returns:
        float64 array of the same shape (minus a trailing channel of size 1), in [0, 1];
        constant images map to 0.5.
    """
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim >= 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    axis = (-2, -1) if axis is None else axis
    lo = np.min(arr, axis=axis, keepdims=True)
    span = np.max(arr, axis=axis, keepdims=True) - lo
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (arr - lo) / safe, 0.5)


def diverging(gradients: np.ndarray, *, percentile: float = 99.0) -> np.ndarray:
    """Channel-summed gradients scaled to [-1, 1] by their ``percentile`` of absolute value.

    PAIR ``saliency``'s ``VisualizeImageDiverging`` (which the original used for RGB inputs):
    per image, ``clip(g / P, -1, 1)`` with ``P`` the ``percentile`` of ``|g|`` so outliers do
    not wash out the map.

    Args:
        gradients: ``(..., H, W, C)`` array.
        percentile: in (0, 100].

    Returns:
        float64 array ``(..., H, W)`` in [-1, 1].

    Raises:
        ValueError: ``percentile`` outside (0, 100].
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], received {percentile!r}.")
    arr = np.sum(np.asarray(gradients, dtype=np.float64), axis=-1)
    span = np.percentile(np.abs(arr), percentile, axis=(-2, -1), keepdims=True)
    safe = np.where(span > 0, span, 1.0)
    return np.clip(arr / safe, -1.0, 1.0)
