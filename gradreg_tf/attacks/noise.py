"""Random-sign noise: the baseline an attack must beat (Carlini et al. 2019, §5.2).

``clip(x + eps * s, bounds)`` with every ``s`` an independent fair ±1: the largest L∞ noise of
size ``eps``, uninformed by the model. If it hurts a model more than a gradient attack of the
same size, the attack's gradients are not informative (Athalye, Carlini & Wagner, ICML 2018,
§3.1, "random sampling finds adversarial examples").
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gradreg_tf import _checks
from gradreg_tf.types import TensorLike

__all__ = ["random_sign_noise"]


def random_sign_noise(x: TensorLike, eps: float, *, bounds, seed: int = 0) -> tf.Tensor:
    """``clip(x + eps * s, bounds)``, ``s`` uniform on {-1, +1} per pixel.

    The signs are ``numpy.random.default_rng(seed).integers(0, 2, x.shape) * 2 - 1``, so one
    seed gives the same sign pattern at every ``eps`` (a noise-vs-eps curve along one
    direction per image). Costs no model evaluation.

    Args:
        x: input batch within ``bounds``, any float dtype.
        eps: noise size (L∞) in the units of ``x``.
        bounds: ``(lower, upper)`` pixel range; the result is clipped to it.
        seed: integer >= 0.

    Returns:
        ``tf.Tensor`` shaped and typed like ``x``.

    Raises:
        ValueError: negative or non-finite ``eps``, reversed bounds, ``x`` outside ``bounds``,
            empty or non-finite ``x``, negative ``seed``.
        TypeError: integer ``x``.
    """
    bounds = _checks.as_bounds(bounds)
    eps = _checks.check_eps(eps)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, received {seed!r}.")
    arr = _checks.check_images(x, rank=(2, 3, 4, 5), bounds=bounds)
    signs = np.random.default_rng(seed).integers(0, 2, size=arr.shape) * 2 - 1
    out = arr + np.asarray(eps, arr.dtype) * signs.astype(arr.dtype)
    return tf.convert_to_tensor(np.clip(out, bounds.lower, bounds.upper).astype(arr.dtype))
