"""Shipping a newly trained paper-schedule model: weights, curves and manifest from the user cache.

:func:`export` writes a run of the user cache (:mod:`gradreg_tf.zoo`) into the layout that
:mod:`gradreg_tf.pretrained` loads, verifies and replays (``gradreg_tf/weights/<dataset>/``, or a
``root`` such as ``runs/seed1`` for a training seed that does not ship).
``experiments/ship_pretrained.py`` calls it and then requires a bitwise provenance replay.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import keras
import numpy as np

from gradreg_tf import cache as _cache
from gradreg_tf import distillation, fingerprints, zoo
from gradreg_tf import pretrained as P
from gradreg_tf import provenance as _prov
from gradreg_tf import recipes as R
from gradreg_tf.eval import grids


def _read_sidecar(model_file: pathlib.Path) -> dict:
    return json.loads(model_file.with_suffix(".json").read_text())


def export(dataset_obj, model: str, *, seed: int = 0, cache_dir=None, root=None) -> dict:
    """Ships a paper-schedule model from the user cache: weights, curves and manifest.

    The model must have been trained by :func:`gradreg_tf.zoo.trained_model` (e.g.
    ``experiments/train_models.py --budget paper --deterministic``) with op determinism on, so
    that its first 100 batches can be replayed (:func:`replay_provenance`).

    Args:
        dataset_obj: the :class:`~gradreg_tf.data.Dataset` it was trained on.
        model: its name in the paper (``"normal"``, ...).
        seed: its training seed.
        cache_dir: the user cache that holds it.
        root: destination laid out like ``gradreg_tf/weights`` (default: the package's).

    Returns:
        The manifest written.

    Raises:
        FileNotFoundError: if the cache holds no such run (or, distilled, no teacher).
        ValueError: if the run was not deterministic or has no 100-batch fingerprint.
    """
    recipe = R.paper_recipe(dataset_obj.name, model,
                            n_batches=R.budget_batches("paper", len(dataset_obj.x_train)))
    found = zoo.cached_run(dataset_obj, recipe, seed=seed, cache_dir=cache_dir)
    if found is None:
        raise FileNotFoundError(f"no cached {recipe.label()} run (seed {seed}) in "
                                f"{_cache.cache_dir(cache_dir)}; train it first.")
    sidecars = {"model": _read_sidecar(found)}
    teacher_file = None
    if recipe.distill:
        teacher_file = zoo.cached_run(dataset_obj, distillation.teacher_recipe(recipe), seed=seed,
                                      cache_dir=cache_dir)
        if teacher_file is None:
            raise FileNotFoundError(f"the teacher of {recipe.label()} is not in the cache.")
        sidecars["teacher"] = _read_sidecar(teacher_file)
    for what, meta in sidecars.items():
        if not meta.get("op_determinism"):
            raise ValueError(f"the {what} {found.name} was trained without op determinism; "
                             "retrain it with experiments/train_models.py --deterministic.")
        if not meta.get("provenance"):
            raise ValueError(f"the {what}'s sidecar has no {_prov.PROVENANCE_BATCHES}-batch "
                             "fingerprint; retrain it with this version of gradreg_tf.")
    side = sidecars["model"]
    trained = keras.models.load_model(found)
    path = P.weights_path(dataset_obj.name, model, root=root)
    path.parent.mkdir(parents=True, exist_ok=True)
    _cache.atomic_write(path, trained.network.save_weights)
    curves = path.with_name(f"{model}.curves.csv")
    _cache.atomic_write(curves, lambda tmp: pathlib.Path(tmp).write_bytes(
        found.with_suffix(".curves.csv").read_bytes()))
    meta = {
        "format": P.MANIFEST_FORMAT, "dataset": dataset_obj.name, "model": model,
        "recipe": dataclasses.asdict(recipe), "recipe_key": side.get("recipe_key", side["key"]),
        "seed": side["seed"], "nominal_batches": recipe.n_batches,
        "batches_trained": side["batches"], "data_fingerprint": fingerprints.data_fingerprint(dataset_obj),
        "input_shape": list(dataset_obj.x_train.shape[1:]),
        "bounds": [float(np.min(dataset_obj.x_train)), float(np.max(dataset_obj.x_train))],
        "weights_file": path.name, "sha256": _cache.file_sha256(path),
        "size_bytes": path.stat().st_size, "curves_file": curves.name,
        "clean_test_accuracy": round(grids.accuracy(trained, dataset_obj.x_test,
                                                    dataset_obj.y_test), 6),
        "n_test": int(len(dataset_obj.x_test)),
        "provenance": side["provenance"], "op_determinism": True,
        "trained_with": side.get("versions") or _prov.versions(),
        "machine": side.get("machine") or _prov.machine_signature(),
        "train_seconds": side.get("train_seconds"),
    }
    if recipe.distill:
        # the labels the student saw: the teacher's soft labels of the whole training set, in
        # the same chunks as zoo.trained_model; the first 100 batches' rows are shipped
        teacher = keras.models.load_model(teacher_file)
        labels = distillation.soft_labels(teacher, dataset_obj.x_train, temperature=recipe.temperature)
        n = _prov.PROVENANCE_BATCHES * recipe.batch_size
        labels_path = path.with_name(f"{model}.soft_labels.npz")

        def _save(tmp):
            with open(tmp, "wb") as f:
                np.savez_compressed(f, soft_labels=labels[:n])

        _cache.atomic_write(labels_path, _save)
        t = sidecars["teacher"]
        meta["teacher"] = {"recipe": t["recipe"], "recipe_key": t.get("recipe_key", t["key"]),
                           "batches_trained": t["batches"], "provenance": t["provenance"],
                           "train_seconds": t.get("train_seconds")}
        meta.update(soft_labels_file=labels_path.name, soft_labels_rows=n,
                    soft_labels_sha256=_cache.file_sha256(labels_path))
    _cache.write_json(P.manifest_path(dataset_obj.name, model, root=root), meta)
    return meta
