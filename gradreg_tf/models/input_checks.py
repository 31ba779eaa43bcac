"""What :class:`~gradreg_tf.GradRegClassifier` checks about its network and inputs.

Precision (float32/float64 only), the network's output (logits, not a final softmax), a probe
batch to run it on, and the labels of one batch as the training step traces them, with
TensorFlow's runtime label errors on ``tf.data`` input turned into ``ValueError`` s.
"""

from __future__ import annotations

import contextlib
import re

import keras
import numpy as np
import tensorflow as tf

from gradreg_tf.models.keras_compat import sublayers


def check_precision(model, network) -> None:
    """Refuses mixed or half precision on the classifier or any layer of its network.

    Raises:
        ValueError: a layer's dtype policy computes in float16/bfloat16 or differs from its
            variables' dtype (the message names the policy and the layer).
    """
    for layer in (model, *sublayers(network)):
        policy = layer.dtype_policy
        if policy.compute_dtype != policy.variable_dtype or policy.compute_dtype in (
                "float16", "bfloat16"):
            raise ValueError(
                f"GradRegClassifier needs float32 (or float64) computation, received dtype "
                f"policy {policy.name!r} on {layer.name!r}: mixed and half precision are not "
                "supported (the penalty's second derivatives and λ up to 1e5 overflow float16, "
                "whose maximum is 65504). Build the network under "
                "keras.mixed_precision.set_global_policy('float32')."
            )


def static_input_shape(network):
    """The network's declared input shape (batch axis included), or None when it has none
    (a subclassed model not yet built on a functional input)."""
    try:
        return tuple(network.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def ends_in_softmax(network) -> bool:
    """Whether a functional or sequential network's last layer (or nested model's) applies a
    softmax; False for subclassed networks, whose layer order says nothing."""
    if static_input_shape(network) is None:  # subclassed: layer order says nothing
        return False
    layers = getattr(network, "layers", None) or ()
    if not layers:
        return False
    last = layers[-1]
    if isinstance(last, keras.Model):
        return ends_in_softmax(last)
    activation = getattr(last, "activation", None)
    return isinstance(last, keras.layers.Softmax) or activation is keras.activations.softmax \
        or getattr(activation, "__name__", None) == "softmax"


def probe_batch(network, x):
    """Up to 4 inputs to run the network on: ``x``'s own (arrays) or random ones of its shape."""
    if hasattr(x, "shape") and not isinstance(x, tf.data.Dataset):
        return np.asarray(x[:4])
    shape = static_input_shape(network)
    if (shape is None or None in shape[1:]) and isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        spec = spec[0] if isinstance(spec, tuple) else spec
        shape = tuple(spec.shape) if isinstance(spec, tf.TensorSpec) else None
    if shape is None or len(shape) < 2 or None in shape[1:]:
        return None
    rng = np.random.default_rng(0)  # not the global RNG: training stays reproducible
    return rng.normal(size=(4,) + tuple(shape[1:])).astype(np.float32)


_LABEL_RANGE = re.compile(r"Received a label value of (-?\d+) which is outside the valid range "
                          r"of \[0, (\d+)\)")


@contextlib.contextmanager
def label_errors_as_value_error():
    """TensorFlow's runtime label errors on tf.data input as ValueErrors (range, rank, rows)."""
    try:
        yield
    except tf.errors.InvalidArgumentError as err:
        for message in _RUNTIME_LABEL_ERRORS:
            if message in err.message:
                raise ValueError(f"{message} (labels of tf.data input are checked as the step "
                                 "runs).") from None
        found = _LABEL_RANGE.search(err.message)
        if found is None:
            raise
        raise ValueError(
            f"y must be in [0, {int(found[2]) - 1}], received label {found[1]} in a batch "
            "(labels of tf.data input are checked by TensorFlow as the step runs)."
        ) from None


SOFT_LABELS_ERROR = ("y must hold probability rows (finite entries >= 0 summing to 1 within "
                     "1e-3), received a batch of soft labels that does not")
LABEL_RANK_ERROR = ("y must hold integer labels of shape (batch,) or float probabilities of "
                    "shape (batch, classes), received a batch of another rank")
_RUNTIME_LABEL_ERRORS = (SOFT_LABELS_ERROR, LABEL_RANK_ERROR)


def _asserted(y, condition, message):
    with tf.control_dependencies([tf.debugging.Assert(condition, [message])]):
        return tf.identity(y)


def checked_labels(y) -> tf.Tensor:
    """Labels of one batch as the step traces it: integer ``(B,)`` or soft ``(B, K)``.

    Integer labels of another rank and float labels of rank 1 (which ``tf.cast`` would
    truncate) are refused while tracing when the rank is static, and as the step runs when
    Keras has relaxed it (a retrace after another label shape); soft labels get a runtime check
    that each row is a probability vector, the rule :func:`gradreg_tf._checks.check_soft_labels`
    applies to arrays. Runtime checks are graph asserts: under XLA, which drops asserts, they
    are no-ops.
    """
    y = tf.convert_to_tensor(y)
    rank = y.shape.rank
    described = f"dtype {y.dtype.name} and shape {y.shape}"
    if y.dtype.is_integer:
        if rank is None:  # without a static rank, a (B, 1) column would broadcast silently
            return tf.reshape(_asserted(y, tf.equal(tf.rank(y), 1), LABEL_RANK_ERROR), [-1])
        if rank != 1:
            raise ValueError(f"{LABEL_RANK_ERROR}: {described}"
                             + (" (flatten integer labels to (batch,))." if rank == 2 else "."))
        return y
    if not y.dtype.is_floating:
        raise TypeError(f"y must hold integer labels or float probabilities, received {described}.")
    if rank == 1:
        raise TypeError(f"y must hold integer labels (batch,) or probabilities (batch, classes), "
                        f"received {described}: float class labels would be truncated; cast "
                        "them to int.")
    if rank is None:
        y = _asserted(y, tf.equal(tf.rank(y), 2), LABEL_RANK_ERROR)
        y = tf.reshape(y, tf.stack([tf.shape(y)[0], -1]))  # a static rank for the loss
    elif rank != 2:
        raise ValueError(f"{LABEL_RANK_ERROR}: {described}.")
    y32 = tf.cast(y, tf.float32)
    ok = tf.reduce_all(tf.math.is_finite(y32)) & tf.reduce_all(y32 >= 0) & tf.reduce_all(
        tf.abs(tf.reduce_sum(y32, axis=-1) - 1.0) <= 1e-3)
    return _asserted(y, ok, SOFT_LABELS_ERROR)


