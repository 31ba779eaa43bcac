"""Fingerprints that key trained models: of the training code and of a dataset's training data.

:func:`code_fingerprint` hashes the code of :data:`TRAINING_CODE` (the modules that decide trained
weights), so the user cache (:mod:`gradreg_tf.cache`) never reuses a model trained by another
training step, while docstrings, comments and layout (which decide nothing) are left out of it;
:func:`data_fingerprint` hashes a dataset's name, training images and labels.
Neither imports any other module of the package.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import pathlib

import numpy as np

# The modules whose source decides trained weights (hashed into the user cache's keys).
TRAINING_CODE = ("training.py", "zoo.py", "distillation.py", "recipes.py", "penalties.py",
                 "models/gradreg.py", "models/input_checks.py", "models/keras_compat.py",
                 "models/callbacks.py", "models/architectures.py", "models/layers.py")


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_fingerprint(root: str | pathlib.Path, names) -> str:
    """sha256 (hex) of the code of the Python files ``names`` under ``root``: their syntax trees
    without docstrings (so comments, docstrings and layout change nothing; any change of a
    statement, expression, name or constant does).

    Args:
        root: the folder the names are relative to.
        names: relative paths of ``.py`` files, hashed in this order.

    Raises:
        OSError: a file cannot be read. SyntaxError: a file is not valid Python.
    """
    root = pathlib.Path(root)
    h = hashlib.sha256()
    for name in names:
        tree = _without_docstrings(ast.parse((root / name).read_text(), filename=str(root / name)))
        h.update(name.encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """:func:`source_fingerprint` of :data:`TRAINING_CODE`, the code that trains a model."""
    return source_fingerprint(pathlib.Path(__file__).resolve().parent, TRAINING_CODE)


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
