"""Input gradients: the losses attacks climb, their ∂/∂x, and the cached ``tf.function``s.

Every traced function is built once per (model, name, input shape, input dtype) with a
batch-polymorphic input signature by :func:`compiled`, and cached in a
:class:`weakref.WeakKeyDictionary` keyed by the model, so repeated calls with new ``eps``
values, batch sizes or targets never retrace. The traced closures hold the model only through
a weak reference (values of a ``WeakKeyDictionary`` must not refer to their key).

Conventions (SETUP.md §3, §5): the model is called as ``model(x, training=False)`` (batch norm
in inference mode, dropout off) on float32 inputs and must return **logits**; losses and
gradients are float32. Two losses (:class:`Loss`):

* ``"ce"``: softmax cross-entropy. Its gradient ``(softmax(z) - onehot(y)) ∂z/∂x`` is exactly
  zero in float32 once the softmax saturates (a distilled model at T=1);
* ``"margin"``: the Carlini-Wagner logit margin ``max_{j≠y} z_j - z_y`` (Carlini & Wagner,
  IEEE S&P 2017, their f_6 without the confidence clamp), a difference of logits whose
  gradient does not vanish when the softmax saturates. It is positive iff the model
  misclassifies ``y`` (up to ties).

Two reductions over a batch, and they matter only through float32 underflow:
:func:`xent_gradient` is the original's gradient of the **batch mean** (each example's gradient
divided by the batch size, neural_network.py:230-247), :func:`loss_gradient` that of the
**sum** (each example's gradient is its own).
"""

from __future__ import annotations

import enum
import weakref
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from gradreg_tf import _checks

__all__ = ["Loss", "as_loss", "as_output", "call_logits", "check_model_input",
           "check_positive_int", "chunks", "compiled", "logits", "loss_gradient", "margin",
           "mean_xent", "n_classes", "per_example_loss", "xent", "xent_gradient"]

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_UNCACHEABLE: dict = {}  # models that refuse weak references (rare); keyed by id


class Loss(str, enum.Enum):
    """Per-example losses an attack climbs (see the module docstring)."""

    CE = "ce"
    MARGIN = "margin"


def as_loss(loss) -> Loss:
    """``loss`` as a :class:`Loss`.

    Raises:
        ValueError: if ``loss`` is not one of ``"ce"``, ``"margin"``.
    """
    return _checks.as_choice(loss, Loss, name="loss")


def call_logits(model, x: tf.Tensor) -> tf.Tensor:
    """``model(x, training=False)`` for Keras layers/models, ``model(x)`` for plain callables."""
    if isinstance(model, keras.layers.Layer):
        return model(x, training=False)
    return model(x)


def _deref(ref):
    model = ref()
    if model is None:  # pragma: no cover - only if a traced function outlives its model
        raise RuntimeError("the model of this cached attack function was garbage-collected.")
    return model


def compiled(model, name: str, feature_shape: tuple, dtype, builder: Callable) -> Callable:
    """Returns the cached ``tf.function`` ``name`` for ``model`` and this input spec.

    ``builder(get_model, spec)`` must return the ``tf.function``; ``get_model()`` returns
    the model (held weakly) and ``spec`` is the batch-polymorphic ``tf.TensorSpec`` of x.
    """
    key = (name, tuple(feature_shape), tf.as_dtype(dtype).name)
    try:
        per_model = _CACHE.get(model)
        if per_model is None:
            per_model = {}
            _CACHE[model] = per_model
        ref = weakref.ref(model)
    except TypeError:  # not weak-referenceable: cache by id for the process lifetime
        per_model = _UNCACHEABLE.setdefault(id(model), {})
        ref = lambda: model  # noqa: E731
    fn = per_model.get(key)
    if fn is None:
        spec = tf.TensorSpec((None,) + tuple(feature_shape), tf.as_dtype(dtype))
        fn = builder(lambda: _deref(ref), spec)
        per_model[key] = fn
    return fn


