"""Bad input to `GradRegClassifier`: construction, state, fit/evaluate on numpy and tf.data, layers.


A case table (``case(area, name, call, expect, mentions, check)``) judged by
``bad_input_support.classify``.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from bad_input_support import (
    SHAPE,
    CaseTable,
    K,
    SubNet,
    X,
    Y,
    assert_refused_or_handled,
    compiled,
    exploding_net,
    fit_ds,
    fit_numpy,
    fitted_weights_finite,
    net,
    softmax_net,
    with_nan,
)

from gradreg_tf.models import (
    GradRegClassifier,
    LocalContrastNormalization,
    mnist_cnn,
    svhn_cnn,
)

T = CaseTable()
case = T.add


# ----------------------------------------------------------------------------- cases: models
def add_model_cases():
    a = "model construction"
    for kwargs, mention in (
        (dict(penalty="gradnorm"), "gradnorm"),
        (dict(penalty=1), "1"),
        (dict(norm="l3"), "l3"),
        (dict(penalty_weight=-1), "-1"),
        (dict(penalty_weight=np.nan), "nan"),
        (dict(penalty_weight=np.inf), "inf"),
        (dict(penalty_weight=1e38), "1e+38"),
        (dict(penalty_weight="abc"), "abc"),
        (dict(temperature=0), "0"),
        (dict(temperature=-1), "-1"),
        (dict(temperature=np.nan), "nan"),
        (dict(temperature=np.inf), "inf"),
        (dict(adversarial_eps=-0.1), "-0.1"),
        (dict(adversarial_eps=np.nan), "nan"),
        (dict(adversarial_eps=0.1), "bounds"),
        (dict(adversarial_eps=0.1, bounds="01"), "'01'"),
        (dict(adversarial_eps=0.1, bounds=(1, 0)), "lower=1"),
        (dict(adversarial_eps=0.1, bounds=(0, np.nan)), "finite"),
    ):
        case(
            a,
            f"GradRegClassifier({kwargs})",
            lambda k=kwargs: GradRegClassifier(net(), **k),
            mentions=(mention,),
        )
    case(a, "network = a lambda", lambda: GradRegClassifier(lambda t: t), mentions=("function",))
    case(
        a,
        "network = a Dense layer",
        lambda: GradRegClassifier(keras.layers.Dense(3)),
        mentions=("Dense",),
    )
    case(a, "network with one logit", lambda: GradRegClassifier(net(1)), mentions=("(None, 1)",))
    case(
        a,
        "network ending in Dense(softmax)",
        lambda: GradRegClassifier(softmax_net()),
        mentions=("softmax",),
    )
    case(
        a,
        "network ending in a Softmax layer",
        lambda: GradRegClassifier(
            keras.Sequential(
                [
                    keras.Input(SHAPE),
                    keras.layers.Flatten(),
                    keras.layers.Dense(3),
                    keras.layers.Softmax(),
                ]
            )
        ),
        mentions=("softmax",),
    )

    def mixed():
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            return GradRegClassifier(net())
        finally:
            keras.mixed_precision.set_global_policy("float32")

    case(a, "mixed_float16 policy", mixed, mentions=("mixed_float16",))
    case(
        a,
        "bfloat16 layer",
        lambda: GradRegClassifier(
            keras.Sequential(
                [
                    keras.Input(SHAPE),
                    keras.layers.Flatten(),
                    keras.layers.Dense(3, dtype="mixed_bfloat16"),
                ]
            )
        ),
        mentions=("bfloat16",),
    )
    case(
        a,
        "λ = 1e5 (paper's largest)",
        lambda: GradRegClassifier(net(), penalty="double_backprop", penalty_weight=1e5),
        expect="ok",
        check=lambda m: m.penalty_weight == 1e5,
    )
    case(
        a,
        "subclassed network",
        lambda: GradRegClassifier(SubNet()),
        expect="ok",
        check=lambda m: isinstance(m, GradRegClassifier),
    )
    case(
        a,
        "float64 network",
        lambda: GradRegClassifier(
            keras.Sequential(
                [
                    keras.Input(SHAPE, dtype="float64"),
                    keras.layers.Flatten(dtype="float64"),
                    keras.layers.Dense(3, dtype="float64"),
                ]
            )
        ),
        expect="ok",
        check=lambda m: m is not None,
    )

    a = "model state"

    def assign(attr, value):
        model = fit_numpy(model_kwargs=dict(penalty="double_backprop", penalty_weight=1.0))
        setattr(model, attr, value)
        return model

    for attr, value in (
        ("penalty_weight", 100.0),
        ("temperature", 2.0),
        ("adversarial_eps", 0.1),
        ("penalty", "certainty"),
        ("norm", "l1"),
        ("bounds", (0, 1)),
        ("network", None),
    ):
        case(a, f"assign {attr} after fit", lambda t=attr, v=value: assign(t, v), mentions=(attr,))
    case(a, "replace(bogus=1)", lambda: compiled().replace(bogus=1), mentions=("bogus",))
    case(
        a,
        "replace(penalty_weight=-1)",
        lambda: compiled().replace(penalty_weight=-1),
        mentions=("-1",),
    )
    case(
        a,
        "replace(penalty_weight=10) trains with 10",
        lambda: compiled(penalty="double_backprop", penalty_weight=1.0).replace(
            penalty_weight=10.0
        ),
        expect="ok",
        check=lambda m: m.penalty_weight == 10.0 and m.penalty == "double_backprop",
    )

    a = "fit numpy"
    y_soft = np.full((32, K), 1 / K, "float32")
    for label, kwargs, mention in (
        ("uint8 images", dict(x=(X * 255).astype("uint8")), "uint8"),
        ("bool images", dict(x=X > 0.5), "bool"),
        ("NaN pixel", dict(x=with_nan(X)), "NaN"),
        ("inf pixel", dict(x=with_nan(X, np.inf)), "NaN"),
        ("wrong image shape", dict(x=X[:, :, :7]), "(32, 8, 7, 1)"),
        ("wrong rank", dict(x=X[..., 0]), "(32, 8, 8)"),
        ("empty batch", dict(x=X[:0], y=Y[:0]), "empty"),
        ("label out of range", dict(y=Y + 5), "[0, 2]"),
        ("negative label", dict(y=Y - 3), "[0, 2]"),
        ("non-integer labels", dict(y=Y + 0.5), "integer"),
        ("labels too short", dict(y=Y[:31]), "31"),
        ("string labels", dict(y=Y.astype(str)), "<U"),
        ("soft labels summing to 3", dict(y=y_soft * 3), "3"),
        ("soft labels with NaN", dict(y=with_nan(y_soft)), "NaN"),
        ("negative soft labels", dict(y=y_soft - [[0.5, 0, 0]] + [[0, 0.5, 0]]), "-0.1"),
        ("sample_weight", dict(sample_weight=np.ones(32)), "sample weight"),
        ("class_weight", dict(class_weight={0: 1.0, 1: 2.0, 2: 1.0}), "class weight"),
        ("x without y", dict(y=None), "labels"),
        (
            "λ huge on exploding weights",
            dict(
                model_kwargs=dict(
                    penalty="double_backprop", penalty_weight=1e9, network=exploding_net()
                )
            ),
            "non-finite",
        ),
    ):
        case(a, label, lambda k=kwargs: fit_numpy(**k), mentions=(mention,))
    case(
        a,
        "float64 images",
        lambda: fit_numpy(x=X.astype("float64")),
        expect="ok",
        check=fitted_weights_finite,
    )
    case(
        a,
        "labels of shape (N, 1)",
        lambda: fit_numpy(y=Y[:, None]),
        expect="ok",
        check=fitted_weights_finite,
    )
    case(a, "soft labels", lambda: fit_numpy(y=y_soft), expect="ok", check=fitted_weights_finite)
    case(
        a,
        "batch of 1",
        lambda: compiled().fit(X[:1], Y[:1], verbose=0),
        expect="ok",
        check=lambda h: np.isfinite(h.history["loss"][0]),
    )
    case(
        a,
        "subclassed network",
        lambda: fit_numpy(model_kwargs=dict(network=SubNet())),
        expect="ok",
        check=fitted_weights_finite,
    )
    case(
        a,
        "subclassed network, labels out of range",
        lambda: fit_numpy(y=Y + 5, model_kwargs=dict(network=SubNet())),
        mentions=("[0, 2]",),
    )
    case(
        a,
        "subclassed network returning probabilities",
        lambda: fit_numpy(model_kwargs=dict(network=SubNet(softmax=True))),
        mentions=("probabilities",),
    )
    case(
        a,
        "subclassed network with one logit",
        lambda: fit_numpy(y=Y * 0, model_kwargs=dict(network=SubNet(1))),
        mentions=("2 classes",),
    )

    def evaluate(**kwargs):
        return compiled().evaluate(kwargs.pop("x", X), kwargs.pop("y", Y), verbose=0, **kwargs)

    a = "evaluate numpy"
    for label, kwargs, mention in (
        ("uint8 images", dict(x=(X * 255).astype("uint8")), "uint8"),
        ("NaN pixel", dict(x=with_nan(X)), "NaN"),
        ("label out of range", dict(y=Y + 5), "[0, 2]"),
        ("sample_weight", dict(sample_weight=np.ones(32)), "sample weight"),
    ):
        case(a, label, lambda k=kwargs: evaluate(**k), mentions=(mention,))

    a = "fit tf.data"
    case(a, "uint8 images", lambda: fit_ds(x=(X * 255).astype("uint8")), mentions=("uint8",))
    case(a, "int32 images", lambda: fit_ds(x=(X * 255).astype("int32")), mentions=("int32",))
    case(a, "NaN pixel", lambda: fit_ds(x=with_nan(X)), mentions=("non-finite",))
    case(a, "inf pixel", lambda: fit_ds(x=with_nan(X, np.inf)), mentions=("non-finite",))
    case(a, "label out of range", lambda: fit_ds(y=Y + 5), mentions=("[0, 3)", "[0, 2]"))
    case(
        a,
        "sample weights",
        lambda: fit_ds(extra=np.ones(32, "float32")),
        mentions=("sample weight",),
    )
    case(
        a,
        "x only (no labels)",
        lambda: compiled().fit(tf.data.Dataset.from_tensor_slices(X).batch(16), verbose=0),
        mentions=("labels",),
    )
    case(a, "soft labels summing to 3", lambda: fit_ds(y=y_soft * 3), mentions=("sum",))
    case(
        a,
        "network returning probabilities",
        lambda: fit_ds(network=SubNet(softmax=True)),
        mentions=("probabilities",),
    )
    case(
        a,
        "generator of uint8 batches",
        lambda: compiled().fit(
            ((np.uint8(X[i : i + 8] * 255), Y[i : i + 8]) for i in range(0, 32, 8)),
            steps_per_epoch=4,
            verbose=0,
        ),
        mentions=("uint8",),
    )
    case(a, "float32 batches", lambda: fit_ds(), expect="ok", check=fitted_weights_finite)
    case(a, "soft labels", lambda: fit_ds(y=y_soft), expect="ok", check=fitted_weights_finite)

    a = "evaluate tf.data"
    ds = lambda x, y, *e: tf.data.Dataset.from_tensor_slices((x, y, *e)).batch(16)
    case(
        a,
        "uint8 images",
        lambda: compiled().evaluate(ds((X * 255).astype("uint8"), Y), verbose=0),
        mentions=("uint8",),
    )
    case(
        a,
        "sample weights",
        lambda: compiled().evaluate(ds(X, Y, np.ones(32, "float32")), verbose=0),
        mentions=("sample weight",),
    )

    a = "layers/architectures"
    for label, fn, mention in (
        ("LCN radius 0", lambda: LocalContrastNormalization(radius=0), "radius"),
        ("LCN sigma 0", lambda: LocalContrastNormalization(sigma=0), "sigma"),
        ("LCN sigma -1", lambda: LocalContrastNormalization(sigma=-1), "sigma"),
        (
            "LCN on RGB",
            lambda: LocalContrastNormalization()(tf.zeros((1, 8, 8, 3))),
            "(1, 8, 8, 3)",
        ),
        ("mnist_cnn(n_classes=1)", lambda: mnist_cnn(n_classes=1), "1"),
        ("mnist_cnn(n_classes=2.5)", lambda: mnist_cnn(n_classes=2.5), "2.5"),
        ("mnist_cnn(input_shape=(28, 28))", lambda: mnist_cnn(input_shape=(28, 28)), "(28, 28)"),
        (
            "svhn_cnn(input_shape=(32, 32, 3))",
            lambda: svhn_cnn(input_shape=(32, 32, 3)),
            "(32, 32, 3)",
        ),
    ):
        case(a, label, fn, mentions=(mention,))

    def lcn_double_backprop(x):
        x = tf.constant(x)
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                out = tf.reduce_sum(
                    LocalContrastNormalization()(x) * tf.range(64.0)[None, :, None, None][:, :8]
                )
            pen = tf.reduce_sum(inner.gradient(out, x) ** 2)
        return outer.gradient(pen, x)

    for label, img in (
        ("zeros", np.zeros((2, 8, 8, 1), "float32")),
        ("constant", np.full((2, 8, 8, 1), 0.3, "float32")),
    ):
        case(
            a,
            f"LCN second derivative on a {label} image",
            lambda i=img: lcn_double_backprop(i),
            expect="ok",
            check=lambda gg: bool(np.all(np.isfinite(gg.numpy()))),
        )


add_model_cases()


@pytest.mark.parametrize("c", T.params())
def test_models(c):
    """Refused clearly or handled correctly; fails on a silent, unclear or late outcome."""
    assert_refused_or_handled(c)
