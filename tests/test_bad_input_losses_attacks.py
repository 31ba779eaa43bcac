"""Bad input to the penalties, the attacks and the evaluation grids.


A case table (``case(area, name, call, expect, mentions, check)``) judged by
``bad_input_support.classify``.
"""

import numpy as np
import pytest
import tensorflow as tf
from bad_input_support import (
    CaseTable,
    K,
    X,
    Y,
    assert_refused_or_handled,
    net,
    softmax_net,
    with_nan,
)

from gradreg_tf import attacks, penalties
from gradreg_tf.eval import grids

T = CaseTable()
case = T.add


# ----------------------------------------------------------------------------- cases: penalties
def add_penalty_cases():
    a = "penalties"
    model, x, y = net(), X[:6], Y[:6]
    soft = np.full((6, K), 1 / K)
    for t in (0.0, -1.0, np.nan, np.inf, "hot"):
        case(
            a,
            f"double_backprop(temperature={t!r})",
            lambda t=t: penalties.double_backprop(model, x, y, temperature=t),
            mentions=(repr(t), str(t)),
        )
        case(
            a,
            f"certainty_sensitivity(temperature={t!r})",
            lambda t=t: penalties.certainty_sensitivity(model, x, temperature=t),
            mentions=(str(t),),
        )
    case(
        a,
        "cross_entropy(temperature=0)",
        lambda: penalties.cross_entropy(tf.ones((2, 3)), tf.constant([0, 1]), temperature=0.0),
        mentions=("0.0",),
    )
    for label, labels, mention in (
        ("soft labels summing to 3", soft * 3, "3"),
        ("soft labels with NaN", with_nan(soft), "NaN"),
        ("negative soft labels", soft * [[3, -1, -1]], "-0.333"),
        ("soft labels of 2 classes", soft[:, :2], "(6, 2)"),
        ("soft labels, 5 rows", soft[:5], "5 rows"),
        ("labels out of range", y + 5, "[0, 2]"),
        ("labels too short", y[:5], "5 labels"),
        ("float labels", y + 0.5, "integer"),
    ):
        case(a, label, lambda v=labels: penalties.double_backprop(model, x, v), mentions=(mention,))
    case(
        a, "norm='l3'", lambda: penalties.double_backprop(model, x, y, norm="l3"), mentions=("l3",)
    )
    case(
        a,
        "uint8 x",
        lambda: penalties.certainty_sensitivity(model, (x * 255).astype("uint8")),
        mentions=("uint8",),
    )
    case(a, "NaN x", lambda: penalties.certainty_sensitivity(model, with_nan(x)), mentions=("NaN",))
    case(
        a,
        "check_penalty_weight(1e38)",
        lambda: penalties.check_penalty_weight(1e38),
        mentions=("1e+38",),
    )
    case(
        a,
        "soft labels",
        lambda: penalties.double_backprop(model, x, soft),
        expect="ok",
        check=lambda v: np.isfinite(float(v)) and float(v) > 0,
    )
    case(
        a,
        "tensor labels",
        lambda: penalties.double_backprop(model, x, tf.constant(y)),
        expect="ok",
        check=lambda v: np.isclose(float(v), float(penalties.double_backprop(model, x, y))),
    )


