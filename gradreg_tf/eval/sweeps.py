"""Scores of one model of a λ sweep (the original launcher's selection criterion).

The authors picked λ "on a validation set of adversarial examples (while still performing well on
normal examples)" (MNIST notebook cell 14); the only code scoring this (``train_models.py``) uses
the first 1024 test images, clean and perturbed with a reference normal model's FGSM signs at
eps 0.1/0.2/0.3. :func:`lambda_point` measures exactly that, plus white-box FGSM, for one model;
``experiments/lambda_sweep.py`` trains the sweep and plots it.
"""

from __future__ import annotations

from typing import Mapping

from gradreg_tf.eval import grids

__all__ = ["lambda_point", "point_rows"]


def lambda_point(model, x, y, *, reference: Mapping[float, object], bounds) -> dict:
    """Clean, transferred and white-box FGSM accuracy of one model of a sweep.

    Args:
        model: the trained model (logits).
        x, y: the scored test images and labels.
        reference: eps -> the reference normal model's FGSM examples of ``x`` at that eps
            (:func:`gradreg_tf.zoo.reference_fgsm`).
        bounds: the dataset's pixel bounds.

    Returns:
        ``{"clean": a, "transfer": {eps: a}, "whitebox": {eps: a}}``. Scaling: one forward pass
        over ``x`` per eps and clean, one gradient pass per eps (white-box).
    """
    epsilons = tuple(reference)
    whitebox = grids.accuracy_under_attack(model, x, y, epsilons=epsilons, attack="fgsm",
                                           bounds=bounds)
    return {"clean": grids.accuracy(model, x, y),
            "transfer": {e: grids.accuracy(model, reference[e], y) for e in epsilons},
            "whitebox": {e: whitebox[e] for e in epsilons}}


def point_rows(kind: str, lam: float, point: Mapping, n: int) -> list[dict]:
    """The CSV rows of one :func:`lambda_point` (``kind, lambda, metric, eps, accuracy,
    n_examples``): clean, then per eps the transferred and the white-box accuracy."""
    rows = [{"kind": kind, "lambda": lam, "metric": "clean", "eps": 0.0,
             "accuracy": point["clean"], "n_examples": n}]
    for e in point["transfer"]:
        rows += [{"kind": kind, "lambda": lam, "metric": "fgsm_from_reference_normal", "eps": e,
                  "accuracy": point["transfer"][e], "n_examples": n},
                 {"kind": kind, "lambda": lam, "metric": "fgsm_whitebox", "eps": e,
                  "accuracy": point["whitebox"][e], "n_examples": n}]
    return rows
