"""The paper's CNNs (SETUP.md §3, the original ``cnns.py``), as functional Keras models.

Both map float32 NHWC images to **logits** (no softmax). Layer details follow the
original's ``tf.contrib.slim`` defaults: conv/FC -> batch norm -> ReLU with no bias
before batch norm, batch norm with momentum (decay) 0.9, epsilon 1e-3, centre but
**no scale**, 'SAME' convolutions with stride 1, Glorot-uniform weights, 2x2/2 'VALID'
max pooling, dropout 0.5 after the 1024-unit layer only, and a plain affine logits layer.
"""

from __future__ import annotations

import keras

from gradreg_tf.models.layers import (
    LocalContrastNormalization,
    PerImageLocalContrastNormalization,
)


def _conv_bn_relu(x, filters: int, name: str):
    x = keras.layers.Conv2D(
        filters, 5, padding="same", use_bias=False,
        kernel_initializer="glorot_uniform", name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-3, center=True, scale=False, name=f"{name}_bn"
    )(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.MaxPooling2D(2, strides=2, padding="valid", name=f"{name}_pool")(x)


def _head(x, n_classes: int):
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(
        1024, use_bias=False, kernel_initializer="glorot_uniform", name="fc1"
    )(x)
    x = keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-3, center=True, scale=False, name="fc1_bn"
    )(x)
    x = keras.layers.ReLU(name="fc1_relu")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    return keras.layers.Dense(n_classes, kernel_initializer="glorot_uniform", name="logits")(x)


def _check_classes(n_classes) -> int:
    if int(n_classes) != n_classes or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, received {n_classes!r}.")
    return int(n_classes)


def mnist_cnn(input_shape=(28, 28, 1), n_classes: int = 10, name: str = "mnist_cnn") -> keras.Model:
    """The paper's MNIST/notMNIST network (original ``MNIST_CNN``, cnns.py:7-29).

    ``conv5x5x32 -> pool -> conv5x5x64 -> pool -> FC1024 -> dropout -> FC(n_classes)``,
    each conv/FC followed by batch norm and ReLU as described in the module docstring.

    Args:
        input_shape: image shape without the batch axis (default 28x28x1).
        n_classes: number of classes (logits).
        name: model name.

    Returns:
        An unbuilt-trainable functional ``keras.Model`` returning logits.

    Raises:
        ValueError: if ``n_classes`` < 2 or ``input_shape`` is not (H, W, C).
    """
    n_classes = _check_classes(n_classes)
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), received {input_shape!r}.")
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = _conv_bn_relu(inputs, 32, "conv1")
    x = _conv_bn_relu(x, 64, "conv2")
    return keras.Model(inputs, _head(x, n_classes), name=name)


def svhn_cnn(
    input_shape=(32, 32, 1), n_classes: int = 10, *, per_image_lcn: bool = False,
    name: str = "svhn_cnn",
) -> keras.Model:
    """The paper's SVHN network (original ``SVHN_CNN``, cnns.py:31-54).

    Same as :func:`mnist_cnn` on 32x32x1 grayscale input, preceded by LeCun local
    contrast normalization (flatten size 8*8*64 = 4096).

    Args:
        input_shape: image shape without the batch axis (default 32x32x1).
        n_classes: number of classes.
        per_image_lcn: use :class:`PerImageLocalContrastNormalization` (a variant)
            instead of the original's batch-mean :class:`LocalContrastNormalization`.
        name: model name.

    Returns:
        A functional ``keras.Model`` returning logits.

    Raises:
        ValueError: if ``n_classes`` < 2 or the input is not single-channel.
    """
    n_classes = _check_classes(n_classes)
    if len(tuple(input_shape)) != 3 or tuple(input_shape)[-1] != 1:
        raise ValueError(f"input_shape must be (height, width, 1), received {input_shape!r}.")
    lcn = PerImageLocalContrastNormalization if per_image_lcn else LocalContrastNormalization
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = lcn(name="lcn")(inputs)
    x = _conv_bn_relu(x, 32, "conv1")
    x = _conv_bn_relu(x, 64, "conv2")
    return keras.Model(inputs, _head(x, n_classes), name=name)