def mean_xent(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Batch-mean softmax cross-entropy; ``labels < 0`` means "the model's own prediction".

    Dense ``softmax_cross_entropy_with_logits`` on one-hot labels, as the original
    (neural_network.py:83-84, 138-142); predicted labels are the one-hot argmax with ties
    split evenly, as the original's ``adversarial_examples`` with ``y=None``.
    """
    n_classes = tf.shape(logits)[-1]
    hits = tf.cast(tf.equal(logits, tf.reduce_max(logits, axis=-1, keepdims=True)), logits.dtype)
    predicted = hits / tf.reduce_sum(hits, axis=-1, keepdims=True)
    given = tf.one_hot(tf.maximum(labels, 0), n_classes, dtype=logits.dtype)
    target = tf.stop_gradient(tf.where((labels < 0)[:, None], predicted, given))
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=logits))


def _resolve(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """``labels``, with ``labels < 0`` replaced by the argmax of ``logits`` (first maximum)."""
    labels = tf.cast(labels, tf.int32)
    return tf.where(labels < 0, tf.argmax(logits, axis=-1, output_type=tf.int32), labels)


def xent(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Per-example softmax cross-entropy ``(batch,)``; ``labels < 0``: the argmax prediction."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=_resolve(logits, labels),
                                                          logits=logits)


def margin(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Per-example Carlini-Wagner margin ``max_{j≠y} z_j - z_y`` ``(batch,)``.

    ``labels < 0`` means the argmax prediction. Positive iff another class beats ``y``.
    """
    labels = _resolve(logits, labels)
    own = tf.one_hot(labels, tf.shape(logits)[-1], on_value=True, off_value=False)
    z_y = tf.reduce_max(tf.where(own, logits, -np.inf), axis=-1)
    z_other = tf.reduce_max(tf.where(own, -np.inf, logits), axis=-1)
    return z_other - z_y


_PER_EXAMPLE = {Loss.CE: xent, Loss.MARGIN: margin}


def per_example_loss(logits: tf.Tensor, labels: tf.Tensor, loss: Loss | str) -> tf.Tensor:
    """The per-example :class:`Loss` ``loss`` of ``logits`` ``(batch,)`` (traceable)."""
    return _PER_EXAMPLE[as_loss(loss)](logits, labels)


def _build_xent_gradient(get_model, spec):
    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32)], reduce_retracing=True)
    def xent_gradient(x, labels):
        x32 = tf.cast(x, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x32)
            logits = tf.cast(call_logits(get_model(), x32), tf.float32)
            loss = mean_xent(logits, labels)
        return tape.gradient(loss, x32), logits

    return xent_gradient


