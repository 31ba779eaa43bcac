"""Clean accuracy and the paper's transfer grids (Ross & Doshi-Velez, AAAI 2018, §Experiments).

The grids of the paper (FGSM and TGSM accuracy vs eps, every target model against examples
crafted on every source model; the diagonal is white-box, the rest black-box transfer) are
computed as the original notebooks did (SETUP.md §5):

1. each source's input-gradient **signs** are computed once, with the model in inference mode,
   as the gradient of the batch-mean cross-entropy over chunks of ``gradient_batch_size``
   (1000) examples — true labels for FGSM, ``(y + 1) mod K`` for TGSM;
2. for every eps, ``x_adv = clip(x ± eps * sign, bounds)[:n_examples]`` (``+`` for FGSM, ``-``
   for TGSM: a single step, no projection), so one gradient computation serves every eps;
3. every target is scored on ``x_adv`` in **one batch** of ``n_examples`` against the TRUE
   labels (``adversarial_grid``, utils.py:47-55).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import zipfile
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from gradreg_tf import _checks
from gradreg_tf import gradients as G
from gradreg_tf.types import ModelFn, TensorLike

__all__ = ["GridAttack", "GridRow", "PAPER_EPSILONS", "accuracy", "accuracy_under_attack",
           "attach_per_example", "gradient_signs", "leading_signs", "load_per_example",
           "per_example_rows", "perturb",
           "save_per_example", "transfer_grid"]

PAPER_EPSILONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
"""The eps grid of every transfer figure, in the dataset's own units (SETUP.md §5)."""


class GridAttack(str, enum.Enum):
    """Single-step attacks of the transfer grids."""

    FGSM = "fgsm"
    TGSM = "tgsm"


@dataclasses.dataclass(frozen=True)
class _Direction:
    sign: float  # +1: move up the gradient (untargeted), -1: down (targeted)
    targeted: bool  # labels (y + 1) mod K instead of y


_DIRECTIONS = {
    GridAttack.FGSM: _Direction(sign=1.0, targeted=False),
    GridAttack.TGSM: _Direction(sign=-1.0, targeted=True),
}


@dataclasses.dataclass(frozen=True)
class GridRow:
    """One cell of a transfer grid (dataset-agnostic; add the dataset name when storing)."""

    attack: str
    target_model: str  # model evaluated
    source_model: str  # model whose input gradients made the examples
    eps: float
    accuracy: float  # n_correct / n_examples, against the true labels
    n_correct: int
    n_examples: int
    # per test image: was it classified correctly (None when not kept)
    correct: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    def as_dict(self, *, per_example: bool = False) -> dict:
        """The cell as a dict of the CSV columns (:data:`gradreg_tf.published.TRANSFER_FIELDS`
        without ``dataset``); with ``per_example``, also ``correct`` (what
        :mod:`gradreg_tf.claims` pairs per image)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "correct"}
        if per_example:
            if self.correct is None:
                raise ValueError(f"the cell {self.attack} {self.target_model} <- "
                                 f"{self.source_model} eps {self.eps} kept no per-image results.")
            out["correct"] = self.correct
        return out


def _as_attack(attack) -> GridAttack:
    return _checks.as_choice(attack, GridAttack, name="attack")


def accuracy(model: ModelFn, x: TensorLike, y: TensorLike, *, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model(x, training=False)`` against integer labels ``y``.

    Computed in chunks of ``batch_size`` (the original's ``score()``, 1000), which only matters
    for models whose output depends on the batch (the SVHN network's batch-mean LCN).

    Args:
        model: Keras model or callable returning logits.
        x: float input batch (numpy or tensor).
        y: integer labels ``(batch,)``.
        batch_size: examples per forward pass.

    Returns:
        The fraction of examples whose argmax logit equals the label.

    Raises:
        ValueError: wrong shapes, labels out of range, ``batch_size`` < 1.
        TypeError: integer ``x`` or non-integer labels.
    """
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    arr = G.check_model_input(model, x, bounds=None)
    labels = _checks.check_labels(y, n_classes=G.n_classes(model, arr), n_examples=len(arr))
    correct = 0
    for part in G.chunks(len(arr), batch_size):
        pred = np.argmax(G.logits(model, tf.convert_to_tensor(arr[part])).numpy(), axis=-1)
        correct += int(np.sum(pred == labels[part]))
    return correct / len(arr)


