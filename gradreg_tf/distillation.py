"""Defensive distillation's pieces (Papernot et al. 2016, as the paper trains it at T=50; SETUP.md):
the teacher's recipe, its soft labels, and the part of a student's cache key that names its teacher.

The student is trained on ``softmax(teacher_logits / T)`` of the training set at the same T and
predicts at T = 1 (:class:`gradreg_tf.GradRegClassifier` with ``temperature=T``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from gradreg_tf import cache as _cache
from gradreg_tf import fingerprints as _fp
from gradreg_tf import recipes as R


def teacher_recipe(recipe: R.Recipe) -> R.Recipe:
    """The distillation teacher of a ``distill`` recipe: same objective, ``teacher_batches``."""
    return dataclasses.replace(recipe, model=f"{recipe.model}-teacher", distill=False,
                               n_batches=recipe.teacher_batches, teacher_batches=0)


def soft_labels(teacher, x, *, temperature: float, batch_size: int = 1000) -> np.ndarray:
    """``softmax(teacher_logits / T)`` on ``x`` in inference mode, in chunks (the original: 1000).

    Scaling: one forward pass over ``x``.
    """
    out = [tf.nn.softmax(teacher(x[i:i + batch_size], training=False) / temperature).numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float32)


def student_key(recipe: R.Recipe, dataset, seed: int) -> dict | None:
    """Extra cache-key part of a distilled student: its teacher's key (not the soft labels'
    bytes); None for other recipes."""
    if not recipe.distill:
        return None
    return {"teacher": _cache.cache_key(teacher_recipe(recipe), seed=seed,
                                        data_fingerprint=_fp.data_fingerprint(dataset))}
