"""The paper-schedule models that ship with the package: load, verify, export.

Each shipped model is a weights-only Keras file ``gradreg_tf/weights/<dataset>/<model>.weights.h5``
(the network's weights; the optimizer state is not shipped) with a manifest ``<model>.json``:
its recipe and the recipe's cache key (recipe, seed and training data, no code), batches
trained, seed, the TensorFlow/Keras/numpy versions and machine it was trained on, the file's
sha256, the final clean test accuracy, and the :mod:`gradreg_tf.provenance` fingerprint of
the weights after the first 100 batches of the same run. A distilled model's manifest also
holds its teacher's recipe and 100-batch fingerprint, and ships the soft labels of the first
100 batches (``<model>.soft_labels.npz``) so that the student's first batches can be replayed
without the teacher.

:func:`load` verifies the file's sha256 before loading; :func:`replay_provenance` retrains the
first 100 batches of a shipped recipe and compares fingerprints (``tests/test_provenance.py``).
Writing a newly trained model into this layout is :func:`gradreg_tf.shipping.export`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys

import numpy as np

from gradreg_tf import cache as _cache
from gradreg_tf import fingerprints as _fp
from gradreg_tf import provenance as _prov
from gradreg_tf import recipes as R
from gradreg_tf import training as T

WEIGHTS_DIR = pathlib.Path(__file__).resolve().parent / "weights"
MANIFEST_FORMAT = 1
# What a replay on a machine unlike the training machine (other CPU vendor or flags, core count,
# oneDNN setting: summation order differs, bitwise identity is not expected) is held to.
# Measured with bench/provenance_separation.py on an AMD EPYC machine replaying the Intel-trained
# shipped runs (threads 1/2/4, oneDNN on/off), beside broken training steps planted in a copy of
# the package (README, "Provenance"):
#
# * CURVE_TOLERANCE, on :func:`curve_deviation` of the batch-100 training-curve row (means of the
#   loss, cross-entropy, penalty and batch accuracy over the first 100 batches): benign at most
#   0.0049 (advtrain, 1 thread); broken at least 0.22 (advtrain's adversarial term from the true
#   labels). The weights themselves are no use here for advtrain: FGSM training takes the sign of
#   the input gradient, summation-order noise flips signs, and after 100 batches the benign
#   projection deviation (0.43-0.49) is as large as a broken step's (0.62).
# * REPLAY_TOLERANCE, on :func:`gradreg_tf.provenance.projection_deviation` of the weights, for
#   a distilled model's teacher (no curve of it ships).
CURVE_TOLERANCE = 0.02
REPLAY_TOLERANCE = 0.15


SHIPPED = {"mnist": R.PAPER_MODELS}
"""What the package ships: dataset -> models (the paper-schedule MNIST models, seed 0). A test of
shipped artifacts checks these with :func:`verify` and fails, never skips, when one is missing."""

LFS_POINTER = b"version https://git-lfs"


class PretrainedModelError(OSError):
    """A shipped model's file is missing, corrupt, or does not match its manifest."""


def weights_path(dataset: str, model: str, *, root=None) -> pathlib.Path:
    """Where the shipped weights of ``model`` on ``dataset`` live (they may be missing)."""
    return pathlib.Path(root or WEIGHTS_DIR) / dataset / f"{model}.weights.h5"


def manifest_path(dataset: str, model: str, *, root=None) -> pathlib.Path:
    """Where the manifest of ``model`` for ``dataset`` lives (next to its weights, ``<model>.json``
    under ``root``, default the shipped weights folder); it may not exist."""
    return weights_path(dataset, model, root=root).with_name(f"{model}.json")


def available(dataset: str | None = None, *, root=None) -> list[tuple[str, str]]:
    """``(dataset, model)`` pairs that have a shipped manifest, sorted."""
    base = pathlib.Path(root or WEIGHTS_DIR)
    pairs = [(p.parent.name, p.stem) for p in base.glob("*/*.json")]
    return sorted(p for p in pairs if dataset is None or p[0] == dataset)


