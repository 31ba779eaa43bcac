"""Support for the bad-input case tables (``tests/test_bad_input_*.py``): the case record, the one
outcome classifier, tiny models and data, and the stubs that stand in for training and data loading.

Every case is an input the public API (numpy and ``tf.data`` paths, models, penalties, attacks,
evaluation, data loaders, the model cache and the experiment scripts' options) must either refuse
clearly or handle correctly. :func:`classify` sorts each outcome into one of five classes:

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

The tests pass only on ``clear`` and ``handled``. Cases are matched on the class of the outcome
and on any one of a few strings naming the received or expected value, never on a full message,
so a better-worded error keeps its case passing.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import io
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradreg_tf import data, training
from gradreg_tf.data.base import DIGITS, Dataset
from gradreg_tf.models import GradRegClassifier, NonFiniteLossError

REPO = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"

DOCUMENTED = (
    ValueError,
    TypeError,
    AttributeError,
    FileNotFoundError,
    NonFiniteLossError,
)
OUTCOMES = ("clear", "handled", "unclear", "silent", "late")
PASSING = ("clear", "handled")

# One scratch directory per test session for the cases' synthetic files. The case tables are
# built at collection time (their names are the test ids), and some cases name paths in it.
TMP = pathlib.Path(tempfile.mkdtemp(prefix="gradreg_bad_input_"))
atexit.register(shutil.rmtree, TMP, ignore_errors=True)


@pytest.fixture(scope="module")
def isolated_cache():
    """The model cache (``GRADREG_CACHE``) in the session's scratch directory, never the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADREG_CACHE", str(TMP / "cache"))
        yield TMP / "cache"


class WorkStarted(Exception):
    """Raised by the stubbed training: the script got past its checks."""


@dataclasses.dataclass
class Case:
    """One bad or edge input and what must happen to it."""

    area: str
    name: str
    run: Callable[[], Any]
    expect: str = "error"  # "error": must be refused; "ok": must work (see check)
    mentions: tuple = ()  # for "error": the message must contain one of these
    check: Callable[[Any], bool] | None = None  # for "ok" (or an accepted "error" case)

    @property
    def id(self) -> str:
        return f"{self.area}: {self.name}".replace(str(TMP), "<tmp>")


class CaseTable(list):
    """A list of :class:`Case`; ``table.add`` has the signature the case definitions use."""

    def add(self, area, name, run, *, expect="error", mentions=(), check=None):
        if expect not in ("error", "ok"):
            raise ValueError(f"expect must be 'error' or 'ok', received {expect!r}")
        self.append(Case(area, name, run, expect, tuple(str(m) for m in mentions), check))

    def params(self):
        """The cases as ``pytest.param``s, with ``area: name`` as the test id."""
        return [pytest.param(c, id=c.id) for c in self]


# ----------------------------------------------------------------------------- classification
class UsageError(Exception):
    """An argparse exit, with its status and message."""

    def __init__(self, code, message):
        super().__init__(message.strip().splitlines()[-1] if message.strip() else f"exit {code}")
        self.code = code


def classify(c: Case) -> tuple[str, str, str]:
    """Runs one case and classifies its outcome.

    Args:
        c: the case.

    Returns:
        ``(outcome, exception type, message)``; ``outcome`` is one of :data:`OUTCOMES`.
    """
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


def assert_refused_or_handled(c: Case) -> str:
    """Fails the calling test on a ``silent``, ``unclear`` or ``late`` outcome; returns it."""
    outcome, kind, message = classify(c)
    detail = " ".join(message.split())[:400]
    expected = (
        f"an error of a documented type naming one of {list(c.mentions)}"
        if c.expect == "error"
        else "no error and a correct result"
    )
    assert outcome in PASSING, (
        f"{outcome.upper()}: {c.id}\n  expected: {expected}\n  got: {kind or 'no exception'}: "
        f"{detail}"
    )
    return outcome


# ----------------------------------------------------------------------------- tiny models, data
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



def exploding_net():
    network = net()
    network.layers[-1].kernel.assign(network.layers[-1].kernel * 1e30)
    return network


# ----------------------------------------------------------------------------- stubs
@contextlib.contextmanager
def stub_training():
    """`training.train_recipe` replaced: reaching training (WorkStarted) means the checks passed."""
    original = training.train_recipe

    def refuse(*args, **kwargs):
        raise WorkStarted("training started")

    training.train_recipe = refuse
    try:
        yield
    finally:
        training.train_recipe = original



def run_script(script: str, argv):
    """``main(argv)`` with data loading and training stubbed: returns "work started" when the
    script got past its option checks, re-raises anything else (an argparse exit as
    :class:`UsageError`)."""
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
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

