"""gradreg_tf: input gradient regularization (Ross & Doshi-Velez, AAAI 2018) in TensorFlow/Keras.

Public API:
    gradreg_tf.GradRegClassifier      Keras model trained with the paper's objectives
    gradreg_tf.models                 mnist_cnn(), svhn_cnn(), LocalContrastNormalization
    gradreg_tf.penalties              double_backprop(), certainty_sensitivity()
    gradreg_tf.data                   load("mnist" | "notmnist" | "svhn")
    gradreg_tf.attacks                fgsm(), tgsm(), jsma()
"""

__version__ = "0.1.0"

import keras as _keras

if _keras.backend.backend() != "tensorflow":  # pragma: no cover - environment guard
    raise RuntimeError(
        "gradreg_tf needs the TensorFlow Keras backend, received KERAS_BACKEND="
        f"{_keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow."
    )

from gradreg_tf import models, penalties  # noqa: E402
from gradreg_tf.models import GradRegClassifier  # noqa: E402
from gradreg_tf.types import Bounds  # noqa: E402

try:  # subpackages written alongside; import lazily-tolerant during development
    from gradreg_tf import data  # noqa: E402,F401
except ImportError:  # pragma: no cover
    pass
try:
    from gradreg_tf import attacks  # noqa: E402,F401
except ImportError:  # pragma: no cover
    pass

__all__ = ["Bounds", "GradRegClassifier", "attacks", "data", "models", "penalties"]