def gradient_signs(model: ModelFn, x: TensorLike, y: TensorLike, *, attack="fgsm", bounds,
                   batch_size: int = 1000) -> np.ndarray:
    """Signs of the input gradients the transfer grids perturb along (SETUP.md §5).

    ``sign(∇x mean CE(labels))`` per chunk of ``batch_size`` examples with the model in inference
    mode; labels are ``y`` for FGSM and ``(y + 1) mod K`` for TGSM. Exactly-zero float32
    gradients give sign 0 (no perturbation).

    Scaling: each example's gradient is its cross-entropy gradient divided by its chunk's size
    (1000 in the original), which decides which tiny gradients underflow to zero.

    Args:
        model: the source model.
        x: float input batch within ``bounds``.
        y: true integer labels.
        attack: ``"fgsm"`` or ``"tgsm"`` (:class:`GridAttack`).
        bounds: ``(lower, upper)`` range of ``x`` (validated only).
        batch_size: chunk size of the gradient computation.

    Returns:
        float array of -1/0/+1 with the shape and dtype of ``x``.

    Raises:
        ValueError: unknown attack, bad shapes, bounds or labels.
    """
    direction = _DIRECTIONS[_as_attack(attack)]
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    arr = G.check_model_input(model, x, bounds=_checks.as_bounds(bounds))
    k = G.n_classes(model, arr)
    labels = _checks.check_labels(y, n_classes=k, n_examples=len(arr))
    if direction.targeted:
        labels = (labels + 1) % k
    out = np.empty_like(arr)
    for part in G.chunks(len(arr), batch_size):
        grad, _ = G.xent_gradient(model, tf.convert_to_tensor(arr[part]),
                                  tf.constant(labels[part], tf.int32))
        out[part] = np.sign(grad.numpy())
    return out


def leading_signs(model: ModelFn, x: TensorLike, y: TensorLike, n: int, *, attack="fgsm", bounds,
                  gradient_batch_size: int = 1000) -> np.ndarray:
    """:func:`gradient_signs` of the first ``n`` examples, computing only the gradient chunks that
    cover them.

    The chunks are aligned as in the original's computation on the whole test array (chunks of
    ``gradient_batch_size`` from the start), so each example's 1/chunk-size scaling, and hence
    which tiny gradients underflow to exactly zero, is the same as there.

    Raises:
        ValueError: ``n`` outside ``[1, len(x)]``, or as :func:`gradient_signs`.
    """
    arr = np.asarray(x)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(arr):
        raise ValueError(f"n must be an integer in [1, {len(arr)}] (the size of x), received {n!r}.")
    gradient_batch_size = G.check_positive_int(gradient_batch_size, name="gradient_batch_size")
    used = min(len(arr), math.ceil(n / gradient_batch_size) * gradient_batch_size)
    return gradient_signs(model, arr[:used], np.asarray(y)[:used], attack=attack, bounds=bounds,
                          batch_size=gradient_batch_size)[:n]


def perturb(x: TensorLike, signs: np.ndarray, eps: float, *, attack="fgsm", bounds) -> np.ndarray:
    """The single-step examples ``clip(x + eps * signs)`` (FGSM) or ``clip(x − eps * signs)``
    (TGSM, down the target's gradient), in ``x``'s dtype, as the notebooks (SETUP.md §5)."""
    direction = _DIRECTIONS[_as_attack(attack)]
    bounds = _checks.as_bounds(bounds)
    arr = np.asarray(x)
    step = np.asarray(direction.sign * _checks.check_eps(eps, name="eps"), dtype=arr.dtype)
    return np.clip(arr + step * signs, bounds.lower, bounds.upper).astype(arr.dtype)


def accuracy_under_attack(model: ModelFn, x: TensorLike, y: TensorLike, *,
                          epsilons: Sequence[float] = PAPER_EPSILONS, attack="fgsm", bounds,
                          n_examples: int | None = None, source: ModelFn | None = None,
                          gradient_batch_size: int = 1000) -> dict[float, float]:
    """Accuracy of ``model`` on single-step FGSM/TGSM examples of its own (white-box) or of a
    ``source`` model's input gradients, per eps: one cell of :func:`transfer_grid` per eps.

    Args:
        model: the model evaluated.
        x: test inputs within ``bounds`` (e.g. the whole test set).
        y: true integer labels.
        epsilons: perturbation sizes.
        attack: ``"fgsm"`` or ``"tgsm"``.
        bounds: ``(lower, upper)`` clip range.
        n_examples: attack the first ``n_examples`` (default: all of ``x``).
        source: the model whose gradients craft the examples (default: ``model``).
        gradient_batch_size: chunk size of the gradient computation (1000 in the paper).

    Returns:
        ``{eps: accuracy}``.
    """
    n = len(np.asarray(x)) if n_examples is None else n_examples
    source = model if source is None else source
    rows = transfer_grid({"target": model}, {"source": source}, x, y, attack=attack,
                         epsilons=epsilons, bounds=bounds, n_examples=n,
                         gradient_batch_size=gradient_batch_size)
    return {r.eps: r.accuracy for r in rows}