def manifest(dataset: str, model: str, *, root=None) -> dict:
    """The manifest of a shipped model.

    Raises:
        PretrainedModelError: if no model ``model`` is shipped for ``dataset`` (the message
            lists what is shipped) or its manifest is unreadable.
    """
    path = manifest_path(dataset, model, root=root)
    if not path.is_file():
        shipped = ", ".join(f"{d}/{m}" for d, m in available(root=root)) or "none"
        raise PretrainedModelError(
            f"no pretrained model {model!r} for dataset {dataset!r}: {path} does not exist "
            f"(shipped: {shipped}).")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise PretrainedModelError(f"the manifest {path} is unreadable: {err}") from err
    if meta.get("format") != MANIFEST_FORMAT:
        raise PretrainedModelError(
            f"the manifest {path} has format {meta.get('format')!r}, expected {MANIFEST_FORMAT}.")
    return meta


def recipe_of(meta: dict) -> R.Recipe:
    """The :class:`~gradreg_tf.recipes.Recipe` recorded in a manifest."""
    return R.Recipe(**meta["recipe"])


def _verified_file(path: pathlib.Path, sha256: str, what: str) -> pathlib.Path:
    if not path.is_file():
        raise PretrainedModelError(
            f"the {what} file {path} is missing (expected sha256 {sha256}); reinstall gradreg_tf "
            "or restore the file from the repository.")
    with open(path, "rb") as f:
        if f.read(len(LFS_POINTER)) == LFS_POINTER:
            raise PretrainedModelError(
                f"the {what} file {path} is a Git LFS pointer, not the file itself (expected "
                f"sha256 {sha256}); fetch it with `git lfs pull` or install a release that "
                "includes it.")
    actual = _cache.file_sha256(path)
    if actual != sha256:
        raise PretrainedModelError(
            f"the {what} file {path} is corrupt: its sha256 is {actual}, expected {sha256}; "
            "reinstall gradreg_tf or restore the file from the repository.")
    return path


def verify(dataset: str, model: str, *, root=None) -> dict:
    """Checks that a shipped model is complete: its manifest, and every file the manifest names
    (weights, training curves, a distilled model's soft labels) present and, where the manifest
    records a sha256, equal to it.

    Returns:
        The manifest.

    Raises:
        PretrainedModelError: naming the first missing, corrupt or Git-LFS-pointer file.
    """
    meta = manifest(dataset, model, root=root)
    _verified_file(weights_path(dataset, model, root=root), meta["sha256"], "weights")
    curves = weights_path(dataset, model, root=root).with_name(meta["curves_file"])
    if not curves.is_file() or curves.stat().st_size == 0:
        raise PretrainedModelError(f"the training-curves file {curves} of {dataset}/{model} is "
                                   "missing or empty; reinstall gradreg_tf or restore it.")
    if "soft_labels_file" in meta:
        _verified_file(weights_path(dataset, model, root=root).with_name(meta["soft_labels_file"]),
                       meta["soft_labels_sha256"], "soft labels")
    return meta


def verify_all(*, root=None) -> list[tuple[str, str]]:
    """:func:`verify` for every model of :data:`SHIPPED`; returns the pairs checked.

    Raises:
        PretrainedModelError: naming the first missing or corrupt file.
    """
    pairs = [(d, m) for d, models in SHIPPED.items() for m in models]
    for dataset, model in pairs:
        verify(dataset, model, root=root)
    return pairs


def load(dataset: str, model: str, *, root=None):
    """The shipped, ready :class:`~gradreg_tf.GradRegClassifier` (uncompiled; predicts at T=1).

    Args:
        dataset: ``"mnist"`` (the only dataset shipped at the paper's schedule).
        model: ``"normal"``, ``"distilled"``, ``"advtrain"``, ``"insensitive"`` or ``"doubleback"``.
        root: a directory laid out like ``gradreg_tf/weights`` (default: the package's).

    Raises:
        PretrainedModelError: if the model is not shipped, or its weights file is missing or
            its sha256 differs from the manifest's (the message names the file and the sha256).
    """
    meta = manifest(dataset, model, root=root)
    path = _verified_file(weights_path(dataset, model, root=root), meta["sha256"], "weights")
    net = T.build_model(recipe_of(meta), input_shape=tuple(meta["input_shape"]),
                        bounds=tuple(meta["bounds"]))
    net.network.load_weights(path)
    return net


