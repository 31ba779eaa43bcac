"""Input gradients shared by the attacks and the evaluation grids.

Every function here is a ``tf.function`` traced once per (model, input shape, input dtype)
with a batch-polymorphic input signature, cached in a :class:`weakref.WeakKeyDictionary`
keyed by the model, so repeated attack calls with new ``eps`` values, batch sizes or
targets never retrace. The traced closures hold the model only through a weak
reference (values of a ``WeakKeyDictionary`` must not refer to their key).

Conventions (SETUP.md §3, §5): the model is called as ``model(x, training=False)``
(batch norm in inference mode, dropout off) on float32 inputs and must return
**logits**; gradients are float32.
"""

from __future__ import annotations

import weakref
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from gradreg_tf import _checks
from gradreg_tf.types import Bounds

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_UNCACHEABLE: dict = {}  # models that refuse weak references (rare); keyed by id


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


def _build_sign_steps(get_model, spec):
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
                logits = tf.cast(call_logits(get_model(), x32), tf.float32)
                loss = mean_xent(logits, labels)
            grad = tape.gradient(loss, x32)
            moved = x_adv + step * tf.cast(tf.sign(grad), x_adv.dtype)
            return i + 1, tf.clip_by_value(moved, lower, upper)

        _, x_adv = tf.while_loop(lambda i, _: i < n_steps, body, (tf.constant(0), x))
        return x_adv

    return sign_steps


def sign_steps(model, x: tf.Tensor, labels: tf.Tensor, step: float, bounds: Bounds,
               n_steps: int) -> tf.Tensor:
    """``n_steps`` times ``x <- clip(x + step * sign(∇x mean CE(labels)), bounds)`` on one chunk.

    The update is done in ``x.dtype``; ``step`` is ``+eps`` (FGSM) or ``-eps`` (TGSM).
    """
    fn = compiled(model, "sign_steps", x.shape[1:], x.dtype, _build_sign_steps)
    dt = x.dtype
    return fn(x, labels, tf.constant(step, dt), tf.constant(bounds.lower, dt),
              tf.constant(bounds.upper, dt), tf.constant(n_steps, tf.int32))


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
    """Number of classes: the model's static output width, else a forward pass on ``x[:1]``."""
    shape = None
    try:
        shape = tuple(model.outputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        shape = None
    if not shape or shape[-1] is None:
        shape = tuple(logits(model, tf.convert_to_tensor(x[:1])).shape)
    if len(shape) != 2:
        raise ValueError(f"the model must return logits of shape (batch, classes), "
                         f"received output shape {shape}.")
    return int(shape[-1])


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


def as_output(x_adv: np.ndarray | tf.Tensor, like: np.ndarray) -> tf.Tensor:
    """The attack result as a ``tf.Tensor`` of the input's dtype."""
    return tf.convert_to_tensor(x_adv, dtype=like.dtype)
