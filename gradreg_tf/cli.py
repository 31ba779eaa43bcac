"""Shared command-line options of the experiment scripts (thin ``main(argv)`` wrappers)."""

from __future__ import annotations

import argparse
import os

from gradreg_tf.recipes import Budget

STRATEGIES = {
    "default": lambda: None,
    "mirrored": lambda: __import__("tensorflow").distribute.MirroredStrategy(),
    "multiworker": lambda: __import__("tensorflow").distribute.MultiWorkerMirroredStrategy(),
}


def parser(description: str, *, dataset: bool = True, default_dataset: str = "mnist",
           out: str = "figures") -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the options every experiment shares."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if dataset:
        p.add_argument("--dataset", default=default_dataset, choices=("mnist", "notmnist", "svhn"))
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget", default=Budget.PAPER.value, choices=[b.value for b in Budget],
                        help="training budget: the paper's schedule, the reduced one, or ~1 epoch")
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
    """Hides TensorFlow's C++ start-up chatter (call before importing tensorflow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_strategy(name: str):
    """The ``tf.distribute`` strategy for a ``--strategy`` choice (None for the default)."""
    return STRATEGIES[name]()


def budget_label(args) -> str:
    return f"{args.batches} batches" if args.batches else f"budget: {args.budget}"
