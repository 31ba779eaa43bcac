"""Input-gradient penalties of Ross & Doshi-Velez (AAAI 2018, §3 "Input Gradient Regularization").

Both penalties are computed exactly as the original ``neural_network.py`` (SETUP.md §4):

* **double backprop** ("Grad Reg (y)"): ``tf.nn.l2_loss(∇_x mean_n CE(y_n, p_n))``;
* **certainty sensitivity** (the paper's text for "Grad Reg (1/K)"; the penalty ``"certainty"``
  of :class:`~gradreg_tf.GradRegClassifier` and the model ``certainty``):
  ``tf.nn.l2_loss(∇_x mean_n CE(1/K, p_n))``, the gradient of
  ``-(1/(K·B)) Σ_n Σ_k log p_nk``. (The paper's "insensitive" model is, as the original launcher
  trained it, double backprop at the "insensitive" λ: :mod:`gradreg_tf.recipes`.)

Scaling: ``tf.nn.l2_loss(t) = Σ t²/2`` over the whole batch and the gradient is that of
the batch **mean**, so the penalty is ``(1/(2B²)) Σ_n ||∇_x CE_n||²``; with B = 256 that is
``mean_n ||∇_x CE_n||² / 512``. The weight λ therefore depends on the batch size (MNIST's
λ = 56234.13 is an effective 109.8 on the per-example mean squared norm). The L1 option
uses ``Σ |t|`` of the same gradient. All values here are at λ = 1.

λ is limited to :data:`MAX_PENALTY_WEIGHT` (1e9, 10^4 times the paper's largest, 10^5): far
larger weights only overflow float32 (``λ · penalty`` = inf and NaN weights).

Under ``tf.distribute`` the mean is over the **global** batch (see
:func:`global_batch_size`), so the per-replica terms sum to the single-device value.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gradreg_tf import _checks

PENALTIES = ("double_backprop", "certainty")
NORMS = ("l2", "l1")
MAX_PENALTY_WEIGHT = 1e9
"""Largest accepted λ: 10^4 times the paper's largest (the double-backprop sweep's 10^5)."""


def check_penalty_weight(value, *, name: str = "penalty_weight") -> float:
    """Checks λ: a finite number in ``[0, MAX_PENALTY_WEIGHT]``.

    Raises:
        ValueError: if ``value`` is negative, not finite or above :data:`MAX_PENALTY_WEIGHT`.
    """
    weight = _checks.check_eps(value, name=name)
    if weight > MAX_PENALTY_WEIGHT:
        raise ValueError(
            f"{name} must be at most {MAX_PENALTY_WEIGHT:g} (the paper's largest λ is 1e+05), "
            f"received {value!r}."
        )
    return weight


def _check_temperature(temperature) -> None:
    if not tf.is_tensor(temperature):  # a tensor (traced code) cannot be checked in Python
        _checks.check_temperature(temperature)


def cross_entropy(logits, y, *, temperature: float = 1.0) -> tf.Tensor:
    """Per-example softmax cross-entropy of ``logits / temperature``.

    Args:
        logits: ``(B, K)`` tensor.
        y: integer labels ``(B,)`` or target probabilities ``(B, K)`` (soft labels,
            e.g. a distillation teacher's).
        temperature: softmax temperature T.

    Returns:
        ``(B,)`` tensor of cross-entropies (natural log).

    Raises:
        ValueError: if ``temperature`` is a number that is not finite and > 0.
    """
    _check_temperature(temperature)
    scaled = logits / tf.cast(temperature, logits.dtype)
    if y.shape.rank == 1:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(y, tf.int32), logits=scaled
        )
    return tf.nn.softmax_cross_entropy_with_logits(labels=tf.cast(y, logits.dtype), logits=scaled)


def uniform_cross_entropy(logits, *, temperature: float = 1.0) -> tf.Tensor:
    """Per-example cross-entropy against the uniform distribution 1/K (certainty sensitivity).

    Raises:
        ValueError: if ``temperature`` is a number that is not finite and > 0.
    """
    _check_temperature(temperature)
    scaled = logits / tf.cast(temperature, logits.dtype)
    return -tf.reduce_mean(tf.nn.log_softmax(scaled, axis=-1), axis=-1)


def predicted_labels(logits) -> tf.Tensor:
    """One-hot of the argmax prediction, ties split evenly (the original's FGSM labels)."""
    hits = tf.cast(tf.equal(logits, tf.reduce_max(logits, axis=-1, keepdims=True)), logits.dtype)
    return tf.stop_gradient(hits / tf.reduce_sum(hits, axis=-1, keepdims=True))


def gradient_norm(grad, norm: str = "l2") -> tf.Tensor:
    """``tf.nn.l2_loss(grad)`` (Σ g²/2, the paper's scaling) or ``Σ |g|`` for ``norm="l1"``."""
    if norm == "l2":
        return tf.nn.l2_loss(grad)
    if norm == "l1":
        return tf.reduce_sum(tf.abs(grad))
    raise ValueError(f"norm must be one of {NORMS}, received {norm!r}.")


def global_batch_size(local_batch_size) -> tf.Tensor:
    """The batch size summed over replicas (the local size outside ``tf.distribute``)."""
    size = tf.cast(local_batch_size, tf.float32)
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return size
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, size)


def _penalty(model, x, y, *, kind: str, norm: str, training: bool, temperature: float):
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, received {norm!r}.")
    _checks.check_temperature(temperature)
    x = _checks.check_images(x, rank=range(2, 6))
    x = tf.convert_to_tensor(x)
    y = None if y is None else tf.convert_to_tensor(y)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=training)
        if kind == "double_backprop":
            terms = cross_entropy(logits, y, temperature=temperature)
        else:
            terms = uniform_cross_entropy(logits, temperature=temperature)
        objective = tf.reduce_mean(terms)
    return gradient_norm(tape.gradient(objective, x), norm)


