"""Fingerprints of a network's weights, for showing where trained weights came from.

A training run records :func:`weights_fingerprint` of its weights after its first
``PROVENANCE_BATCHES`` batches; retraining those batches from the same recipe and seed,
with the same determinism settings, must give the same fingerprint. That is how the shipped
pretrained models (:mod:`gradreg_tf.pretrained`) are tied to this code's training step.

The fingerprint has two parts:

* ``sha256``: over every weight's position, dtype, shape and bytes (bitwise identity);
* ``projections``: each weight projected on ``N_PROJECTIONS`` fixed pseudo-random unit
  vectors (float64), for a tolerance comparison where bitwise identity cannot be expected
  (another CPU or thread count: the kernels' summation order differs).
"""

from __future__ import annotations

import hashlib
import platform

import numpy as np

PROVENANCE_BATCHES = 100
N_PROJECTIONS = 4


def _weights(model):
    network = getattr(model, "network", model)
    return [np.asarray(w.numpy()) for w in network.weights]


def weights_sha256(model) -> str:
    """sha256 (hex) of a model's network weights: order, dtypes, shapes and raw bytes.

    Layer names are left out: Keras numbers them per process (``conv2d_1``...), so the same
    weights built after another model would otherwise hash differently.

    Args:
        model: a :class:`~gradreg_tf.GradRegClassifier` (its ``network`` is hashed) or any
            Keras model.

    Returns:
        The hex digest; equal digests mean bitwise-equal weights.
    """
    h = hashlib.sha256()
    for i, value in enumerate(_weights(model)):
        h.update(f"{i}|{value.dtype.str}|{value.shape}|".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def weights_projections(model) -> list[list[float]]:
    """Each weight tensor projected on ``N_PROJECTIONS`` fixed random unit vectors.

    The vectors are drawn from ``numpy.random.default_rng(i)`` for the i-th weight, so
    the projections of two models with the same architecture are comparable.

    Returns:
        One list of ``N_PROJECTIONS`` floats per weight, in ``network.weights`` order.
    """
    out = []
    for i, value in enumerate(_weights(model)):
        flat = value.astype(np.float64).ravel()
        directions = np.random.default_rng(i).standard_normal((N_PROJECTIONS, flat.size))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        out.append([float(v) for v in directions @ flat])
    return out


def weights_fingerprint(model) -> dict:
    """``{"sha256", "projections"}`` of a model's weights (see the module docstring)."""
    return {"sha256": weights_sha256(model), "projections": weights_projections(model)}


def projection_deviation(a, b) -> float:
    """Largest difference between two :func:`weights_projections`, relative to the norm of
    that weight's projections in ``b`` (0 = identical; ``inf`` if the layouts differ)."""
    if len(a) != len(b) or any(len(u) != len(v) for u, v in zip(a, b)):
        return float("inf")
    worst = 0.0
    for u, v in zip(a, b):
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        scale = max(float(np.linalg.norm(v)), 1e-12)
        worst = max(worst, float(np.max(np.abs(u - v))) / scale)
    return worst


TRAINING_PACKAGES = ("python", "tensorflow", "keras", "numpy")
"""The versions recorded with a trained, replayed or measured model."""


def versions(packages=TRAINING_PACKAGES) -> dict:
    """``{package: version}`` in the order given (``"python"``: the interpreter's version); the
    one place versions are recorded (model sidecars, figure JSON, study provenance).

    Raises:
        ModuleNotFoundError: if a named package is not installed.
    """
    import importlib

    return {name: platform.python_version() if name == "python"
            else importlib.import_module(name).__version__ for name in packages}


def machine_signature() -> dict:
    """What decides the kernels' summation order: CPU model and flags, core count, versions."""
    import os

    import keras
    import tensorflow as tf

    cpu, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = hashlib.sha256(line.split(":", 1)[1].strip().encode()).hexdigest()[:16]
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_flags_sha256": flags, "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__,
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}