def find(recipe: R.Recipe, *, seed: int, data_fingerprint: str, extra: dict | None = None,
         root=None) -> tuple[str, str] | None:
    """The shipped ``(dataset, model)`` trained with exactly this recipe, seed and data, or None."""
    key = _cache.cache_key(recipe, seed=seed, data_fingerprint=data_fingerprint, extra=extra)
    for dataset, model in available(recipe.dataset, root=root):
        try:
            meta = manifest(dataset, model, root=root)
        except PretrainedModelError:
            continue
        if meta.get("recipe_key") == key:
            return dataset, model
    return None


versions = _prov.versions


def curves_path(dataset: str, model: str, *, root=None) -> pathlib.Path:
    """The shipped training curves (CSV) of a model."""
    meta = manifest(dataset, model, root=root)
    return weights_path(dataset, model, root=root).with_name(meta["curves_file"])


CURVE_COLUMNS = ("loss", "cross_entropy", "penalty", "batch_accuracy")
"""Columns of the batch-``PROVENANCE_BATCHES`` curve row compared by :func:`curve_deviation`:
means over the first batches of the run, so the chaotic divergence of late batches weighs
little in them."""


def curve_deviation(replayed: dict, recorded: dict) -> float:
    """Largest relative difference between two curve rows over :data:`CURVE_COLUMNS`.

    Each column's difference is taken relative to the recorded value (a column that is 0 in
    both rows, e.g. the penalty of a model without one, counts as 0; 0 in one of them as
    ``inf``). Scaling: O(len(CURVE_COLUMNS)).
    """
    worst = 0.0
    for column in CURVE_COLUMNS:
        a, b = float(replayed[column]), float(recorded[column])
        if not (np.isfinite(a) and np.isfinite(b)):
            return float("inf")
        if a == b:
            continue
        worst = max(worst, abs(a - b) / abs(b) if b != 0 else float("inf"))
    return worst


def recorded_curve_row(dataset: str, model: str, batch: int, *, root=None) -> dict | None:
    """The shipped training-curve row of ``model`` at ``batch`` (None if there is none)."""
    import csv

    with open(curves_path(dataset, model, root=root), newline="") as f:
        for row in csv.DictReader(f):
            if int(row["batch"]) == batch:
                return {k: float(v) for k, v in row.items() if v not in ("", None)}
    return None


@dataclasses.dataclass(frozen=True)
class Replay:
    """One replayed run: ``name`` (``"<model>"`` or ``"<model>-teacher"``), the recorded and
    replayed fingerprints, whether they are bitwise equal, the projection deviation, and the
    deviation of the batch-100 training-curve row (NaN where no curve was recorded: a teacher)."""

    name: str
    recorded: dict
    replayed: dict
    bitwise: bool
    deviation: float
    same_machine: bool
    curve_deviation: float = float("nan")

    def summary(self) -> str:
        return (f"{self.name}: replayed sha256 {self.replayed['sha256'][:16]} vs recorded "
                f"{self.recorded['sha256'][:16]} ({'bitwise equal' if self.bitwise else 'differ'}; "
                f"projection deviation {self.deviation:.3g}; curve deviation "
                f"{self.curve_deviation:.3g}; "
                f"{'same' if self.same_machine else 'different'} machine signature)")


