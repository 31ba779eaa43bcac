"""LeCun local contrast normalization, the first layer of the paper's SVHN network.

Faithful to the original ``lecun_lcn.py`` (SETUP.md §3): a 7x7 Gaussian kernel
(sigma 3, centred at index 3, normalised to sum 1), zero ('SAME') padding,

    centered = x - g * x
    denom    = sqrt(g * centered**2)
    divisor  = max(mean(denom), denom)
    out      = centered / max(divisor, 1e-4)

where ``mean(denom)`` is taken over the **whole batch** in the original, so a
prediction depends on the batch it is evaluated in. :class:`LocalContrastNormalization`
keeps that behaviour; :class:`PerImageLocalContrastNormalization` is the variant
that averages per image (batch-independent), under its own name.

Flat neighbourhoods: ``sqrt`` has an infinite derivative at 0, so the original's gradient
is NaN wherever ``g * centered**2`` is 0 (a flat 7x7 patch), and the SVHN network is
differentiated twice (double backprop). Here ``denom`` is computed as ``sqrt(v)`` for
``v > SQRT_FLOOR`` and as ``stop_gradient(sqrt(v))`` below it: the forward values are
bitwise those of the original everywhere, the first and second derivatives stay finite,
and only pixels whose local standard deviation is below ``sqrt(SQRT_FLOOR)`` = 1e-6 (far
below the 1e-4 floor of the divisor, so they only enter through the mean) stop passing
gradient. Cost: two extra elementwise ops per pixel.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

SQRT_FLOOR = 1e-12
"""Below this local variance ``denom`` passes no gradient (see the module docstring)."""


def _safe_sqrt(v):
    """``sqrt(v)`` (bitwise) whose first and second derivatives are finite at ``v = 0``."""
    floor = tf.cast(SQRT_FLOOR, v.dtype)
    above = v > floor
    return tf.where(above, tf.sqrt(tf.maximum(v, floor)), tf.stop_gradient(tf.sqrt(v)))


def gaussian_kernel(radius: int = 7, sigma: float = 3.0) -> np.ndarray:
    """Returns the original's ``radius x radius`` Gaussian kernel, normalised to sum 1.

    Args:
        radius: kernel width (the original's ``radius=7``); centre at ``radius // 2``.
        sigma: standard deviation in pixels.

    Returns:
        float32 array of shape ``(radius, radius, 1, 1)`` (a conv2d filter).
    """
    mid = radius // 2
    i, j = np.meshgrid(np.arange(radius) - mid, np.arange(radius) - mid, indexing="ij")
    g = np.exp(-(i**2 + j**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return g.astype(np.float32)[:, :, None, None]


@keras.saving.register_keras_serializable(package="gradreg_tf")
class LocalContrastNormalization(keras.layers.Layer):
    """LeCun local contrast normalization with the original's batch-level mean.

    Args:
        radius: Gaussian kernel width (default 7, as the original).
        sigma: Gaussian standard deviation (default 3.0).
        **kwargs: standard Keras layer arguments.

    Input: ``(batch, height, width, 1)`` float images. Output: same shape.
    """

    per_image = False

    def __init__(self, radius: int = 7, sigma: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        if int(radius) < 1:
            raise ValueError(f"radius must be a positive integer, received {radius!r}.")
        if float(sigma) <= 0:
            raise ValueError(f"sigma must be > 0, received {sigma!r}.")
        self.radius = int(radius)
        self.sigma = float(sigma)
        self._kernel = tf.constant(gaussian_kernel(self.radius, self.sigma))

    def build(self, input_shape):
        if input_shape[-1] != 1:
            raise ValueError(
                "LocalContrastNormalization expects single-channel (grayscale) input, "
                f"received input shape {tuple(input_shape)}."
            )
        super().build(input_shape)

    def _mean_denominator(self, denom):
        return tf.reduce_mean(denom)

    def call(self, x):
        kernel = tf.cast(self._kernel, x.dtype)
        blur = lambda t: tf.nn.conv2d(t, kernel, strides=1, padding="SAME")  # noqa: E731
        centered = x - blur(x)
        denom = _safe_sqrt(blur(tf.square(centered)))
        divisor = tf.maximum(self._mean_denominator(denom), denom)
        return centered / tf.maximum(divisor, tf.cast(1e-4, x.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "radius": self.radius, "sigma": self.sigma}


@keras.saving.register_keras_serializable(package="gradreg_tf")
class PerImageLocalContrastNormalization(LocalContrastNormalization):
    """Variant of :class:`LocalContrastNormalization` whose mean is per image.

    Not the original's behaviour: predictions no longer depend on the batch.
    """

    per_image = True

    def _mean_denominator(self, denom):
        return tf.reduce_mean(denom, axis=[1, 2, 3], keepdims=True)
