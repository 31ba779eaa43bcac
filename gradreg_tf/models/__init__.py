"""The paper's networks, layers and the gradient-regularized Keras model."""

from gradreg_tf.models.architectures import mnist_cnn, svhn_cnn
from gradreg_tf.models.gradreg import GradRegClassifier, NonFiniteLossError
from gradreg_tf.models.layers import (
    LocalContrastNormalization,
    PerImageLocalContrastNormalization,
    gaussian_kernel,
)

__all__ = [
    "GradRegClassifier",
    "LocalContrastNormalization",
    "NonFiniteLossError",
    "PerImageLocalContrastNormalization",
    "gaussian_kernel",
    "mnist_cnn",
    "svhn_cnn",
]
