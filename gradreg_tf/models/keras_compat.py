"""Every Keras/TensorFlow internal the classifier relies on, behind one guarded shim.

:class:`~gradreg_tf.GradRegClassifier` overrides one private Keras hook
(``_maybe_symbolic_build``, to make multi-worker ``fit`` work: keras-team/keras#20585) and reads
three private trainer attributes. :func:`check_keras_hooks` runs at import and
:func:`check_trainer_attributes` at construction, so a Keras release that renames them fails
loudly instead of silently bypassing the override. Everything else uses public APIs:
:func:`sublayers` walks the public ``layers`` lists, :func:`in_multi_worker_mode` reads the
strategy's public ``cluster_resolver``.
"""

from __future__ import annotations

import inspect

import keras
import tensorflow as tf

HOOK = "_maybe_symbolic_build"
_HOOK_PARAMETERS = ["self", "iterator", "data_batch"]
_TRAINER_ATTRIBUTES = ("_distribute_strategy", "_compile_loss", "_compile_metrics")
_HOOK_CALLS = ("_symbolic_build", "_post_build")


def check_keras_hooks() -> None:
    """Checks that Keras still has the private start-up hook the classifier overrides.

    ``GradRegClassifier._maybe_symbolic_build`` replaces Keras' TensorFlow-trainer hook of
    that name to make multi-worker ``fit`` work (see the method). If Keras renamed the
    hook or changed its arguments, the override would be dead code and multi-worker
    training would break without a word; this check turns that into an import error.

    Raises:
        ImportError: naming the installed Keras version, if the hook or the private
            methods the override calls are missing or have another signature.
    """
    hook = getattr(keras.Model, HOOK, None)
    where = f"keras {keras.__version__} (gradreg_tf was written against keras 3.x, tested 3.15)"
    if not callable(hook):
        raise ImportError(
            f"keras.Model.{HOOK} is missing in {where}: GradRegClassifier overrides this "
            "private hook to make multi-worker fit work. Install a Keras version that has it "
            "or update GradRegClassifier._maybe_symbolic_build."
        )
    params = list(inspect.signature(hook).parameters)
    if params != _HOOK_PARAMETERS:
        raise ImportError(
            f"keras.Model.{HOOK} has the signature {params} in {where}, expected "
            f"{_HOOK_PARAMETERS}: update GradRegClassifier._maybe_symbolic_build."
        )
    for name in _HOOK_CALLS:
        if not callable(getattr(keras.Model, name, None)):
            raise ImportError(f"keras.Model.{name} (used by GradRegClassifier.{HOOK}) is "
                              f"missing in {where}.")


def check_trainer_attributes(model) -> None:
    """Checks that a Keras model has the private trainer attributes the hook reads.

    Raises:
        RuntimeError: naming the missing attribute and the Keras version.
    """
    for name in _TRAINER_ATTRIBUTES:
        if not hasattr(model, name):
            raise RuntimeError(
                f"{type(model).__name__} has no attribute {name!r} in keras "
                f"{keras.__version__}: GradRegClassifier.{HOOK} reads it; update the override."
            )




def sublayers(layer):
    """``layer`` and every layer nested in it, through the public ``layers`` lists."""
    yield layer
    for sub in getattr(layer, "layers", None) or ():
        yield from sublayers(sub)


def in_multi_worker_mode(strategy) -> bool:
    """True under a ``MultiWorkerMirroredStrategy`` whose cluster has more than one worker
    (chief included), read from the strategy's public ``cluster_resolver``."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    jobs = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(jobs.get(job, ())) for job in ("chief", "worker")) > 1


check_keras_hooks()
