"""Gradient-sign attacks: FGSM (Goodfellow et al. 2015) and (iterated) targeted TGSM.

These are the attacks of Ross & Doshi-Velez (AAAI 2018, §Experiments), with the
semantics of the original code (SETUP.md §5):

* the gradient is that of the **batch-mean** softmax cross-entropy of each chunk of
  ``batch_size`` examples (the original's ``batch_input_gradients(n=1000)``), taken in
  float32 on the logits of ``model(x, training=False)``;
* ``tf.sign(0) == 0``: a pixel whose float32 gradient is exactly zero is not moved. Because
  the gradient of the chunk mean is each example's gradient divided by the chunk size,
  ``batch_size`` changes which tiny gradients underflow to zero (this is why the paper's
  distilled model is left unperturbed by FGSM); keep the default 1000 to reproduce the paper;
* the result is clipped to ``bounds`` after every step and never projected onto an eps ball.

Beyond the paper, ``fgsm(..., loss="margin")`` takes its one step up the Carlini-Wagner logit
margin instead (:mod:`gradreg_tf.gradients`), which sees through a saturated softmax.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gradreg_tf import _checks
from gradreg_tf import gradients as G
from gradreg_tf.types import Bounds, ModelFn, TensorLike

__all__ = ["fgsm", "fgsm_signs", "predict_labels", "tgsm"]


def _chunk_loss(loss: G.Loss):
    """The scalar each sign step climbs, per chunk: the original's batch-mean cross-entropy
    (tie-split predictions for ``labels < 0``) or the summed per-example margin."""
    if loss is G.Loss.CE:
        return G.mean_xent
    return lambda logits, labels: tf.reduce_sum(G.margin(logits, labels))


def _sign_steps_builder(loss: G.Loss):
    chunk_loss = _chunk_loss(loss)

    def build(get_model, spec):
        scalar = tf.TensorSpec((), spec.dtype)

        @tf.function(
            input_signature=[spec, tf.TensorSpec((None,), tf.int32), scalar, scalar, scalar,
                             tf.TensorSpec((), tf.int32)],
            reduce_retracing=True,
        )
        def sign_steps(x, labels, step, lower, upper, n_steps):
            def body(i, x_adv):
                x32 = tf.cast(x_adv, tf.float32)
                with tf.GradientTape() as tape:
                    tape.watch(x32)
                    logits = tf.cast(G.call_logits(get_model(), x32), tf.float32)
                    value = chunk_loss(logits, labels)
                grad = tape.gradient(value, x32)
                moved = x_adv + step * tf.cast(tf.sign(grad), x_adv.dtype)
                return i + 1, tf.clip_by_value(moved, lower, upper)

            _, x_adv = tf.while_loop(lambda i, _: i < n_steps, body, (tf.constant(0), x))
            return x_adv

        return sign_steps

    return build


# cache names: "sign_steps" is the paper's cross-entropy attack
_SIGN_STEPS = {G.Loss.CE: ("sign_steps", _sign_steps_builder(G.Loss.CE)),
               G.Loss.MARGIN: ("sign_steps_margin", _sign_steps_builder(G.Loss.MARGIN))}


def _sign_steps(model, x: tf.Tensor, labels: tf.Tensor, step: float, bounds: Bounds,
                n_steps: int, loss: G.Loss) -> tf.Tensor:
    """``n_steps`` times ``x <- clip(x + step * sign(∇x chunk loss), bounds)`` on one chunk.

    The update is done in ``x.dtype``; ``step`` is ``+eps`` (FGSM) or ``-eps`` (TGSM).
    """
    name, builder = _SIGN_STEPS[loss]
    fn = G.compiled(model, name, x.shape[1:], x.dtype, builder)
    dt = x.dtype
    return fn(x, labels, tf.constant(step, dt), tf.constant(bounds.lower, dt),
              tf.constant(bounds.upper, dt), tf.constant(n_steps, tf.int32))


def _sign_attack(model, arr: np.ndarray, labels: np.ndarray, step: float, bounds: Bounds,
                 steps: int, batch_size: int, loss: G.Loss = G.Loss.CE) -> tf.Tensor:
    out = []
    for part in G.chunks(len(arr), batch_size):
        x = tf.convert_to_tensor(arr[part])
        out.append(_sign_steps(model, x, tf.constant(labels[part], tf.int32), step, bounds, steps,
                               loss))
    return tf.concat(out, axis=0) if len(out) > 1 else out[0]


def predict_labels(model, x: TensorLike, *, batch_size: int = 1000) -> np.ndarray:
    """Argmax predictions of ``model(x, training=False)``, in chunks of ``batch_size``."""
    arr = np.asarray(x)
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    preds = [np.argmax(G.logits(model, tf.convert_to_tensor(arr[part])).numpy(), axis=-1)
             for part in G.chunks(len(arr), batch_size)]
    return np.concatenate(preds).astype(np.int64)


def _fgsm_labels(model, arr: np.ndarray, y) -> np.ndarray:
    k = G.n_classes(model, arr)  # checks the model returns logits, with or without y
    if y is None:
        return np.full(len(arr), -1, np.int64)
    return _checks.check_labels(y, n_classes=k, n_examples=len(arr))


def fgsm(model: ModelFn, x: TensorLike, eps: float, *, bounds, y: TensorLike | None = None,
         loss: str = "ce", batch_size: int = 1000) -> tf.Tensor:
    """Fast gradient sign method, ``clip(x + eps * sign(∇x loss), bounds)``.

    Goodfellow, Shlens & Szegedy (ICLR 2015); with ``loss="ce"`` (default) the untargeted
    attack of Ross & Doshi-Velez (AAAI 2018, §Experiments), exactly as the original (SETUP.md
    §5): the cross-entropy is the softmax cross-entropy of the logits with labels ``y``
    averaged over each chunk of ``batch_size`` examples, its float32 input gradient is taken
    with the model in inference mode (``training=False``), and pixels whose gradient is exactly
    zero are not moved.

    ``loss="margin"`` is a variant beyond the paper: one sign step up the Carlini-Wagner margin
    ``max_{j≠y} z_j - z_y`` (Carlini & Wagner 2017) of the logits, whose gradient does not
    vanish when the softmax saturates, so it moves examples the cross-entropy gradient leaves
    unperturbed (the distilled model, Athalye, Carlini & Wagner 2018, §3.1).

    Scaling: with ``"ce"`` each example's gradient is divided by its chunk's size before the
    sign is taken, so ``batch_size`` decides which tiny gradients underflow to exactly zero
    (and stay unperturbed); the default 1000 is the original's
    ``batch_input_gradients(n=1000)``. With ``"margin"`` the per-example margins are summed,
    so each example's gradient is its own and ``batch_size`` changes nothing.

    Args:
        model: a Keras model (called with ``training=False``) or any callable mapping a float32
            batch to logits ``(batch, classes)``.
        x: input batch (numpy array or tensor) of any float dtype and any size, within ``bounds``.
        eps: perturbation size (L-infinity) in the units of ``x``; ``eps=0`` returns ``x``.
        bounds: ``(lower, upper)`` pixel range of the dataset; the result is clipped to it.
        y: integer labels ``(batch,)``; ``None`` uses the model's own argmax predictions
            (avoids label leaking; for ``"ce"`` ties are split evenly as in the original, for
            ``"margin"`` the first maximum is the label).
        loss: ``"ce"`` (the paper's) or ``"margin"``.
        batch_size: examples per gradient computation (see Scaling).

    Returns:
        ``tf.Tensor`` of adversarial examples, same shape and float dtype as ``x``. The
        gradient is computed on float32 inputs; the update itself is done in ``x``'s dtype.

    Raises:
        ValueError: negative or non-finite ``eps``, reversed bounds, ``x`` outside ``bounds``,
            wrong rank/shape for the model, labels out of range or of the wrong length,
            ``batch_size`` < 1, unknown ``loss``, a model that does not return logits of at
            least 2 classes (one output, or probabilities).
        TypeError: integer ``x`` or non-integer labels.
    """
    bounds = _checks.as_bounds(bounds)
    eps = _checks.check_eps(eps)
    loss = G.as_loss(loss)
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    arr = G.check_model_input(model, x, bounds=bounds)
    labels = _fgsm_labels(model, arr, y)
    return _sign_attack(model, arr, labels, eps, bounds, 1, batch_size, loss)


def fgsm_signs(model: ModelFn, x: TensorLike, *, bounds, y: TensorLike | None = None,
               loss: str = "ce", batch_size: int = 1000) -> np.ndarray:
    """The signs :func:`fgsm` steps along: ``fgsm(x, eps) == clip(x + eps * signs, bounds)``.

    One gradient computation serves every ``eps`` (how the paper's grids and the robustness
    audit sweep eps). Gradients, labels and scaling exactly as :func:`fgsm`.

    Args:
        model: a Keras model or callable returning logits.
        x: input batch within ``bounds``.
        bounds: ``(lower, upper)`` range of ``x`` (validated only).
        y: integer labels, or ``None`` for the model's predictions.
        loss: ``"ce"`` or ``"margin"``.
        batch_size: examples per gradient computation.

    Returns:
        float array of -1/0/+1 with the shape and dtype of ``x`` (0 where the float32 gradient
        is exactly zero).

    Raises:
        ValueError, TypeError: as :func:`fgsm`.
    """
    bounds = _checks.as_bounds(bounds)
    loss = G.as_loss(loss)
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    arr = G.check_model_input(model, x, bounds=bounds)
    labels = _fgsm_labels(model, arr, y)
    out = np.empty_like(arr)
    for part in G.chunks(len(arr), batch_size):
        xs = tf.convert_to_tensor(arr[part])
        ys = tf.constant(labels[part], tf.int32)
        if loss is G.Loss.CE:
            grad, _ = G.xent_gradient(model, xs, ys)
        else:
            grad, _, _ = G.loss_gradient(model, xs, ys, loss=loss)
        out[part] = np.sign(grad.numpy())
    return out


def tgsm(model: ModelFn, x: TensorLike, eps: float, *, bounds, y_target: TensorLike | None = None,
         y: TensorLike | None = None, steps: int = 1, batch_size: int = 1000) -> tf.Tensor:
    """Targeted gradient sign method, iterated: ``x <- clip(x - eps * sign(∇x CE(y_target)))``.

    The targeted attack of Ross & Doshi-Velez (AAAI 2018, §Experiments; after Kurakin et al.
    2016), as the original: ``steps=1`` is the TGSM of the transfer grids (SETUP.md §5) and
    ``steps > 1`` the iterated version of the TGSM figure (``gradient_sign_attack``,
    neural_network.py:411-425, eps=0.1, 10-25 steps): each step moves every pixel by ``eps``
    against the sign of the gradient and clips to ``bounds``; there is **no projection** onto
    an eps ball, so ``||x_adv - x||_inf <= steps * eps``. Gradients as in :func:`fgsm`
    (batch-mean cross-entropy per chunk, float32, ``training=False``, zero gradient = no move).

    Scaling: as :func:`fgsm`, each example's gradient is divided by its chunk's size.

    Args:
        model: a Keras model or callable returning logits.
        x: input batch within ``bounds``, any float dtype, any size.
        eps: step size (L-infinity) in the units of ``x``.
        bounds: ``(lower, upper)`` pixel range; every step is clipped to it.
        y_target: integer target classes; ``None`` uses ``(y + 1) mod K``.
        y: labels used only for the default target; ``None`` uses the model's predictions on
            ``x``. Passing both ``y`` and ``y_target`` is an error.
        steps: number of sign steps (>= 1).
        batch_size: examples per gradient computation (see Scaling).

    Returns:
        ``tf.Tensor`` of adversarial examples, same shape and float dtype as ``x``.

    Raises:
        ValueError: as :func:`fgsm`, plus ``steps`` < 1 or both ``y`` and ``y_target`` given.
        TypeError: integer ``x`` or non-integer labels.
    """
    bounds = _checks.as_bounds(bounds)
    eps = _checks.check_eps(eps)
    steps = G.check_positive_int(steps, name="steps")
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    arr = G.check_model_input(model, x, bounds=bounds)
    k = G.n_classes(model, arr)
    if y_target is not None and y is not None:
        raise ValueError("pass either y_target or y (used for the default target (y+1) mod K), "
                         "received both.")
    if y_target is not None:
        targets = _checks.check_labels(y_target, n_classes=k, n_examples=len(arr), name="y_target")
    else:
        if y is not None:
            base = _checks.check_labels(y, n_classes=k, n_examples=len(arr))
        else:
            base = predict_labels(model, arr, batch_size=batch_size)
        targets = (base + 1) % k
    return _sign_attack(model, arr, targets, -eps, bounds, steps, batch_size)
