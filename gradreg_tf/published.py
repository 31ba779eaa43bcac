"""The published numbers of Ross & Doshi-Velez (AAAI 2018), as data.

The authors' notebooks (dtak/adversarial-robustness-public @ eb1e3af) print the clean accuracy
of every model and every point of the transfer grids; ``gradreg_tf/reference/*.csv`` holds them
(see its README). This module reads them and turns transfer rows (theirs or ours, same columns)
into arrays for plotting.

Example:
    >>> from gradreg_tf import published
    >>> rows = published.load_transfer(dataset="mnist", attack="fgsm")
    >>> len(rows)
    200
"""

from __future__ import annotations

import csv
import math
import pathlib
from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["TRANSFER_FIELDS", "clean_accuracy_table", "grid_array", "load_clean_accuracy",
           "load_transfer", "reference_path"]

TRANSFER_FIELDS = ("dataset", "attack", "target_model", "source_model", "eps", "accuracy",
                   "n_correct", "n_examples")
"""Columns shared by the published transfer file and the transfer CSVs this project writes."""

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent / "reference"
_SHARED_DIR = pathlib.Path(__file__).resolve().parents[2] / "shared" / "published"
_INT_FIELDS = {"n_correct", "n_examples", "cell", "exec_count"}
_FLOAT_FIELDS = {"eps", "accuracy", "accuracy_pct_printed", "f1_macro", "reg_lambda"}


def reference_path(name: str) -> pathlib.Path:
    """Path of a published-numbers file: the package copy, else ``<repo>/../shared/published``.

    Raises:
        FileNotFoundError: if neither place holds ``name`` (the message lists both).
    """
    for directory in (_PACKAGE_DIR, _SHARED_DIR):
        path = directory / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"published numbers file {name!r} not found in {_PACKAGE_DIR} "
                            f"or {_SHARED_DIR}.")


def _convert(row: Mapping[str, str]) -> dict:
    out = {}
    for key, value in row.items():
        if key in _INT_FIELDS and value != "":
            out[key] = int(value)
        elif key in _FLOAT_FIELDS:
            out[key] = float(value) if value != "" else math.nan
        elif key == "whitebox":
            out[key] = value == "1"
        else:
            out[key] = value
    return out


def _read(name: str, filters: Mapping[str, str | None]) -> list[dict]:
    with open(reference_path(name), newline="") as f:
        rows = [_convert(r) for r in csv.DictReader(f)]
    for key, value in filters.items():
        if value is not None:
            rows = [r for r in rows if r[key] == str(value).lower()]
    return rows


def load_transfer(*, dataset: str | None = None, attack: str | None = None) -> list[dict]:
    """The published transfer-grid rows, optionally for one dataset and/or attack.

    Args:
        dataset: ``"mnist"``, ``"notmnist"`` or ``"svhn"`` (None: all).
        attack: ``"fgsm"`` or ``"tgsm"`` (None: both).

    Returns:
        Dicts with the :data:`TRANSFER_FIELDS` (``eps``/``accuracy`` float, counts int) plus
        ``whitebox`` (bool), ``notebook``, ``cell``, ``exec_count``, in the file's order
        (dataset, attack, target, source, eps).
    """
    return _read("transfer_all.csv", {"dataset": dataset, "attack": attack})


def load_clean_accuracy(*, dataset: str | None = None) -> list[dict]:
    """The published clean test accuracy of every model (optionally for one dataset).

    Returns:
        Dicts with ``dataset``, ``model``, ``accuracy`` (fraction), ``f1_macro``,
        ``n_examples``, ``checkpoint``, ``reg_lambda`` (NaN when the model has none), ...
    """
    return _read("clean_accuracy.csv", {"dataset": dataset})


def clean_accuracy_table(dataset: str) -> dict[str, float]:
    """``{model: published clean accuracy}`` for one dataset."""
    return {r["model"]: r["accuracy"] for r in load_clean_accuracy(dataset=dataset)}


def grid_array(rows: Iterable[Mapping], *, sources: Sequence[str], targets: Sequence[str],
               epsilons: Sequence[float], attack: str | None = None,
               dataset: str | None = None) -> np.ndarray:
    """Transfer rows as an array ``[source, target, eps]`` of accuracies (NaN where missing).

    Works on the published rows and on this project's rows alike (same columns). Epsilons are
    matched to 1e-9.

    Args:
        rows: dicts with ``source_model``, ``target_model``, ``eps``, ``accuracy`` (and
            ``attack``/``dataset`` when filtering on them).
        sources: source-model order of axis 0.
        targets: target-model order of axis 1.
        epsilons: eps order of axis 2.
        attack: keep only rows of this attack.
        dataset: keep only rows of this dataset.

    Returns:
        float array of shape ``(len(sources), len(targets), len(epsilons))``.
    """
    out = np.full((len(sources), len(targets), len(epsilons)), np.nan)
    s_index = {s: i for i, s in enumerate(sources)}
    t_index = {t: i for i, t in enumerate(targets)}
    eps = np.asarray(epsilons, dtype=float)
    for row in rows:
        if attack is not None and str(row["attack"]).lower() != attack:
            continue
        if dataset is not None and str(row["dataset"]).lower() != dataset:
            continue
        i, j = s_index.get(row["source_model"]), t_index.get(row["target_model"])
        if i is None or j is None:
            continue
        k = np.flatnonzero(np.abs(eps - float(row["eps"])) < 1e-9)
        if len(k):
            out[i, j, k[0]] = float(row["accuracy"])
    return out
