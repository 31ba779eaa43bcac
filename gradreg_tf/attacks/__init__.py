"""Attacks of Ross & Doshi-Velez (AAAI 2018, §Experiments): FGSM, (iterated) TGSM, pairwise JSMA.

All are pure functions ``attack(model, x, ..., *, bounds, ...)`` over a Keras model (called
with ``training=False``) or any callable returning logits; they accept numpy arrays or tensors
of any size and float dtype, validate their inputs (``ValueError``/``TypeError`` naming what was
received) and run their per-chunk work in cached ``tf.function``s.

    fgsm(model, x, eps, *, bounds, y=None, batch_size=1000)
    tgsm(model, x, eps, *, bounds, y_target=None, y=None, steps=1, batch_size=1000)
    jsma(model, x, *, y_target, bounds, theta=1.0, gamma=0.25, batch_size=100) -> JSMAResult
"""

from gradreg_tf.attacks.gradient_sign import fgsm, predict_labels, tgsm
from gradreg_tf.attacks.jsma import JSMAResult, jsma

# Explicit registry for command-line tools (no string dispatch through getattr).
ATTACKS = {"fgsm": fgsm, "tgsm": tgsm, "jsma": jsma}

__all__ = ["ATTACKS", "JSMAResult", "fgsm", "jsma", "predict_labels", "tgsm"]