def replay_provenance(dataset_obj, model: str, *, root=None) -> list[Replay]:
    """Retrains the first ``PROVENANCE_BATCHES`` batches of a shipped model's recipe (and of its
    distillation teacher) from the recorded seed, and compares with the recorded fingerprints.

    Call it in a process where :func:`gradreg_tf.training.enable_determinism` is on and the
    thread counts are those of :func:`replay_threads` (``python -m gradreg_tf.pretrained replay``
    does both), else no bitwise match is possible.

    Raises:
        PretrainedModelError: if the model is not shipped or its soft labels are corrupt.
        ValueError: if ``dataset_obj`` is not the training data the model was trained on.
    """
    meta = manifest(dataset_obj.name, model, root=root)
    if _fp.data_fingerprint(dataset_obj) != meta["data_fingerprint"]:
        raise ValueError(f"{dataset_obj!r} is not the training data of the shipped {model!r} "
                         "(its fingerprint differs from the manifest's).")
    same = _prov.machine_signature() == meta.get("machine")
    runs = []
    n = _prov.PROVENANCE_BATCHES
    recipe = recipe_of(meta)
    y = dataset_obj.y_train
    if recipe.distill:
        teacher = R.Recipe(**meta["teacher"]["recipe"])
        runs.append((f"{model}-teacher", teacher, dataset_obj.y_train,
                     meta["teacher"]["provenance"]))
        labels = _verified_file(weights_path(dataset_obj.name, model, root=root).with_name(
            meta["soft_labels_file"]), meta["soft_labels_sha256"], "soft labels")
        with np.load(labels) as f:
            y = f["soft_labels"]
    runs.append((model, recipe, y, meta["provenance"]))
    recorded_row = recorded_curve_row(dataset_obj.name, model, n, root=root)
    out = []
    for name, rec, labels, recorded in runs:
        rows = min(len(labels), n * rec.batch_size)
        _, curves, fp = T.train_recipe(rec, dataset_obj.x_train[:rows], labels[:rows],
                                       seed=meta["seed"], bounds=tuple(meta["bounds"]),
                                       stop_after=n, progress=False, fingerprint_at=n)
        dev = _prov.projection_deviation(fp["projections"], recorded["projections"])
        curve_dev = float("nan")
        if name == model and recorded_row is not None:
            replayed_row = next((r for r in curves if r["batch"] == n), None)
            curve_dev = (float("inf") if replayed_row is None
                         else curve_deviation(replayed_row, recorded_row))
        out.append(Replay(name=name, recorded=recorded, replayed=fp,
                          bitwise=fp["sha256"] == recorded["sha256"], deviation=dev,
                          same_machine=same, curve_deviation=curve_dev))
    return out


def replay_threads(meta: dict) -> int:
    """Intra-op threads of the training run (TensorFlow's default: one per core)."""
    return int((meta.get("machine") or {}).get("cpu_count") or 0)


def _main(argv) -> int:
    """``python -m gradreg_tf.pretrained replay <dataset> <model> [--data-dir D]``: prints JSON."""
    import argparse
    import os

    p = argparse.ArgumentParser(prog="python -m gradreg_tf.pretrained",
                                description="Replay a shipped model's first 100 batches.")
    p.add_argument("command", choices=("replay",))
    p.add_argument("dataset")
    p.add_argument("model")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=None,
                   help="intra-/inter-op threads (default: the training machine's core count)")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be a positive integer, received {args.threads}")
    from gradreg_tf import _startup

    _startup.announce_device()  # TensorFlow was imported quietly with gradreg_tf
    meta = manifest(args.dataset, args.model)
    import tensorflow as tf

    threads = args.threads or replay_threads(meta)
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    from gradreg_tf import data, training

    training.enable_determinism()
    ds = data.load(args.dataset, data_dir=args.data_dir)
    replays = replay_provenance(ds, args.model)
    print(json.dumps([{"name": r.name, "bitwise": r.bitwise, "deviation": r.deviation,
                       "curve_deviation": r.curve_deviation, "threads": threads,
                       "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
                       "same_machine": r.same_machine, "replayed_sha256": r.replayed["sha256"],
                       "recorded_sha256": r.recorded["sha256"]} for r in replays]))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