def transfer_grid(targets: Mapping[str, ModelFn], sources: Mapping[str, ModelFn], x: TensorLike,
                  y: TensorLike, *, attack="fgsm", epsilons: Sequence[float] = PAPER_EPSILONS,
                  bounds, n_examples: int = 256, gradient_batch_size: int = 1000,
                  progress: bool = False) -> list[GridRow]:
    """Accuracy of every target on single-step FGSM/TGSM examples crafted on every source.

    The transfer figures of Ross & Doshi-Velez (AAAI 2018, §Experiments), computed as the
    original notebooks (module docstring, SETUP.md §5): one gradient-sign computation per source
    (chunks of ``gradient_batch_size``, true labels for FGSM, ``(y + 1) mod K`` for TGSM),
    ``clip(x ± eps * sign, bounds)[:n_examples]`` for each eps, every target scored in one batch
    of ``n_examples`` with ``training=False`` against the true labels.

    Only the gradient chunks covering the first ``n_examples`` are computed; for models whose
    output does not depend on the rest of the batch this equals computing them on all of ``x``
    as the original did (chunks are aligned the same way, so the 1/chunk-size scaling is too).

    Args:
        targets: name -> model evaluated.
        sources: name -> model whose gradients craft the examples (a target may be a source:
            that cell is white-box).
        x: test inputs within ``bounds`` (e.g. the whole test set; the first ``n_examples`` are
            attacked).
        y: true integer labels.
        attack: ``"fgsm"`` or ``"tgsm"`` (:class:`GridAttack`).
        epsilons: perturbation sizes in the units of ``x`` (default :data:`PAPER_EPSILONS`).
        bounds: ``(lower, upper)`` clip range (the original: min/max of the test array).
        n_examples: examples per grid cell (256 in the paper).
        gradient_batch_size: chunk size of the gradient computation (1000 in the paper).
        progress: show a tqdm progress bar over the grid cells.

    Returns:
        ``GridRow`` list ordered by target, source, eps (the notebooks' order); each row keeps
        ``correct``, one boolean per attacked image (:func:`save_per_example` stores them).

    Raises:
        ValueError: unknown attack, empty model mappings, negative eps, ``n_examples`` outside
            ``[1, len(x)]``, bad shapes, bounds or labels, or models with different numbers
            of classes (labels are checked against every model's).
    """
    attack = _as_attack(attack)
    bounds = _checks.as_bounds(bounds)
    if not targets or not sources:
        raise ValueError(f"targets and sources must be non-empty mappings name -> model, received "
                         f"{len(targets)} targets and {len(sources)} sources.")
    eps_list = [_checks.check_eps(e, name="epsilons") for e in epsilons]
    if not eps_list:
        raise ValueError("epsilons must contain at least one value, received an empty sequence.")
    gradient_batch_size = G.check_positive_int(gradient_batch_size, name="gradient_batch_size")
    first = next(iter(sources.values()))
    arr = G.check_model_input(first, x, bounds=bounds)
    if isinstance(n_examples, bool) or not isinstance(n_examples, (int, np.integer)) or not (
            1 <= n_examples <= len(arr)):
        raise ValueError(f"n_examples must be an integer in [1, {len(arr)}] (the size of x), "
                         f"received {n_examples!r}.")
    for name, model in targets.items():  # same input contract for every target
        G.check_model_input(model, arr[:n_examples], bounds=bounds, name=f"x (for target {name!r})")
    classes = {**{f"source {name!r}": G.n_classes(model, arr) for name, model in sources.items()},
               **{f"target {name!r}": G.n_classes(model, arr) for name, model in targets.items()}}
    if len(set(classes.values())) > 1:
        raise ValueError("every source and target must have the same number of classes, received "
                         + ", ".join(f"{k}: {v}" for k, v in classes.items()) + ".")
    labels = _checks.check_labels(y, n_classes=next(iter(classes.values())), n_examples=len(arr))
    signs = {name: leading_signs(model, arr, labels, n_examples, attack=attack, bounds=bounds,
                                 gradient_batch_size=gradient_batch_size)
             for name, model in sources.items()}
    x_n, y_n = arr[:n_examples], labels[:n_examples]

    cells = [(t, s, e) for t in targets for s in sources for e in eps_list]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells), desc=f"{attack.value} transfer grid", unit="cell")
    rows = []
    try:
        for target_name, source_name, eps in cells:
            x_adv = perturb(x_n, signs[source_name], eps, attack=attack, bounds=bounds)
            logits = G.logits(targets[target_name], tf.convert_to_tensor(x_adv)).numpy()
            correct = np.argmax(logits, axis=-1) == y_n
            n_correct = int(np.sum(correct))
            rows.append(GridRow(attack=attack.value, target_model=target_name,
                                source_model=source_name, eps=eps,
                                accuracy=n_correct / n_examples, n_correct=n_correct,
                                n_examples=n_examples, correct=correct))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return rows


