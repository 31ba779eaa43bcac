"""Sweep of bad and edge inputs across the public API: how each one is handled.

    python bench/bad_input_sweep.py [--out results/bad_input_sweep.csv] [--only AREA]

Tries a few hundred cheap inputs (tiny models, tiny arrays, synthetic files; no real
training) on numpy and ``tf.data`` paths, the models, penalties, attacks, evaluation, data
loaders, the model cache and the experiment scripts' options (``main([...])`` with the
dataset and the training replaced by stubs), and classifies every outcome automatically:

* ``clear``: an exception of a documented type (``ValueError`` and its subclasses such as
  ``DataError``, ``TypeError``, ``AttributeError``, ``FileNotFoundError``,
  ``NonFiniteLossError``, or an argparse usage error, exit status 2) whose message contains
  the received value or the expected one (each case lists the strings that count);
* ``handled``: no exception and the per-case check of the result passes (correct behaviour,
  e.g. an edge input that must work, or an empty cache variable treated as unset);
* ``unclear``: any other exception (another type, or a message naming neither value);
* ``silent``: no exception but the per-case check fails (a wrong result);
* ``late``: a script option that is only refused after the expensive work started (the
  stubbed training was reached).

Prints the counts per area and overall, lists every unclear/silent/late case, and writes one
CSV row per case (area, case, expected, outcome, exception type, message).

Measured (472 cases, 7 min on the 2-core machine with a training job running): 426 clear,
46 handled, 0 unclear, 0 silent, 0 late. The previous run (417 clear, 1 unclear, 6 silent,
2 late) found the attacks accepting single-logit and probability models, unchecked soft labels
from ``tf.data`` and ``transfer.py --epsilons`` refused late; all are now refused up front.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import gzip
import io
import json
import os
import pathlib
import sys
import tempfile
import time
import traceback
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import gradreg_tf as g  # noqa: E402
from gradreg_tf import (
    _checks,
    attacks,
    cache,
    cli,
    data,
    evaluation,
    penalties,
    recipes,
)  # noqa: E402
from gradreg_tf import training, zoo  # noqa: E402
from gradreg_tf.data import mnist, notmnist, svhn  # noqa: E402
from gradreg_tf.data.base import DIGITS, Dataset  # noqa: E402
from gradreg_tf.models import (
    GradRegClassifier,
    LocalContrastNormalization,
    NonFiniteLossError,
)  # noqa: E402
from gradreg_tf.models import mnist_cnn, svhn_cnn  # noqa: E402

DOCUMENTED = (
    ValueError,
    TypeError,
    AttributeError,
    FileNotFoundError,
    NonFiniteLossError,
)
OUTCOMES = ("clear", "handled", "unclear", "silent", "late")


class WorkStarted(Exception):
    """Raised by the stubbed training: the script got past its checks."""


@dataclasses.dataclass
class Case:
    area: str
    name: str
    run: Callable[[], Any]
    expect: str = "error"  # "error": must be refused; "ok": must work (see check)
    mentions: tuple = ()  # for "error": the message must contain one of these
    check: Callable[[Any], bool] | None = None  # for "ok" (or an accepted "error" case)


CASES: list[Case] = []


def case(area, name, run, *, expect="error", mentions=(), check=None):
    CASES.append(Case(area, name, run, expect, tuple(str(m) for m in mentions), check))


# ----------------------------------------------------------------------------- fixtures
SHAPE = (8, 8, 1)
K = 3
RNG = np.random.default_rng(0)
X = RNG.uniform(0, 1, (32,) + SHAPE).astype("float32")
Y = RNG.integers(0, K, 32)


def net(units=K, activation=None, shape=SHAPE):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation=activation),
        ]
    )


def softmax_net():
    return net(activation="softmax")


def compiled(network=None, **kwargs):
    model = GradRegClassifier(network if network is not None else net(), **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    return model


class SubNet(keras.Model):
    def __init__(self, units=K, softmax=False):
        super().__init__()
        self.flat, self.dense, self.softmax = (
            keras.layers.Flatten(),
            keras.layers.Dense(units),
            softmax,
        )

    def call(self, x, training=False):
        out = self.dense(self.flat(x))
        return tf.nn.softmax(out) if self.softmax else out


def with_nan(x, value=np.nan):
    bad = np.array(x, copy=True)
    bad.flat[5] = value
    return bad


def fitted_weights_finite(model):
    return all(np.all(np.isfinite(w)) for w in model.network.get_weights())


def fit_numpy(x=X, y=Y, **kwargs):
    model = compiled(**kwargs.pop("model_kwargs", {}))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, **kwargs)
    return model


def fit_ds(x=X, y=Y, extra=None, **model_kwargs):
    model = compiled(**model_kwargs)
    parts = (x, y) if extra is None else (x, y, extra)
    model.fit(tf.data.Dataset.from_tensor_slices(parts).batch(16), epochs=1, verbose=0)
    return model


def tiny_dataset(name="mnist"):
    rng = np.random.default_rng(1)
    shape = (32, 32, 1) if name == "svhn" else (28, 28, 1)
    lo, hi = (-0.5, 0.5) if name == "notmnist" else (0.0, 1.0)

    def images(n):
        return rng.uniform(lo, hi, (n,) + shape).astype("float32")

    return Dataset(
        name=name,
        x_train=images(64),
        y_train=np.arange(64) % 10,
        x_test=images(100),
        y_test=np.arange(100) % 10,
        x_valid=images(0),
        y_valid=np.zeros(0, int),
        bounds=(lo, hi),
        class_names=DIGITS if name != "notmnist" else tuple("ABCDEFGHIJ"),
        source="synthetic (sweep)",
    )


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
                    penalty="double_backprop", penalty_weight=1e9, network=_exploding_net()
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
    ds = lambda x, y, *e: tf.data.Dataset.from_tensor_slices((x, y, *e)).batch(16)  # noqa: E731
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


def _exploding_net():
    network = net()
    network.layers[-1].kernel.assign(network.layers[-1].kernel * 1e30)
    return network


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
        return evaluation.transfer_grid(
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
        check=lambda rows: np.isclose(rows[0].accuracy, evaluation.accuracy(model, x[:10], y[:10])),
    )
    case(
        a,
        "accuracy batch_size 0",
        lambda: evaluation.accuracy(model, x, y, batch_size=0),
        mentions=("batch_size",),
    )
    case(
        a,
        "accuracy labels out of range",
        lambda: evaluation.accuracy(model, x, y + 5),
        mentions=("[0, 2]",),
    )
    case(
        a,
        "accuracy uint8 x",
        lambda: evaluation.accuracy(model, (x * 255).astype("uint8"), y),
        mentions=("uint8",),
    )
    case(
        a,
        "gradient_signs attack 'bogus'",
        lambda: evaluation.gradient_signs(model, x, y, attack="bogus", bounds=(0, 1)),
        mentions=("bogus",),
    )


# ----------------------------------------------------------------------------- cases: data
def _mnist_files(directory, n_train=6, n_test=4, gz=True):
    rng = np.random.default_rng(0)
    arrays = {
        mnist.TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        mnist.TRAIN_LABELS: rng.integers(0, 10, n_train).astype(np.uint8),
        mnist.TEST_IMAGES: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        mnist.TEST_LABELS: rng.integers(0, 10, n_test).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        raw = mnist.MAGIC[name].to_bytes(4, "big") + b"".join(
            d.to_bytes(4, "big") for d in arr.shape
        )
        raw += arr.tobytes()
        path = directory / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(raw) if gz else raw)
    return directory


def add_data_cases(tmp: pathlib.Path, shared: pathlib.Path | None):
    a = "data"
    for name in ("cifar", None, 3, ""):
        case(a, f"load({name!r})", lambda n=name: data.load(n), mentions=(repr(name),))
    case(
        a,
        "load('MNIST') case-insensitive",
        lambda: data.load("MNIST", data_dir=_mnist_files(tmp / "m0", n_train=5010)),
        expect="ok",
        check=lambda d: d.name == "mnist",
    )
    for seed in (-1, 1.5, True, "0"):
        case(
            a,
            f"load(seed={seed!r})",
            lambda s=seed: data.load("notmnist", seed=s),
            mentions=(repr(seed),),
        )
    case(
        a,
        "data_dir missing",
        lambda: data.load("mnist", data_dir=tmp / "nowhere"),
        mentions=("nowhere",),
    )
    a_file = tmp / "a_file"
    a_file.write_text("x")
    case(a, "data_dir is a file", lambda: data.load("mnist", data_dir=a_file), mentions=("a_file",))

    def corrupt_mnist(how):
        d = _mnist_files(tmp / f"m_{how}")
        path = d / f"{mnist.TRAIN_IMAGES}.gz"
        raw = path.read_bytes()
        if how == "truncated gz":
            path.write_bytes(raw[: len(raw) // 2])
        elif how == "not gzip":
            path.write_bytes(b"hello world")
        elif how == "wrong magic":
            body = gzip.decompress(raw)
            path.write_bytes(gzip.compress((2049).to_bytes(4, "big") + body[4:]))
        elif how == "short content":
            path.write_bytes(gzip.compress(gzip.decompress(raw)[:-10]))
        elif how == "test copied to train":
            for tr, te in (
                (mnist.TRAIN_IMAGES, mnist.TEST_IMAGES),
                (mnist.TRAIN_LABELS, mnist.TEST_LABELS),
            ):
                (d / f"{tr}.gz").write_bytes((d / f"{te}.gz").read_bytes())
        elif how == "label file missing":
            (d / f"{mnist.TRAIN_LABELS}.gz").unlink()
        return mnist.load_mnist(data_dir=d, validation_size=1)

    for how in (
        "truncated gz",
        "not gzip",
        "wrong magic",
        "short content",
        "test copied to train",
        "label file missing",
    ):
        case(
            a,
            f"mnist {how}",
            lambda h=how: corrupt_mnist(h),
            mentions=(mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS),
        )
    case(
        a,
        "mnist validation_size -1",
        lambda: mnist.load_mnist(data_dir=_mnist_files(tmp / "m1"), validation_size=-1),
        mentions=("-1",),
    )
    case(
        a,
        "mnist validation_size = N",
        lambda: mnist.load_mnist(data_dir=_mnist_files(tmp / "m2"), validation_size=6),
        mentions=("6",),
    )
    if shared is not None and (shared / "mnist").is_dir():

        def official_test_as_train():
            d = tmp / "m_official"
            d.mkdir(exist_ok=True)
            for name in mnist.FILES:
                (d / f"{name}.gz").write_bytes((shared / "mnist" / f"{name}.gz").read_bytes())
            (d / f"{mnist.TRAIN_IMAGES}.gz").write_bytes(
                (shared / "mnist" / f"{mnist.TEST_IMAGES}.gz").read_bytes()
            )
            (d / f"{mnist.TRAIN_LABELS}.gz").write_bytes(
                (shared / "mnist" / f"{mnist.TEST_LABELS}.gz").read_bytes()
            )
            return mnist.load_mnist(data_dir=d)

        case(
            a,
            "mnist official test files under train names",
            official_test_as_train,
            mentions=(mnist.TRAIN_IMAGES,),
        )

    bundled = data._locate.BUNDLED_DIR / "notmnist" / "notMNIST_small.npz"

    def bad_npz(how):
        d = tmp / f"n_{how.replace(' ', '_')}"
        d.mkdir(exist_ok=True)
        raw = bundled.read_bytes()
        path = d / "notMNIST_small.npz"
        if how == "truncated":
            path.write_bytes(raw[: len(raw) // 2])
        elif how == "zeroed middle":
            mid = len(raw) // 2
            path.write_bytes(raw[:mid] + bytes(64) + raw[mid + 64 :])
        elif how == "garbage":
            path.write_bytes(b"not a zip file at all")
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "wrong arrays":
            np.savez(path, a=np.zeros(3))
        elif how == "float images":
            np.savez(path, x=np.zeros((30, 28, 28)), y=np.arange(30) % 10)
        elif how == "labels 0..12":
            np.savez(path, x=np.zeros((30, 28, 28), np.uint8), y=np.arange(30) % 13)
        return notmnist.load_notmnist(data_dir=d, test_per_class=1)

    for how in (
        "truncated",
        "zeroed middle",
        "garbage",
        "empty",
        "wrong arrays",
        "float images",
        "labels 0..12",
    ):
        case(
            a,
            f"notMNIST_small.npz {how}",
            lambda h=how: bad_npz(h),
            mentions=("notMNIST_small.npz",),
        )
    for key in ("test_per_class", "valid_per_class", "train_per_class"):
        case(
            a, f"notmnist {key}=0", lambda k=key: notmnist.load_notmnist(**{k: 0}), mentions=(key,)
        )

    def svhn_files(how):
        import scipy.io

        d = tmp / f"s_{how.replace(' ', '_')}"
        d.mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        for name, n in ((svhn.TRAIN, 40), (svhn.TEST, 9)):
            labels = np.arange(n) % 10 + 1
            scipy.io.savemat(
                d / name,
                {
                    "X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                    "y": labels[:, None].astype(np.uint8),
                },
            )
        if how == "test copied to train":
            (d / svhn.TRAIN).write_bytes((d / svhn.TEST).read_bytes())
        elif how == "garbage train":
            (d / svhn.TRAIN).write_bytes(b"garbage")
        elif how == "labels 0..9":
            scipy.io.savemat(
                d / svhn.TEST,
                {"X": np.zeros((32, 32, 3, 9), np.uint8), "y": (np.arange(9) % 10)[:, None]},
            )
        elif how == "RGB wrong shape":
            scipy.io.savemat(
                d / svhn.TEST,
                {"X": np.zeros((28, 28, 3, 9), np.uint8), "y": (np.arange(9) % 10 + 1)[:, None]},
            )
        return svhn.load_svhn(data_dir=d, valid_per_class_train=1, valid_per_class_extra=1)

    for how in ("test copied to train", "garbage train", "labels 0..9", "RGB wrong shape"):
        case(a, f"svhn {how}", lambda h=how: svhn_files(h), mentions=(svhn.TRAIN, svhn.TEST))
    case(a, "svhn train_limit 0", lambda: svhn.load_svhn(train_limit=0), mentions=("train_limit",))


# ----------------------------------------------------------------------------- cases: cache/zoo
def add_cache_cases(tmp: pathlib.Path):
    a = "cache"

    @contextlib.contextmanager
    def env(**values):
        old = {k: os.environ.get(k) for k in values}
        os.environ.update({k: v for k, v in values.items()})
        try:
            yield
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)

    def empty_variable():
        with env(GRADREG_CACHE="", XDG_CACHE_HOME=str(tmp / "xdg")):
            return cache.cache_dir()

    case(
        a,
        "GRADREG_CACHE=''",
        empty_variable,
        expect="ok",
        check=lambda p: p == tmp / "xdg" / "gradreg_tf",
    )
    a_file = tmp / "cache_file"
    a_file.write_text("x")
    case(a, "cache_dir is a file", lambda: cache.cache_dir(a_file), mentions=("cache_file",))

    def failing_writer():
        target = tmp / "w" / "m.keras"

        def write(tmp_path):
            pathlib.Path(tmp_path).write_bytes(b"half")
            raise OSError("disk full")

        try:
            cache.atomic_write(target, write)
        except OSError:
            pass
        return target

    case(
        a,
        "writer fails midway",
        failing_writer,
        expect="ok",
        check=lambda t: not t.exists() and not list(t.parent.glob(".m.*")),
    )

    def stale_temp():
        d = tmp / "stale"
        d.mkdir()
        leftover = d / ".m.abcd1234.keras"
        leftover.write_bytes(b"half")
        old = time.time() - cache.STALE_TEMP_SECONDS - 1
        os.utime(leftover, (old, old))
        cache.atomic_write(d / "m.keras", lambda p: pathlib.Path(p).write_bytes(b"ok"))
        return leftover

    case(a, "a killed save's temp file", stale_temp, expect="ok", check=lambda p: not p.exists())

    a = "zoo"
    ds = tiny_dataset()

    def corrupt_sidecar():
        import warnings

        root = tmp / "zoo_cache"
        path = zoo.cached_model_path(ds, "normal", n_batches=1, cache_dir=root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a model")
        path.with_suffix(".json").write_text("{corrupt")
        with stub_training(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                zoo.trained_model(ds, "normal", n_batches=1, cache_dir=root, progress=False)
            except WorkStarted:
                return {"retrained": True, "warnings": [str(w.message) for w in caught]}
        return {"retrained": False, "warnings": []}

    # the zoo promises to report a corrupt cached model and retrain it
    case(
        a,
        "corrupt .json sidecar: reported and retrained",
        corrupt_sidecar,
        expect="ok",
        check=lambda r: r["retrained"]
        and any(path_name in w for w in r["warnings"] for path_name in (".json", ".keras")),
    )
    for label, kwargs, mention in (
        ("seed -1", dict(seed=-1), "-1"),
        ("model 'bogus'", dict(model="bogus"), "bogus"),
        ("budget 'huge'", dict(budget="huge"), "huge"),
        ("n_batches 0", dict(n_batches=0), "0"),
    ):

        def run(k=kwargs):
            with stub_training():
                return zoo.trained_model(
                    ds, k.pop("model", "normal"), cache_dir=tmp / "zoo2", progress=False, **k
                )

        case(a, f"trained_model {label}", run, mentions=(mention,))


@contextlib.contextmanager
def stub_training():
    """Training and data loading replaced: reaching training means the checks were passed."""
    original = training.train_recipe

    def refuse(*args, **kwargs):
        raise WorkStarted("training started")

    training.train_recipe = refuse
    try:
        yield
    finally:
        training.train_recipe = original


# ----------------------------------------------------------------------------- cases: scripts
SCRIPT_OPTIONS = {  # script -> its own numeric options (tried with bad values)
    "adversarial_examples": ("--eps", "--n-images"),
    "clean_accuracy": ("--n-test",),
    "gradient_maps": ("--n-classes", "--offset"),
    "gradient_norms": (),
    "insensitive_variants": (),
    "jsma_grids": ("--theta", "--gamma", "--n-classes", "--batch-size"),
    "lambda_sweep": ("--points",),
    "logprob_histograms": ("--bins",),
    "tgsm_grids": ("--eps", "--steps", "--n-per-class"),
    "train_models": (),
    "training_curves": ("--max-batch",),
    "transfer": ("--n-examples",),
    "venn_overlaps": ("--eps", "--n-examples"),
}
BAD_NUMBERS = {
    "--eps": ("-1", "nan", "inf"),
    "--n-images": ("0", "-3"),
    "--n-test": ("0", "x"),
    "--n-classes": ("0",),
    "--offset": ("-1",),
    "--theta": ("nan",),
    "--gamma": ("0", "2"),
    "--batch-size": ("0",),
    "--points": ("0",),
    "--bins": ("0",),
    "--steps": ("0",),
    "--n-per-class": ("0",),
    "--max-batch": ("0",),
    "--n-examples": ("0", "-5", "x"),
}


def add_script_cases(tmp: pathlib.Path):
    sys.path.insert(0, str(REPO / "experiments"))
    a_file = tmp / "out_file"
    a_file.write_text("x")
    common = {
        "--batches": ("0", "-5", "abc"),
        "--seed": ("-1",),
        "--dataset": ("cifar",),
        "--budget": ("huge",),
        "--strategy": ("bogus",),
        "--out": (str(a_file), "/proc/version/x"),
        "--cache-dir": (str(a_file),),
        "--data-dir": (str(tmp / "missing"),),
    }
    specific = {
        "transfer": {"--attacks": ("pgd",), "--epsilons": ("a,b", "-1", "nan")},
        "venn_overlaps": {"--attacks": ("pgd",)},
        "lambda_sweep": {"--kinds": ("bogus",)},
        "train_models": {"--models": ("bogus",)},
    }
    for script, own in SCRIPT_OPTIONS.items():
        options = dict(common)
        options.update({o: BAD_NUMBERS[o] for o in own})
        options.update(specific.get(script, {}))
        for option, values in options.items():
            if script in ("train_models",) and option == "--out":
                values = values[:1]
            for value in values:
                argv = [option, value] + ([] if option == "--out" else ["--out", str(tmp / "o")])
                mention = value
                case(
                    f"script {script}",
                    f"{option} {value}",
                    lambda s=script, v=argv: run_script(s, v),
                    mentions=(mention, option),
                )
        case(
            f"script {script}",
            "valid options reach the work",
            lambda s=script: run_script(s, ["--batches", "1", "--out", str(tmp / "o")]),
            expect="ok",
            check=lambda r: r == "work started",
        )


def run_script(script: str, argv):
    """``main(argv)`` with data loading and training stubbed: returns "work started" when the
    script got past its option checks, re-raises anything else."""
    module = __import__(script)
    original = data.load
    data.load = lambda name, **k: tiny_dataset(name)
    err = io.StringIO()
    try:
        with stub_training(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(
            io.StringIO()
        ):
            try:
                module.main(list(argv))
            except WorkStarted:
                return "work started"
            except SystemExit as exit_:
                raise UsageError(exit_.code, err.getvalue()) from None
        return "finished"
    finally:
        data.load = original


class UsageError(Exception):
    """An argparse exit, with its status and message."""

    def __init__(self, code, message):
        super().__init__(message.strip().splitlines()[-1] if message.strip() else f"exit {code}")
        self.code = code


# ----------------------------------------------------------------------------- classification
def classify(c: Case):
    try:
        result = c.run()
    except WorkStarted as err:
        return ("late" if c.expect == "error" else "handled"), type(err).__name__, str(err)
    except UsageError as err:
        documented = err.code == 2
        message = str(err)
        if c.expect == "ok":
            return "unclear", "SystemExit", message
        named = any(m.lower() in message.lower() for m in c.mentions)
        return ("clear" if documented and named else "unclear"), f"SystemExit({err.code})", message
    except Exception as err:  # noqa: BLE001 - classifying every outcome is the point
        message = f"{err}"
        if c.expect == "ok":
            return "unclear", type(err).__name__, message
        named = any(m.lower() in message.lower() for m in c.mentions)
        return (
            ("clear" if isinstance(err, DOCUMENTED) and named else "unclear"),
            type(err).__name__,
            message,
        )
    if c.expect == "ok" or (c.check is not None and c.expect == "error"):
        try:
            ok = bool(c.check(result)) if c.check is not None else True
        except Exception as err:  # noqa: BLE001
            return "silent", "", f"check failed: {type(err).__name__}: {err}"
        return (
            ("handled" if ok else "silent"),
            "",
            "" if ok else f"wrong result: {str(result)[:100]}",
        )
    if isinstance(result, str) and result == "work started":
        return "late", "", "accepted; the work started"
    return "silent", "", f"accepted without error (returned {type(result).__name__})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/bad_input_sweep.csv", help="CSV of every case")
    p.add_argument("--only", default=None, help="run only areas containing this text")
    p.add_argument(
        "--data-dir",
        default=os.environ.get("GRADREG_DATA_DIR", str(REPO.parent / "shared" / "data")),
        help="real data, for the official-files cases (skipped when missing)",
    )
    args = p.parse_args(argv)
    tf.get_logger().setLevel("ERROR")
    import warnings

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="bad_input_sweep_") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        os.environ["GRADREG_CACHE"] = str(tmp / "cache")
        shared = pathlib.Path(args.data_dir) if pathlib.Path(args.data_dir).is_dir() else None
        os.environ.setdefault("GRADREG_DATA_DIR", str(shared) if shared else "")
        add_check_cases()
        add_model_cases()
        add_penalty_cases()
        add_attack_cases()
        add_evaluation_cases()
        add_data_cases(tmp, shared)
        add_cache_cases(tmp)
        add_script_cases(tmp)
        cases = [c for c in CASES if args.only is None or args.only in c.area]
        rows = []
        start = time.time()
        for c in cases:
            outcome, kind, message = classify(c)
            rows.append(
                {
                    "area": c.area,
                    "case": c.name,
                    "expected": c.expect,
                    "outcome": outcome,
                    "exception": kind,
                    "message": " ".join(message.split())[:300],
                }
            )
        seconds = time.time() - start
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    areas = sorted({r["area"] for r in rows}, key=lambda s: [r["area"] for r in rows].index(s))
    print(f"{'area':32s}" + "".join(f"{o:>9s}" for o in OUTCOMES) + f"{'total':>8s}")
    for area in areas + ["ALL"]:
        sel = [r for r in rows if area in ("ALL", r["area"])]
        print(
            f"{area:32s}"
            + "".join(f"{sum(r['outcome'] == o for r in sel):9d}" for o in OUTCOMES)
            + f"{len(sel):8d}"
        )
    print(f"\n{len(rows)} cases in {seconds:.0f} s; CSV: {out}")
    for r in rows:
        if r["outcome"] in ("unclear", "silent", "late"):
            where = f"{r['area']}: {r['case']}"
            print(f"  {r['outcome']:8s} {where} -> {r['exception']}: {r['message'][:160]}")
    return rows


if __name__ == "__main__":
    main()
