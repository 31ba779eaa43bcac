"""gradreg_tf: input gradient regularization (Ross & Doshi-Velez, AAAI 2018) in TensorFlow/Keras.

Public API:
    gradreg_tf.GradRegClassifier   Keras model trained with the paper's objectives
    gradreg_tf.models              mnist_cnn(), svhn_cnn(), LocalContrastNormalization
    gradreg_tf.penalties           double_backprop(), certainty_sensitivity()
    gradreg_tf.attacks             fgsm(), tgsm(), jsma()
    gradreg_tf.evaluation          accuracy(), transfer_grid()
    gradreg_tf.data                load("mnist" | "notmnist" | "svhn")
    gradreg_tf.recipes, .zoo       the paper's training recipes; trained_model() with a cache
"""

__version__ = "0.1.0"

from gradreg_tf import _startup  # noqa: E402  (before keras/tensorflow: quiet start-up)

_startup.quiet_tensorflow()

import keras as _keras  # noqa: E402

if _keras.backend.backend() != "tensorflow":  # pragma: no cover - environment guard
    raise RuntimeError(
        "gradreg_tf needs the TensorFlow Keras backend, received KERAS_BACKEND="
        f"{_keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow."
    )

from gradreg_tf import attacks, data, evaluation, models, penalties, recipes, zoo  # noqa: E402
from gradreg_tf.models import GradRegClassifier  # noqa: E402
from gradreg_tf.types import Bounds  # noqa: E402

__all__ = ["Bounds", "GradRegClassifier", "attacks", "data", "evaluation", "models", "penalties",
           "recipes", "zoo"]
