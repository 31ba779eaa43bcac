"""Fingerprints that key trained models: of the training code and of a dataset's training data.

:func:`code_fingerprint` hashes the source of :data:`TRAINING_CODE` (the modules that decide trained
weights), so the user cache (:mod:`gradreg_tf.cache`) never reuses a model trained by another
training step; :func:`data_fingerprint` hashes a dataset's name, training images and labels.
Neither imports any other module of the package.
"""

from __future__ import annotations

import functools
import hashlib
import pathlib

import numpy as np

# The modules whose source decides trained weights (hashed into the user cache's keys).
TRAINING_CODE = ("training.py", "zoo.py", "distillation.py", "recipes.py", "penalties.py",
                 "models/gradreg.py", "models/input_checks.py", "models/keras_compat.py",
                 "models/callbacks.py", "models/architectures.py", "models/layers.py")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 (hex) of the source of :data:`TRAINING_CODE`, the code that trains a model."""
    root = pathlib.Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in TRAINING_CODE:
        h.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def _data_fingerprint(dataset) -> str:
    h = hashlib.sha256()
    h.update(f"{dataset.name}|{dataset.x_train.shape}|{dataset.deviation}".encode())
    h.update(np.ascontiguousarray(dataset.x_train).tobytes())
    h.update(np.ascontiguousarray(dataset.y_train).tobytes())
    return h.hexdigest()


def data_fingerprint(dataset) -> str:
    """sha256 (hex) of a dataset's name, training images and labels (part of every cache key).

    Scaling: one pass over the training set; cached per dataset object.
    """
    return _data_fingerprint(dataset)