def double_backprop(model, x, y, *, norm: str = "l2", training: bool = False,
                    temperature: float = 1.0) -> tf.Tensor:
    """The double-backprop penalty at λ = 1: ``l2_loss(∇_x mean_n CE(y_n, model(x_n)))``.

    Ross & Doshi-Velez (2018), §3, "Grad Reg (y)"; scaling as in the module docstring
    (``Σ_n ||∇_x CE_n||² / (2B²)`` for the batch of B examples given).

    Args:
        model: callable ``x -> logits`` (a Keras model).
        x: float image batch (numpy or tensor); its dtype is kept (float64 works).
        y: integer labels ``(B,)`` or probabilities ``(B, K)``.
        norm: ``"l2"`` (the paper) or ``"l1"``.
        training: run the model in training mode (batch-norm batch statistics, dropout),
            as during training; default inference mode.
        temperature: softmax temperature of the cross-entropy.

    Returns:
        Scalar tensor.

    Raises:
        ValueError: on a bad ``norm`` or ``temperature``, non-finite ``x``, labels out of
            range, or soft labels that are not probability rows.
        TypeError: on an integer ``x`` or non-integer labels.
    """
    _checks.check_temperature(temperature)
    x = _checks.check_images(x, rank=range(2, 6))
    y_arr = np.asarray(y)
    n_classes = int(model(tf.convert_to_tensor(x[:1])).shape[-1])
    if y_arr.ndim == 2 and y_arr.shape[1] != 1:
        y_arr = _checks.check_soft_labels(y_arr, n_classes=n_classes, n_examples=len(x))
    else:
        y_arr = _checks.check_labels(y_arr, n_classes=n_classes, n_examples=len(x))
    return _penalty(model, x, y_arr, kind="double_backprop", norm=norm, training=training,
                    temperature=temperature)


def certainty_sensitivity(model, x, *, norm: str = "l2", training: bool = False,
                          temperature: float = 1.0) -> tf.Tensor:
    """The certainty-sensitivity penalty at λ = 1: ``l2_loss(∇_x mean_n CE(1/K, model(x_n)))``.

    Ross & Doshi-Velez (2018), §3, "Grad Reg (1/K)": the sensitivity of the model's
    certainty, i.e. the gradient of ``-(1/(K·B)) Σ_n Σ_k log p_nk``; scaling as in the
    module docstring.

    Args:
        model: callable ``x -> logits``.
        x: float image batch.
        norm: ``"l2"`` (the paper) or ``"l1"``.
        training: run the model in training mode.
        temperature: softmax temperature.

    Returns:
        Scalar tensor.

    Raises:
        ValueError: on a bad ``norm`` or ``temperature``, or non-finite ``x``.
        TypeError: on an integer ``x``.
    """
    return _penalty(model, x, None, kind="certainty", norm=norm, training=training,
                    temperature=temperature)
