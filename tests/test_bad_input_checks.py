"""Bad input to the shared checks (`gradreg_tf._checks`): bounds, eps, logits models, labels, images.


A case table (``case(area, name, call, expect, mentions, check)``) judged by
``bad_input_support.classify``.
"""

import numpy as np
import pytest
import tensorflow as tf
from bad_input_support import (
    RNG,
    CaseTable,
    X,
    assert_refused_or_handled,
    net,
    softmax_net,
    with_nan,
)

import gradreg_tf as g
from gradreg_tf import _checks

T = CaseTable()
case = T.add


# ----------------------------------------------------------------------------- cases: checks
def add_check_cases():
    a = "checks"
    for bounds in (
        "01",
        b"01",
        {0: 0, 1: 1},
        {0.0, 1.0},
        (1, 0),
        (0, 0),
        (np.nan, 1),
        (0, np.inf),
        (0,),
        (0, 1, 2),
        None,
        "a",
        [0, "x"],
        1.0,
    ):
        case(
            a, f"as_bounds({bounds!r})", lambda b=bounds: _checks.as_bounds(b), mentions=("bounds",)
        )
    for bounds in ((0, 1), [-0.5, 0.5], np.array([0, 1]), g.types.Bounds(0, 1), (np.float32(0), 1)):
        case(
            a,
            f"as_bounds({bounds!r}) valid",
            lambda b=bounds: _checks.as_bounds(b),
            expect="ok",
            check=lambda r: tuple(r) in ((0.0, 1.0), (-0.5, 0.5)),
        )
    for eps in (-1, np.nan, np.inf, "x", None, True, [0.1]):
        case(
            a,
            f"check_eps({eps!r})",
            lambda e=eps: _checks.check_eps(e),
            mentions=(repr(eps), "eps"),
        )
    case(
        a,
        "check_eps('0.1') (numeric string)",
        lambda: _checks.check_eps("0.1"),
        expect="ok",
        check=lambda r: r == 0.1,
    )
    x = RNG.normal(size=(4, 4)).astype("float32")
    case(
        a,
        "check_logits_model(single logit)",
        lambda: _checks.check_logits_model(net(1)),
        mentions=("(None, 1)",),
    )
    case(
        a,
        "check_logits_model(softmax output)",
        lambda: _checks.check_logits_model(softmax_net(), X[:4]),
        mentions=("probabilities",),
    )
    case(
        a,
        "check_logits_model(rank-3 output)",
        lambda: _checks.check_logits_model(lambda t: tf.reshape(t, (4, 2, 2)), x),
        mentions=("(4, 2, 2)",),
    )
    for y, label in (
        (np.array([0, 1, 3]), "label 3 of 3 classes"),
        (np.array([-1, 0, 1]), "label -1"),
        (np.array([0.5, 1, 2]), "non-integer"),
        (np.array(["a", "b", "c"]), "strings"),
        (np.zeros((3, 2, 2)), "rank 3"),
        (np.array([0, 1]), "2 labels for 3"),
    ):
        case(
            a,
            f"check_labels({label})",
            lambda y=y: _checks.check_labels(y, n_classes=3, n_examples=3),
            mentions=("[0, 2]", "integer", "shape", "2 labels", "<U1"),
        )
    for imgs, label in (
        (np.zeros((2, 4, 4, 1), np.uint8), "uint8"),
        (np.zeros((2, 4, 4, 1), bool), "bool"),
        (np.zeros((0, 4, 4, 1), np.float32), "empty"),
        (with_nan(X), "NaN"),
        (with_nan(X, np.inf), "inf"),
        (X[0], "rank 3"),
        (np.array([["a"]]), "strings"),
    ):
        case(
            a,
            f"check_images({label})",
            lambda i=imgs: _checks.check_images(i),
            mentions=("dtype", "empty", "NaN", "rank", "<U1"),
        )
    case(
        a,
        "check_images outside bounds",
        lambda: _checks.check_images(X + 2, bounds=(0, 1)),
        mentions=("outside bounds",),
    )


add_check_cases()


@pytest.mark.parametrize("c", T.params())
def test_checks(c):
    """Refused clearly or handled correctly; fails on a silent, unclear or late outcome."""
    assert_refused_or_handled(c)
