"""Attacks of Ross & Doshi-Velez (AAAI 2018, §Experiments) and beyond.

The paper's: FGSM, (iterated) TGSM, pairwise JSMA. Beyond the paper: FGSM on the
Carlini-Wagner margin (``loss="margin"``), L∞ PGD with restarts (Madry et al. 2018) on either
loss, and the random-sign noise baseline.

All are pure functions ``attack(model, x, ..., *, bounds, ...)`` over a Keras model (called
with ``training=False``) or any callable returning logits; they accept numpy arrays or tensors
of any size and float dtype, validate their inputs (``ValueError``/``TypeError`` naming what was
received) and run their per-chunk work in cached ``tf.function``s (:mod:`gradreg_tf.gradients`).

    fgsm(model, x, eps, *, bounds, y=None, loss="ce", batch_size=1000)
    fgsm_signs(model, x, *, bounds, y=None, loss="ce", batch_size=1000)
    tgsm(model, x, eps, *, bounds, y_target=None, y=None, steps=1, batch_size=1000)
    pgd(model, x, eps, *, bounds, y=None, y_target=None, steps=40, step_size=None, restarts=1,
        random_start=True, loss="ce", seed=0, batch_size=1000)
    jsma(model, x, *, y_target, bounds, theta=1.0, gamma=0.25, batch_size=100) -> JSMAResult
    random_sign_noise(x, eps, *, bounds, seed=0)
    apgd(model, x, eps, *, bounds, y=None, loss="ce"|"dlr"|"dlr_targeted", steps=100, restarts=1,
         n_targets=9, momentum=0.75, rho=0.75, seed=0, batch_size=1000)   # Croce & Hein 2020
    square(model, x, eps, *, bounds, y=None, queries=1000, p_init=0.05, seed=0,
           batch_size=1000)                                   # Andriushchenko et al. 2020
"""

from gradreg_tf.attacks.apgd import apgd
from gradreg_tf.attacks.gradient_sign import fgsm, fgsm_signs, predict_labels, tgsm
from gradreg_tf.attacks.jsma import JSMAResult, jsma
from gradreg_tf.attacks.noise import random_sign_noise
from gradreg_tf.attacks.pgd import pgd
from gradreg_tf.attacks.square import square

# Explicit registry for command-line tools (no string dispatch through getattr).
ATTACKS = {"fgsm": fgsm, "tgsm": tgsm, "jsma": jsma, "pgd": pgd}

__all__ = ["ATTACKS", "JSMAResult", "apgd", "fgsm", "fgsm_signs", "jsma", "pgd", "predict_labels",
           "random_sign_noise", "square", "tgsm"]
