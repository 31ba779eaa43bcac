"""gradreg_tf: input gradient regularization (Ross & Doshi-Velez, AAAI 2018) in TensorFlow/Keras.

Public API:
    gradreg_tf.GradRegClassifier   Keras model trained with the paper's objectives
    gradreg_tf.models              mnist_cnn(), svhn_cnn(), LocalContrastNormalization
    gradreg_tf.penalties           double_backprop(), certainty_sensitivity()
    gradreg_tf.attacks             fgsm(), tgsm(), jsma()
    gradreg_tf.eval.grids          accuracy(), transfer_grid() (gradreg_tf.eval: every measurement)
    gradreg_tf.data                load("mnist" | "notmnist" | "svhn")
    gradreg_tf.recipes, .zoo       the paper's training recipes; trained_model() with a cache
"""

import importlib

__version__ = "0.1.0"

from gradreg_tf import _startup  # noqa: E402  (before keras/tensorflow: quiet start-up)

_startup.quiet_tensorflow()
_startup.hide_run_module_warning()  # `python -m gradreg_tf.pretrained` starts without it

import keras as _keras  # noqa: E402

if _keras.backend.backend() != "tensorflow":  # pragma: no cover - environment guard
    raise RuntimeError(
        "gradreg_tf needs the TensorFlow Keras backend, received KERAS_BACKEND="
        f"{_keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow."
    )

from gradreg_tf import attacks, data, models, penalties, recipes, zoo  # noqa: E402
from gradreg_tf.eval import grids as _grids  # noqa: E402, F401  (gradreg_tf.eval.grids)
from gradreg_tf.models import GradRegClassifier  # noqa: E402
from gradreg_tf.types import Bounds  # noqa: E402

__all__ = ["Bounds", "GradRegClassifier", "attacks", "data", "models", "penalties", "recipes", "zoo"]

MOVED = ("audit", "claims", "evaluation", "seeds")
"""Old module names kept as aliases of their :mod:`gradreg_tf.eval` modules (each warns)."""


def __getattr__(name: str):
    """``gradreg_tf.<old name>`` of a module moved into :mod:`gradreg_tf.eval`: imports the alias,
    which warns (``DeprecationWarning``) and stands for the moved module.

    Raises:
        AttributeError: for any other missing name.
    """
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
