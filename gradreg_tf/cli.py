"""Shared command-line options of the experiment scripts (thin ``main(argv)`` wrappers).

:func:`parser` returns a :class:`Parser`, which checks every option before any work starts:

* numbers: an option declared ``type=float`` or ``type=int`` is parsed by the checker that
  :data:`OPTION_TYPES` names for it (e.g. ``--eps``: a finite number >= 0), else by
  :func:`finite_float` / :func:`nonnegative_int`, so ``--eps -1``, ``--eps nan`` or
  ``--seed -1`` exit with a usage error (status 2) naming the option and the value;
* directories: ``--out`` and ``--cache-dir`` are created and a file is written to and removed
  from each (so a path that is a file, or an unwritable directory, fails at once instead of
  after every model was trained), and ``--data-dir`` must be an existing directory.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import tempfile

from gradreg_tf import _startup
from gradreg_tf.recipes import Budget

STRATEGIES = {
    "default": lambda: None,
    "mirrored": lambda: __import__("tensorflow").distribute.MirroredStrategy(),
    "multiworker": lambda: __import__("tensorflow").distribute.MultiWorkerMirroredStrategy(),
}


def _number(text, kind, what: str, ok) -> int | float:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {what}, received {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, received {text!r}")
    return value


def finite_float(text) -> float:
    """argparse type: any finite number (NaN and infinities are refused)."""
    return _number(text, float, "a finite number", math.isfinite)


def nonnegative_float(text) -> float:
    """argparse type: a finite number >= 0 (e.g. a perturbation size)."""
    return _number(text, float, "a finite number >= 0", lambda v: math.isfinite(v) and v >= 0)


def fraction(text) -> float:
    """argparse type: a number in (0, 1]."""
    return _number(text, float, "a number in (0, 1]", lambda v: 0 < v <= 1)


def positive_int(text) -> int:
    """argparse type: an integer >= 1 (a count or a size)."""
    return _number(text, int, "an integer >= 1", lambda v: v >= 1)


def nonnegative_int(text) -> int:
    """argparse type: an integer >= 0 (a seed or an offset)."""
    return _number(text, int, "an integer >= 0", lambda v: v >= 0)


def nonnegative_floats(text) -> tuple[float, ...]:
    """argparse type: one or more comma-separated finite numbers >= 0 (e.g. ``0,0.1,0.3``)."""
    try:
        return tuple(nonnegative_float(part.strip()) for part in str(text).split(","))
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated finite numbers >= 0, received {text!r} ({err})") from None


def check_names(p: argparse.ArgumentParser, text: str, choices, *, option: str,
                lower: bool = False) -> tuple[str, ...]:
    """The comma-separated names of option ``option`` (its value ``text``), each one of
    ``choices``; ``lower``: compared in lower case. The option keeps its text, so a script's
    recorded options do not change.

    Returns:
        The names, in the order given.

    Raises:
        SystemExit: ``p.error`` (exit status 2) for an unknown name or none at all.
    """
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    names = [n.lower() for n in names] if lower else names
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        p.error(f"{option}: unknown {unknown or names}; choose from {', '.join(choices)}")
    return tuple(names)


def check_count_or_all(p: argparse.ArgumentParser, text: str, *, option: str) -> int | str:
    """The value of a count option that also takes ``all`` (kept as text in the options).

    Returns:
        ``"all"`` or the count (an integer >= 1).

    Raises:
        SystemExit: ``p.error`` (exit status 2) for anything else.
    """
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        p.error(f"{option} must be a positive integer or 'all', received {text!r}")
    return value


OPTION_TYPES = {
    "--eps": nonnegative_float,
    "--gamma": fraction,
    "--seed": nonnegative_int,
    "--offset": nonnegative_int,
    **{name: positive_int for name in (
        "--batches", "--n-test", "--n-images", "--n-classes", "--n-examples", "--n-per-class",
        "--batch-size", "--points", "--bins", "--steps", "--max-batch")},
}
"""Checker of each numeric option by name; other ``float``/``int`` options get
:func:`finite_float`/:func:`nonnegative_int`."""

DEFAULT_TYPES = {float: finite_float, int: nonnegative_int}


def check_output_dir(path, *, option: str = "--out") -> pathlib.Path:
    """Creates ``path`` if needed and checks that a file can be written in it.

    Args:
        path: the directory.
        option: the option name used in the error message.

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: naming ``path`` if it is a file or cannot be created or written to.
    """
    out = pathlib.Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a file, expected a directory.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{option} {str(path)!r} is not a writable directory "
                         f"({type(err).__name__}: {err.strerror or err}).") from None
    return out


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` that checks numbers by option name and the directories up front.

    See the module docstring; a failed check is a usage error (exit status 2).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for kind, check in DEFAULT_TYPES.items():  # also reaches argument groups
            self.register("type", kind, check)

    def add_argument(self, *names, **kwargs):
        if kwargs.get("type") in DEFAULT_TYPES:
            kwargs["type"] = next((OPTION_TYPES[n] for n in names if n in OPTION_TYPES),
                                  DEFAULT_TYPES[kwargs["type"]])
        return super().add_argument(*names, **kwargs)

    default_dataset = "mnist"
    """The dataset whose :func:`default_budget` applies when the parser has no ``--dataset``."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extra = super().parse_known_args(args, namespace)
        if getattr(namespace, "budget", Budget.PAPER.value) is None:
            namespace.budget = default_budget(getattr(namespace, "dataset", self.default_dataset))
        try:
            for dest, option in (("out", "--out"), ("cache_dir", "--cache-dir")):
                if getattr(namespace, dest, None) is not None:
                    check_output_dir(getattr(namespace, dest), option=option)
            data_dir = getattr(namespace, "data_dir", None)
            if data_dir is not None and not pathlib.Path(data_dir).expanduser().is_dir():
                raise ValueError(f"--data-dir {data_dir!r} is not a directory.")
        except ValueError as err:
            self.error(str(err))
        return namespace, extra