PER_EXAMPLE_FORMAT = 1
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""Timestamp of every member of the ``.npz`` (``np.savez`` stamps the current time), so the
same results give the same bytes."""


def _cell_name(attack, target, source, eps) -> str:
    return f"{attack}|{target}|{source}|{round(float(eps), 2):g}"


def save_per_example(path, rows: Sequence[GridRow]):
    """Stores the per-image correctness of grid rows compactly (``.npz``, one bit per image and
    cell), atomically and byte-reproducibly (fixed zip timestamps), so that every cell, and any
    statistic over images, can be recomputed.

    Args:
        path: the ``.npz`` file to write (e.g. next to the grid's CSV).
        rows: :class:`GridRow` s from :func:`transfer_grid`, all on the same ``n_examples``.

    Returns:
        The path written.

    Raises:
        ValueError: if a row kept no per-image results or the rows differ in ``n_examples``.
    """
    from gradreg_tf import cache

    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one grid row, received none.")
    ns = {r.n_examples for r in rows}
    if len(ns) != 1:
        raise ValueError(f"every row must be on the same images, received n_examples {sorted(ns)}.")
    matrix = np.stack([r.as_dict(per_example=True)["correct"] for r in rows])
    names = np.array([_cell_name(r.attack, r.target_model, r.source_model, r.eps) for r in rows])
    if len(set(names.tolist())) != len(names):
        raise ValueError("a grid cell is given twice in rows.")

    arrays = {"format": np.array(PER_EXAMPLE_FORMAT), "cells": names,
              "n_examples": np.array(ns.pop()), "correct": np.packbits(matrix, axis=1)}

    def _write(tmp):  # np.savez_compressed's layout, but with a fixed zip timestamp
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key, value in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w") as f:
                    np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)

    return cache.atomic_write(path, _write)


def load_per_example(path) -> dict[tuple, np.ndarray]:
    """The per-image results stored by :func:`save_per_example`:
    ``{(attack, target, source, eps): bool array}``.

    Raises:
        ValueError: if the file is not such a file (its format or shapes differ).
    """
    with np.load(path, allow_pickle=False) as f:
        if "format" not in f or int(f["format"]) != PER_EXAMPLE_FORMAT:
            raise ValueError(f"{path} is not a per-example grid file of format "
                             f"{PER_EXAMPLE_FORMAT}.")
        n = int(f["n_examples"])
        bits = np.unpackbits(f["correct"], axis=1, count=n).astype(bool)
        cells = [str(c) for c in f["cells"]]
    if bits.shape != (len(cells), n):
        raise ValueError(f"{path}: {len(cells)} cells but a {bits.shape} result matrix.")
    out = {}
    for name, row in zip(cells, bits):
        attack, target, source, eps = name.split("|")
        out[(attack, target, source, round(float(eps), 2))] = row
    return out


def per_example_rows(table: Mapping[tuple, np.ndarray]) -> list[dict]:
    """Transfer rows (dicts with ``correct``) rebuilt from :func:`load_per_example` output."""
    return [{"attack": a, "target_model": t, "source_model": s, "eps": e,
             "accuracy": float(c.mean()), "n_correct": int(c.sum()), "n_examples": len(c),
             "correct": c} for (a, t, s, e), c in table.items()]


def attach_per_example(rows: Sequence[Mapping], table: Mapping[tuple, np.ndarray]) -> list[dict]:
    """Copies of transfer rows (dicts) with ``correct`` from :func:`load_per_example` output.

    Raises:
        ValueError: if a row's cell is not in ``table`` or its per-image results disagree with
            the row's accuracy (they would not be the same measurement).
    """
    out = []
    for r in rows:
        key = (r["attack"], r["target_model"], r["source_model"], round(float(r["eps"]), 2))
        if key not in table:
            raise ValueError(f"no per-image results for the cell {key}.")
        correct = table[key]
        if abs(float(correct.mean()) - float(r["accuracy"])) > 0.5 / len(correct):
            raise ValueError(f"the per-image results of {key} give accuracy {correct.mean():.4f}, "
                             f"the row {r['accuracy']!r}.")
        out.append({**r, "correct": correct, "n_examples": len(correct)})
    return out
