"""Trained networks for code that has never heard of gradreg_tf: a plain ``.keras`` file and a
TensorFlow SavedModel.

A :class:`~gradreg_tf.GradRegClassifier` is a training wrapper: its objective (penalty, λ,
adversarial training, temperature) matters only while training, and its prediction is the wrapped
network's logits at temperature 1. Both exports therefore write the wrapped network only:

* :func:`to_keras`: ``keras.saving.load_model(path)`` then works without this package, as long
  as every layer is one of Keras' own (true of :func:`gradreg_tf.models.mnist_cnn`; the SVHN
  network's local contrast normalization is a gradreg_tf layer, so it is refused with a pointer
  to the SavedModel);
* :func:`to_saved_model`: a TensorFlow SavedModel whose ``serve`` signature (also
  ``serving_default``) maps a float32 batch of images within the dataset's bounds to logits; it
  loads with ``tf.saved_model.load`` (or any TF Serving runtime) and refuses images outside the
  bounds with an ``InvalidArgumentError`` naming them, instead of answering for inputs the model
  never saw. Built on Keras' public ``keras.export.ExportArchive``.

Both cost one pass over the weights (tens of MB for the paper's networks); writes are atomic.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import keras
import tensorflow as tf

from gradreg_tf import _checks, cache

SIGNATURE = "serve"
"""Name of the SavedModel's endpoint (Keras' own default; ``serving_default`` is an alias)."""


def network_of(model) -> keras.Model:
    """The plain network that computes ``model``'s logits.

    Args:
        model: a :class:`~gradreg_tf.GradRegClassifier` (its wrapped network is returned) or a
            built Keras model returning logits (returned as is).

    Returns:
        A built ``keras.Model``.

    Raises:
        TypeError: if ``model`` is not a Keras model.
        ValueError: if it is not built (its input shape is unknown).
    """
    net = getattr(model, "network", model)
    if not isinstance(net, keras.Model):
        raise TypeError(f"model must be a GradRegClassifier or a keras.Model, received "
                        f"{type(model).__name__}.")
    if not net.built or not net.inputs:
        raise ValueError(f"the network {net.name!r} is not built: call it on a batch (or train "
                         "it) before exporting, so that its input shape is known.")
    return net


def _foreign_layers(net: keras.Model) -> list[str]:
    """Layers (recursively) whose class is not Keras' own, as ``"name (module.Class)"``."""
    out = []
    for layer in net.layers:
        cls = type(layer)
        if not cls.__module__.startswith("keras."):
            out.append(f"{layer.name} ({cls.__module__}.{cls.__name__})")
        elif isinstance(layer, keras.Model):
            out += _foreign_layers(layer)
    return out


def to_keras(model, path) -> pathlib.Path:
    """Writes ``model``'s network as a ``.keras`` file that loads without gradreg_tf.

    Args:
        model: a :class:`~gradreg_tf.GradRegClassifier` or a built Keras model.
        path: the file to write (must end in ``.keras``).

    Returns:
        The path written.

    Raises:
        ValueError: if ``path`` does not end in ``.keras``, or the network holds a layer that is
            not Keras' own (it would need gradreg_tf to load: use :func:`to_saved_model`).
    """
    path = pathlib.Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"path must end in '.keras', received {str(path)!r}.")
    net = network_of(model)
    foreign = _foreign_layers(net)
    if foreign:
        raise ValueError(f"the network {net.name!r} holds layers that are not Keras' own, so the "
                         f"file would not load without gradreg_tf: {', '.join(foreign)}. Use "
                         "gradreg_tf.export.to_saved_model instead.")
    return cache.atomic_write(path, lambda tmp: net.save(tmp))


def to_saved_model(model, path, *, bounds) -> pathlib.Path:
    """Writes ``model``'s network as a TensorFlow SavedModel: images in ``bounds`` -> logits.

    The ``serve`` endpoint (and ``serving_default`` signature) takes a float32 tensor
    ``[batch, height, width, channels]`` of the network's input shape and returns float32 logits
    ``[batch, n_classes]`` (inference mode: dropout off, batch-norm moving statistics).

    Args:
        model: a :class:`~gradreg_tf.GradRegClassifier` or a built Keras model.
        path: the directory to write (replaced atomically if it exists).
        bounds: ``(lower, upper)`` pixel bounds of the dataset (e.g. ``dataset.bounds``); the
            endpoint raises ``InvalidArgumentError`` on an image outside them or non-finite.

    Returns:
        The directory written.

    Raises:
        ValueError: if ``bounds`` is not a finite pair with lower < upper.
    """
    lower, upper = (float(b) for b in _checks.as_bounds(bounds))
    net = network_of(model)
    shape = tuple(net.inputs[0].shape)
    low = tf.constant(lower, tf.float32)
    high = tf.constant(upper, tf.float32)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="images")])
    def serve(images):
        message = f"images must be finite and within the dataset bounds [{lower}, {upper}]"
        checks = [tf.debugging.assert_all_finite(images, message),
                  tf.debugging.assert_greater_equal(images, low, message=message),
                  tf.debugging.assert_less_equal(images, high, message=message)]
        with tf.control_dependencies(checks):
            return net(tf.identity(images), training=False)

    archive = keras.export.ExportArchive()
    archive.track(net)
    archive.add_endpoint(SIGNATURE, serve)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        archive.write_out(tmp, verbose=False)
        if path.exists():
            old = tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent)
            os.replace(path, os.path.join(old, "x"))
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return path

