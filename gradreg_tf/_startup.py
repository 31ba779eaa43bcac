"""Quiet TensorFlow start-up and the one-line device report of the entry points.

TensorFlow prints a dozen C++ log lines when it is imported and when it first looks for devices
(``I0000 ... cudart_stub.cc``, and on a machine without a GPU ``E0000 ... failed call to
cuInit``, which reads like a failure). ``TF_CPP_MIN_LOG_LEVEL`` alone does not hide them: some
are written before TensorFlow reads it. :func:`quiet_tensorflow` therefore sends the process's
standard error to ``/dev/null`` while TensorFlow is imported and enumerates its devices, and only
then; the user's own ``TF_CPP_MIN_LOG_LEVEL`` wins (set it, e.g. to ``0``, to see every line).

This module imports nothing heavy, so that ``gradreg_tf/__init__.py`` can call it first.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LEVEL = "2"
"""Hides TensorFlow's C++ INFO and WARNING lines; errors after start-up still show."""

_announced = False


@contextlib.contextmanager
def _stderr_to_devnull():
    """Points file descriptor 2 at ``/dev/null`` for the block (C++ writes there directly)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (e.g. an embedded interpreter): do nothing
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def quiet_tensorflow() -> bool:
    """Imports TensorFlow without its C++ start-up lines, unless the user chose a log level.

    Does nothing if TensorFlow is already imported or ``TF_CPP_MIN_LOG_LEVEL`` is set in the
    environment (the user's setting wins). Otherwise sets it to ``"2"`` and imports TensorFlow
    and lists its devices with standard error silenced (a Python exception still propagates and
    is printed once standard error is back). Cost: the import itself (seconds), no extra work.

    Returns:
        True if TensorFlow was imported here, quietly.
    """
    if "tensorflow" in sys.modules or LOG_LEVEL_VARIABLE in os.environ:
        return False
    os.environ[LOG_LEVEL_VARIABLE] = QUIET_LEVEL
    with _stderr_to_devnull():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the cuInit probe logs here, not at import
    return True


def hide_run_module_warning() -> None:
    """Hides the ``RuntimeWarning`` of ``python -m gradreg_tf.<module>`` for a module that this
    package's ``__init__`` already imported (``'gradreg_tf.pretrained' found in sys.modules after
    import of package 'gradreg_tf' ...``): harmless here, and the first line a user would see.
    Only that message, only for this package's modules."""
    import warnings

    warnings.filterwarnings("ignore", category=RuntimeWarning,
                            message=r"'gradreg_tf\.[\w.]+' found in sys\.modules after import of "
                                    r"package 'gradreg_tf'")


def device_line() -> str:
    """One line naming the device(s) TensorFlow will run on, e.g.
    ``device: CPU (2 cores, x86_64), no GPU; TensorFlow 2.21.0``."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    cpu = f"CPU ({os.cpu_count()} cores, {platform.machine() or 'unknown architecture'})"
    where = (f"GPU x{len(gpus)} ({', '.join(g.name.split(':', 1)[-1] for g in gpus)}) and {cpu}"
             if gpus else f"{cpu}, no GPU")
    return f"device: {where}; TensorFlow {tf.__version__}"


def announce_device(stream=None) -> None:
    """Prints :func:`device_line` once per process (to standard error by default)."""
    global _announced
    if _announced:
        return
    _announced = True
    print(device_line(), file=stream or sys.stderr, flush=True)


def running_as_entry_point() -> bool:
    """True when ``__main__`` is a script of ``experiments/`` or a ``python -m gradreg_tf...``
    module (not a test runner or a user's program importing the package)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and str(spec.name).startswith("gradreg_tf"):
        return True
    path = getattr(main, "__file__", None)
    return bool(path) and os.path.basename(os.path.dirname(os.path.abspath(path))) == "experiments"