def xent_gradient(model, x: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Gradient of the batch-mean cross-entropy w.r.t. ``x`` (float32) and the logits.

    Scaling: the loss is the MEAN over the rows of ``x``, so each example's gradient is
    its own cross-entropy gradient divided by ``len(x)`` (the original's
    ``batch_input_gradients`` with chunks of 1000, SETUP.md §5).
    """
    fn = compiled(model, "xent_gradient", x.shape[1:], x.dtype, _build_xent_gradient)
    return fn(x, labels)


def _loss_gradient_builder(loss: Loss):
    def build(get_model, spec):
        @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32)],
                     reduce_retracing=True)
        def loss_gradient(x, labels):
            x32 = tf.cast(x, tf.float32)
            with tf.GradientTape() as tape:
                tape.watch(x32)
                logits = tf.cast(call_logits(get_model(), x32), tf.float32)
                values = per_example_loss(logits, labels, loss)
                total = tf.reduce_sum(values)
            return tape.gradient(total, x32), values, logits

        return loss_gradient

    return build


_LOSS_GRADIENT_BUILDERS = {loss: _loss_gradient_builder(loss) for loss in Loss}


def loss_gradient(model, x: tf.Tensor, labels: tf.Tensor, *,
                  loss: Loss | str = Loss.CE) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Gradient of the SUMMED per-example ``loss`` w.r.t. ``x``, the losses and the logits.

    Scaling: the losses are summed, so each example's gradient is its own (no ``1/len(x)``
    factor, unlike :func:`xent_gradient`); examples do not interact in inference mode.

    Args:
        model: Keras model or callable returning logits.
        x: float input batch (tensor).
        labels: int32 ``(batch,)``; ``-1`` means the model's argmax prediction.
        loss: ``"ce"`` or ``"margin"`` (:class:`Loss`).

    Returns:
        ``(gradient, losses, logits)``: float32 ``x``-shaped, ``(batch,)`` and ``(batch, K)``.

    Raises:
        ValueError: unknown ``loss``.
    """
    loss = as_loss(loss)
    fn = compiled(model, f"loss_gradient_{loss.value}", x.shape[1:], x.dtype,
                  _LOSS_GRADIENT_BUILDERS[loss])
    return fn(x, labels)


def _build_predict(get_model, spec):
    @tf.function(input_signature=[spec], reduce_retracing=True)
    def predict(x):
        return tf.cast(call_logits(get_model(), tf.cast(x, tf.float32)), tf.float32)

    return predict


def logits(model, x: tf.Tensor) -> tf.Tensor:
    """Float32 logits of ``model(x, training=False)`` through the cached ``tf.function``."""
    fn = compiled(model, "predict", x.shape[1:], x.dtype, _build_predict)
    return fn(x)


def n_classes(model, x: np.ndarray) -> int:
    """Number of classes, after checking that ``model`` returns logits.

    Runs the model (through the cached predict function) on up to 4 examples of ``x`` and
    checks the values with :func:`gradreg_tf._checks.check_logits`: a single-logit model or
    one ending in softmax would make the sign attacks return their input unchanged or climb a
    much flatter function, silently.

    Raises:
        ValueError: if the output is not ``(batch, K)`` with K >= 2, or looks like probabilities.
    """
    _checks.check_logits_model(model)  # the static output shape, when the model has one
    return _checks.check_logits(logits(model, tf.convert_to_tensor(x[:4])).numpy())


def check_model_input(model, x, *, bounds, name: str = "x") -> np.ndarray:
    """Validates ``x`` against ``bounds`` and, for Keras models, the model's input shape.

    Raises:
        TypeError: non-float ``x``.
        ValueError: wrong rank or shape, empty batch, non-finite values, values outside bounds.
    """
    expected = None
    try:
        expected = tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        expected = None
    rank = len(expected) if expected else (2, 3, 4, 5)
    arr = _checks.check_images(x, name=name, rank=rank, bounds=bounds)
    if expected is not None:
        if any(e is not None and e != s for e, s in zip(expected[1:], arr.shape[1:])):
            raise ValueError(
                f"{name} must have shape (batch, {', '.join(str(e) for e in expected[1:])}) "
                f"for this model, received shape {arr.shape}."
            )
    return arr


def chunks(n: int, batch_size: int):
    """Yields ``slice`` objects covering ``range(n)`` in chunks of ``batch_size``."""
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


def check_positive_int(value, *, name: str) -> int:
    """Checks an integer option >= 1 (a batch size or a number of steps).

    Raises:
        ValueError: if ``value`` is not an integer >= 1.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, received {value!r}.")
    return int(value)


def check_positive_ints(**values) -> tuple[int, ...]:
    """:func:`check_positive_int` on each named value, in order (``steps=steps, ...``).

    Returns:
        The checked values, in the order given.

    Raises:
        ValueError: naming the first value that is not an integer >= 1.
    """
    return tuple(check_positive_int(v, name=k) for k, v in values.items())


def as_output(x_adv: np.ndarray | tf.Tensor, like: np.ndarray) -> tf.Tensor:
    """The attack result as a ``tf.Tensor`` of the input's dtype."""
    return tf.convert_to_tensor(x_adv, dtype=like.dtype)