DEFAULT_BUDGETS = {"notmnist": Budget.REDUCED.value}
"""``--budget`` when none is given, by dataset (else ``paper``). notMNIST: the bundled and usual
training data is notMNIST_small (8,724 training images, 23 times fewer than the paper's
notMNIST_large), on which the paper's schedule overfits instead of reproducing; the reduced
budget is the setup the README reports."""


def default_budget(dataset: str) -> str:
    """The ``--budget`` used on ``dataset`` when none is given (:data:`DEFAULT_BUDGETS`)."""
    return DEFAULT_BUDGETS.get(dataset, Budget.PAPER.value)


def parser(description: str, *, dataset: bool = True, default_dataset: str = "mnist",
           out: str = "figures") -> Parser:
    """A :class:`Parser` with the options every experiment shares."""
    p = Parser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.default_dataset = default_dataset
    if dataset:
        p.add_argument("--dataset", default=default_dataset, choices=("mnist", "notmnist", "svhn"))
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget", default=None, choices=[b.value for b in Budget],
                        help="training budget: the paper's schedule, the reduced one, or ~1 epoch "
                             "(default: paper; notmnist: reduced, see default_budget)")
    budget.add_argument("--quick", action="store_const", dest="budget", const=Budget.QUICK.value,
                        help="same as --budget quick")
    p.add_argument("--batches", type=int, default=None,
                   help="nominal training batches per model (overrides --budget)")
    p.add_argument("--data-dir", default=None,
                   help="directory with the official dataset files (else $GRADREG_DATA_DIR, "
                        "else the bundled copy / tensorflow-datasets)")
    p.add_argument("--cache-dir", default=None,
                   help="trained-model cache (else $GRADREG_CACHE or ~/.cache/gradreg_tf)")
    p.add_argument("--out", default=out, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--strategy", default="default", choices=tuple(STRATEGIES),
                   help="tf.distribute strategy for training (multiworker reads TF_CONFIG)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="hide progress bars")
    return p


def quiet_tensorflow() -> None:
    """Quiet TensorFlow start-up, and one line naming the device when run as a script.

    The quiet import itself happens when ``gradreg_tf`` is first imported (which this module
    does), before TensorFlow is: see :mod:`gradreg_tf._startup`; the user's own
    ``TF_CPP_MIN_LOG_LEVEL`` wins. The device line (standard error) is printed once, and only
    when ``__main__`` is an ``experiments/`` script or a ``python -m gradreg_tf...`` module.
    """
    _startup.quiet_tensorflow()  # a no-op once gradreg_tf was imported
    if _startup.running_as_entry_point():
        _startup.announce_device()


def make_strategy(name: str):
    """The ``tf.distribute`` strategy for a ``--strategy`` choice (None for the default)."""
    return STRATEGIES[name]()


def budget_label(args) -> str:
    """How a command's parsed training budget reads in its log ("1500 batches", "budget: paper")."""
    return f"{args.batches} batches" if args.batches else f"budget: {args.budget}"