# ----------------------------------------------------------------------------- cases: attacks
def add_attack_cases():
    model = net()
    x, y = X[:6], Y[:6]
    bounds = (0, 1)
    for name, fn in (
        (
            "fgsm",
            lambda **k: attacks.fgsm(
                model, k.pop("x", x), k.pop("eps", 0.1), bounds=k.pop("bounds", bounds), **k
            ),
        ),
        (
            "tgsm",
            lambda **k: attacks.tgsm(
                model, k.pop("x", x), k.pop("eps", 0.1), bounds=k.pop("bounds", bounds), **k
            ),
        ),
    ):
        a = f"attacks.{name}"
        for label, kwargs, mention in (
            ("eps -1", dict(eps=-1), "-1"),
            ("eps nan", dict(eps=np.nan), "nan"),
            ("eps inf", dict(eps=np.inf), "inf"),
            ("eps None", dict(eps=None), "None"),
            ("bounds '01'", dict(bounds="01"), "'01'"),
            ("bounds (1, 0)", dict(bounds=(1, 0)), "lower=1"),
            ("uint8 x", dict(x=(x * 255).astype("uint8")), "uint8"),
            ("NaN x", dict(x=with_nan(x)), "NaN"),
            ("x outside bounds", dict(x=x + 2), "outside"),
            ("wrong shape", dict(x=x[:, :7]), "(6, 7, 8, 1)"),
            ("empty x", dict(x=x[:0]), "empty"),
            ("batch_size 0", dict(batch_size=0), "batch_size"),
            ("batch_size 2.5", dict(batch_size=2.5), "2.5"),
        ):
            case(a, label, lambda f=fn, k=kwargs: f(**dict(k)), mentions=(mention,))
        key = "y" if name == "fgsm" else "y_target"
        for label, labels, mention in (
            ("labels out of range", y + 5, "[0, 2]"),
            ("labels too short", y[:5], "5 labels"),
            ("float labels", y + 0.5, "integer"),
        ):
            case(a, label, lambda f=fn, k=key, v=labels: f(**{k: v}), mentions=(mention,))
        case(
            a,
            "single-logit model",
            lambda n=name: attacks.ATTACKS[n](net(1), x, 0.1, bounds=bounds),
            mentions=("2 classes", "(None, 1)"),
        )
        case(
            a,
            "model returning probabilities",
            lambda n=name: attacks.ATTACKS[n](softmax_net(), x, 0.1, bounds=bounds),
            mentions=("probabilities",),
        )
        case(
            a,
            "eps 0 returns x",
            lambda f=fn: f(eps=0.0),
            expect="ok",
            check=lambda r: np.array_equal(np.asarray(r), x),
        )
        case(
            a,
            "float64 x keeps dtype",
            lambda f=fn: f(x=x.astype("float64")),
            expect="ok",
            check=lambda r: r.dtype == tf.float64
            and np.max(np.abs(np.asarray(r) - x)) <= 0.1 + 1e-6,
        )
    a = "attacks.tgsm"
    case(
        a,
        "steps 0",
        lambda: attacks.tgsm(model, x, 0.1, bounds=bounds, steps=0),
        mentions=("steps",),
    )
    case(
        a,
        "y and y_target",
        lambda: attacks.tgsm(model, x, 0.1, bounds=bounds, y=y, y_target=y),
        mentions=("y_target",),
    )
    a = "attacks.jsma"
    for label, kwargs, mention in (
        ("gamma 0", dict(gamma=0), "gamma"),
        ("gamma 2", dict(gamma=2), "gamma"),
        ("theta nan", dict(theta=np.nan), "theta"),
        ("targets out of range", dict(y_target=y + 5), "[0, 2]"),
        ("bounds '01'", dict(bounds="01"), "'01'"),
        ("batch_size 0", dict(batch_size=0), "batch_size"),
    ):
        kw = dict(dict(y_target=(y + 1) % K, bounds=bounds), **kwargs)
        case(a, label, lambda k=kw: attacks.jsma(model, x, **k), mentions=(mention,))
    case(
        a,
        "single-logit model",
        lambda: attacks.jsma(net(1), x, y_target=np.zeros(6, int), bounds=bounds),
        mentions=("2 classes", "(None, 1)"),
    )
    case(
        a,
        "success means the target is predicted",
        lambda: attacks.jsma(model, x, y_target=(y + 1) % K, bounds=bounds),
        expect="ok",
        check=lambda r: np.array_equal(
            np.asarray(r.success), attacks.predict_labels(model, np.asarray(r.x_adv)) == (y + 1) % K
        ),
    )
    a = "attacks.pgd"
    for label, kwargs, mention in (
        ("steps 0", dict(steps=0), "steps"),
        ("restarts 0", dict(restarts=0), "restarts"),
        ("step_size -1", dict(step_size=-1), "step_size"),
        ("loss 'hinge'", dict(loss="hinge"), "hinge"),
        ("seed -1", dict(seed=-1), "seed"),
        ("eps nan", dict(eps=np.nan), "nan"),
    ):
        kw = dict(dict(eps=0.1, bounds=bounds, steps=2), **kwargs)
        case(a, label, lambda k=kw: attacks.pgd(model, x, k.pop("eps"), **k), mentions=(mention,))
    case(
        a,
        "stays in the eps ball",
        lambda: attacks.pgd(model, x, 0.1, bounds=bounds, steps=3),
        expect="ok",
        check=lambda r: np.max(np.abs(np.asarray(r) - x)) <= 0.1 + 1e-6,
    )


# ----------------------------------------------------------------------------- cases: evaluation
def add_evaluation_cases():
    a = "evaluation"
    model, x, y = net(), X[:20], Y[:20]
    ten = net(10)

    def grid(**k):
        args = dict(
            targets={"a": model},
            sources={"a": model},
            x=x,
            y=y,
            epsilons=(0.1,),
            bounds=(0, 1),
            n_examples=10,
        )
        args.update(k)
        return grids.transfer_grid(
            args.pop("targets"), args.pop("sources"), args.pop("x"), args.pop("y"), **args
        )

    for label, kwargs, mention in (
        ("attack 'pgd'", dict(attack="pgd"), "pgd"),
        ("epsilons []", dict(epsilons=()), "empty"),
        ("epsilons [-1]", dict(epsilons=(-1,)), "-1"),
        ("n_examples 0", dict(n_examples=0), "0"),
        ("n_examples > len(x)", dict(n_examples=21), "21"),
        ("n_examples 2.5", dict(n_examples=2.5), "2.5"),
        ("no targets", dict(targets={}), "0 targets"),
        ("gradient_batch_size 0", dict(gradient_batch_size=0), "0"),
        ("bounds '01'", dict(bounds="01"), "'01'"),
        (
            "10-class source, 3-class target",
            dict(sources={"ten": ten}, y=np.where(y == 0, 9, y)),
            "10",
        ),
        ("3-class source, 10-class target", dict(targets={"ten": ten}), "10"),
    ):
        case(a, f"transfer_grid {label}", lambda k=kwargs: grid(**k), mentions=(mention,))
    case(
        a,
        "transfer_grid eps 0 = clean accuracy",
        lambda: grid(epsilons=(0.0,)),
        expect="ok",
        check=lambda rows: np.isclose(rows[0].accuracy, grids.accuracy(model, x[:10], y[:10])),
    )
    case(
        a,
        "accuracy batch_size 0",
        lambda: grids.accuracy(model, x, y, batch_size=0),
        mentions=("batch_size",),
    )
    case(
        a,
        "accuracy labels out of range",
        lambda: grids.accuracy(model, x, y + 5),
        mentions=("[0, 2]",),
    )
    case(
        a,
        "accuracy uint8 x",
        lambda: grids.accuracy(model, (x * 255).astype("uint8"), y),
        mentions=("uint8",),
    )
    case(
        a,
        "gradient_signs attack 'bogus'",
        lambda: grids.gradient_signs(model, x, y, attack="bogus", bounds=(0, 1)),
        mentions=("bogus",),
    )


add_penalty_cases()
add_attack_cases()
add_evaluation_cases()


@pytest.mark.parametrize("c", T.params())
def test_losses_attacks(c):
    """Refused clearly or handled correctly; fails on a silent, unclear or late outcome."""
    assert_refused_or_handled(c)
