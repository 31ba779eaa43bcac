"""Trained models of the paper, trained once and cached: :func:`trained_model`.

A model is first looked up among the models shipped with the package (:mod:`gradreg_tf.pretrained`,
matched on recipe, seed and training data), then in the user cache (:mod:`gradreg_tf.cache`)
under a key hashing its recipe, budget, seed, training data and the source of the training code
(:func:`gradreg_tf.fingerprints.code_fingerprint`, so a changed training step never reuses stale models); on a miss it
is trained (resuming an interrupted run's
checkpoint), verified finite, and written atomically as ``.keras`` with a JSON sidecar
(recipe, sha256, timings) and its training curves as CSV. A cached file whose sha256 does
not match its sidecar, or that fails to load, is reported and retrained, never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import time
import warnings

import keras
import numpy as np

from gradreg_tf import cache as _cache
from gradreg_tf import distillation
from gradreg_tf import fingerprints as _fp
from gradreg_tf import pretrained as _pretrained
from gradreg_tf import provenance as _prov
from gradreg_tf import recipes as R
from gradreg_tf import training as T

REFERENCE_SEED_OFFSET = 1000  # the curves' reference normal model is an independent run

# what the cache keys are made of, and distillation's pieces (their homes, re-exported here)
code_fingerprint = _fp.code_fingerprint
data_fingerprint = _fp.data_fingerprint
_fingerprint = _fp.data_fingerprint
soft_labels = distillation.soft_labels
teacher_recipe = distillation.teacher_recipe
_student_key = distillation.student_key


def resolve_batches(dataset, budget="paper", n_batches: int | None = None) -> int:
    """Nominal batches for a budget (``n_batches`` overrides it)."""
    if n_batches is not None:
        if int(n_batches) < 1:
            raise ValueError(f"n_batches must be >= 1, received {n_batches!r}.")
        return int(n_batches)
    return R.budget_batches(budget, len(dataset.x_train))


def model_path(recipe: R.Recipe, key: str, cache_dir=None) -> pathlib.Path:
    """The cache file of a recipe's trained model,
    ``<cache>/models/<dataset>/<label>-<key[:12]>.keras``."""
    return _cache.cache_dir(cache_dir) / "models" / recipe.dataset / f"{recipe.label()}-{key[:12]}.keras"


def _load_verified(path: pathlib.Path):
    meta_path = path.with_suffix(".json")
    if not path.exists():
        return None
    problem = None
    if not meta_path.exists():
        problem = "its metadata file is missing"
    else:
        import json

        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as err:
            meta, problem = None, f"its metadata file {meta_path.name} is unreadable ({err})"
        if meta is not None and (not isinstance(meta, dict)
                                 or meta.get("sha256") != _cache.file_sha256(path)):
            problem = "its sha256 does not match the one recorded when it was written"
    if problem is None:
        try:
            return keras.models.load_model(path)
        except Exception as err:  # noqa: BLE001 - any load failure means a bad file
            problem = f"it failed to load ({type(err).__name__}: {err})"
    warnings.warn(f"cached model {path} is corrupt: {problem}; retraining it.", stacklevel=3)
    path.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
    return None


def cached_or_trained(recipe: R.Recipe, x_train, y_train, *, dataset, seed: int = 0,
                      cache_dir=None, progress: bool = True, probe=None, strategy=None,
                      extra_key: dict | None = None, retrain: bool = False):
    """Returns ``recipe`` trained on ``(x_train, y_train)``: from the cache or trained now."""
    data_fp = _fingerprint(dataset)
    if extra_key is None and y_train is not dataset.y_train:
        extra_key = {"labels": hashlib.sha256(np.ascontiguousarray(y_train).tobytes()).hexdigest()}
    key = _cache.cache_key(recipe, seed=seed, data_fingerprint=data_fp, extra=extra_key,
                           code=code_fingerprint())
    path = model_path(recipe, key, cache_dir)
    if not retrain:
        model = _load_verified(path)
        if model is not None:
            return model
    root = _cache.cache_dir(cache_dir)
    start = time.time()
    model, curves, provenance = T.train_recipe(
        recipe, x_train, y_train, seed=seed, checkpoint_path=path.with_suffix(".ckpt.keras"),
        probe=probe, tensorboard_dir=root / "logs" / path.stem, progress=progress,
        strategy=strategy)
    for w in model.network.weights:
        if not np.all(np.isfinite(w.numpy())):
            raise T.NonFiniteLossError(f"{recipe.label()} ended with non-finite weights ({w.path}).")
    _cache.atomic_write(path, model.save)
    T.write_curves(path.with_suffix(".curves.csv"), curves)
    _cache.write_json(path.with_suffix(".json"), {
        "recipe": dataclasses.asdict(recipe), "seed": seed, "key": key,
        "sha256": _cache.file_sha256(path), "train_seconds": round(time.time() - start, 1),
        "batches": recipe.total_batches(len(x_train)), "dataset": dataset.name,
        "data_deviation": dataset.deviation, "provenance": provenance,
        "op_determinism": T.op_determinism_enabled(), "data_fingerprint": data_fp,
        "recipe_key": _cache.cache_key(recipe, seed=seed, data_fingerprint=data_fp,
                                       extra=extra_key),
        "versions": _prov.versions(), "machine": _prov.machine_signature(),
    })
    path.with_suffix(".ckpt.keras").unlink(missing_ok=True)
    path.with_suffix(".ckpt.curves.json").unlink(missing_ok=True)
    return model


def reference_fgsm(dataset, *, eps: float = 0.2, n: int = 512, seed: int = 0, cache_dir=None,
                   progress: bool = True) -> np.ndarray:
    """FGSM ε images of the first ``n`` test images from a reference normal model (quick budget,
    an independent seed), standing in for the original's cached normal-model perturbation."""
    from gradreg_tf import attacks

    recipe = R.paper_recipe(dataset.name, "normal",
                            n_batches=R.budget_batches("quick", len(dataset.x_train)))
    ref = cached_or_trained(recipe, dataset.x_train, dataset.y_train, dataset=dataset,
                            seed=seed + REFERENCE_SEED_OFFSET, cache_dir=cache_dir,
                            progress=progress)
    x, y = dataset.x_test[:n], dataset.y_test[:n]
    lower, upper = float(np.min(dataset.x_train)), float(np.max(dataset.x_train))
    # clip(x + eps * sign, train min, train max) as the original, even for test images outside
    # the training range (SVHN's per-image GCN): attack within the wider range, then clip.
    wide = (min(lower, float(np.min(x))), max(upper, float(np.max(x))))
    return np.clip(np.asarray(attacks.fgsm(ref, x, eps, bounds=wide, y=y)), lower, upper)


def trained_model(dataset, model: str, *, budget: str = "paper", n_batches: int | None = None,
                  seed: int = 0, cache_dir=None, progress: bool = True, strategy=None,
                  recipe: R.Recipe | None = None, retrain: bool = False):
    """One of the paper's models, trained on ``dataset``: shipped, cached, or trained now.

    A model shipped with the package (:func:`pretrained`) answers first when its recipe, seed
    and training data are exactly the ones asked for (the paper's MNIST models at
    ``budget="paper"``, seed 0); then the user cache; else it is trained and cached.

    Args:
        dataset: a :class:`gradreg_tf.data.Dataset` (see :func:`gradreg_tf.data.load`).
        model: ``"normal"``, ``"distilled"``, ``"advtrain"``, ``"insensitive"``,
            ``"doubleback"`` or ``"both"``.
        budget: ``"paper"`` (default), ``"reduced"`` or ``"quick"``.
        n_batches: nominal batches, overriding the budget.
        seed: initialisation/dropout seed.
        cache_dir: cache root (default ``$GRADREG_CACHE`` or the user cache directory).
        progress: show progress bars.
        strategy: optional ``tf.distribute`` strategy.
        recipe: train this recipe instead of the paper's (e.g. from :func:`recipes.sweep_recipes`);
            ``model`` is then only used for display.
        retrain: ignore shipped and cached copies and train anew.

    Returns:
        A trained :class:`gradreg_tf.GradRegClassifier` (logits at temperature 1).

    Raises:
        ValueError: on an unknown model, budget or dataset.
        gradreg_tf.training.NonFiniteLossError: when training diverges.
        gradreg_tf.pretrained.PretrainedModelError: if the matching shipped model's file is
            missing or corrupt (never replaced by a silently different model).
    """
    from gradreg_tf.data.base import check_seed

    seed = check_seed(seed)
    batches = resolve_batches(dataset, budget, n_batches)
    if recipe is None:
        recipe = R.paper_recipe(dataset.name, model, n_batches=batches)
    if not retrain:
        shipped = shipped_match(dataset, recipe, seed=seed)
        if shipped is not None:
            return _pretrained.load(dataset.name, shipped)
    if not retrain:  # a cached model needs neither the probe nor (distilled) the soft labels
        cached = _load_verified(cached_model_path(dataset, model, budget=budget, n_batches=n_batches,
                                                  seed=seed, cache_dir=cache_dir, recipe=recipe))
        if cached is not None:
            return cached
    x_fgsm = reference_fgsm(dataset, seed=seed, cache_dir=cache_dir, progress=progress)
    probe = T.make_probe(dataset.x_test[:512], dataset.y_test[:512], x_fgsm)
    y_train = dataset.y_train
    if recipe.distill:
        teacher = cached_or_trained(teacher_recipe(recipe), dataset.x_train, y_train,
                                    dataset=dataset, seed=seed, cache_dir=cache_dir,
                                    progress=progress, probe=probe, strategy=strategy,
                                    retrain=retrain)
        y_train = soft_labels(teacher, dataset.x_train, temperature=recipe.temperature)
    extra = _student_key(recipe, dataset, seed)
    return cached_or_trained(recipe, dataset.x_train, y_train, dataset=dataset, seed=seed,
                             cache_dir=cache_dir, progress=progress, probe=probe,
                             strategy=strategy, extra_key=extra, retrain=retrain)


def cached_model_path(dataset, model: str, *, budget: str = "paper", n_batches: int | None = None,
                      seed: int = 0, cache_dir=None,
                      recipe: R.Recipe | None = None) -> pathlib.Path:
    """Where :func:`trained_model` keeps this model (``.keras``; it may not exist yet).

    The sidecars share the stem: ``.json`` (metadata) and ``.curves.csv`` (training curves).
    Arguments as :func:`trained_model`.
    """
    batches = resolve_batches(dataset, budget, n_batches)
    if recipe is None:
        recipe = R.paper_recipe(dataset.name, model, n_batches=batches)
    key = _cache.cache_key(recipe, seed=seed, data_fingerprint=_fingerprint(dataset),
                           extra=_student_key(recipe, dataset, seed), code=code_fingerprint())
    return model_path(recipe, key, cache_dir)


def cached_run(dataset, recipe: R.Recipe, *, seed: int = 0, cache_dir=None) -> pathlib.Path | None:
    """The newest cached ``.keras`` file trained with exactly ``recipe``, ``seed`` and
    ``dataset``'s training data, whatever training code wrote it (matched on the sidecar's
    recipe key), or None."""
    import json

    want = _cache.cache_key(recipe, seed=seed, data_fingerprint=_fingerprint(dataset),
                            extra=_student_key(recipe, dataset, seed))
    folder = _cache.cache_dir(cache_dir) / "models" / recipe.dataset
    found = []
    for meta_path in folder.glob(f"{recipe.label()}-*.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        path = meta_path.with_suffix(".keras")
        if isinstance(meta, dict) and meta.get("recipe_key", meta.get("key")) == want \
                and path.is_file():
            found.append(path)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def shipped_match(dataset, recipe: R.Recipe, *, seed: int = 0) -> str | None:
    """The name of the shipped pretrained model trained with exactly ``recipe``, ``seed`` and
    ``dataset``'s training data, or None."""
    found = _pretrained.find(recipe, seed=seed, data_fingerprint=_fingerprint(dataset),
                             extra=_student_key(recipe, dataset, seed))
    return None if found is None else found[1]


def pretrained(dataset, model: str):
    """A model shipped with the package, trained at the paper's schedule (no training, no cache).

    Args:
        dataset: ``"mnist"`` or a :class:`~gradreg_tf.data.Dataset` of it.
        model: ``"normal"``, ``"distilled"``, ``"advtrain"``, ``"insensitive"`` or ``"doubleback"``.

    Returns:
        The ready :class:`~gradreg_tf.GradRegClassifier` (uncompiled; logits at T = 1).

    Raises:
        gradreg_tf.pretrained.PretrainedModelError: if the model is not shipped, or its file is
            missing or corrupt (the message names the file and its expected sha256).

    Example:

    ```python
    model = gradreg_tf.zoo.pretrained("mnist", "doubleback")
    ```
    """
    return _pretrained.load(getattr(dataset, "name", dataset), model)


def trained_curves(dataset, model: str, *, budget: str = "paper", n_batches: int | None = None,
                   seed: int = 0, cache_dir=None, progress: bool = True,
                   recipe: R.Recipe | None = None) -> dict[str, np.ndarray]:
    """The training curves of a model (shipped, cached, or trained first).

    Rows every 100 batches and at the end (see :mod:`gradreg_tf.training`): ``batch``,
    ``loss``, ``cross_entropy``, ``penalty``, ``batch_accuracy``, ``test_accuracy`` (first 512
    test images) and ``fgsm_accuracy`` (the reference normal model's ε=0.2 FGSM images of
    them). Arguments as :func:`trained_model`.

    Returns:
        ``{column: float64 array}`` (NaN where a value was not recorded).

    Raises:
        FileNotFoundError: if the model is cached without its curves file.
    """
    import csv

    if recipe is None:
        recipe = R.paper_recipe(dataset.name, model,
                                n_batches=resolve_batches(dataset, budget, n_batches))
    shipped = shipped_match(dataset, recipe, seed=seed)
    if shipped is not None:
        path = _pretrained.curves_path(dataset.name, shipped)
    else:
        trained_model(dataset, model, budget=budget, n_batches=n_batches, seed=seed,
                      cache_dir=cache_dir, progress=progress, recipe=recipe)
        path = cached_model_path(dataset, model, budget=budget, n_batches=n_batches, seed=seed,
                                 cache_dir=cache_dir, recipe=recipe).with_suffix(".curves.csv")
    if not path.is_file():
        raise FileNotFoundError(f"training curves {path} are missing (the model is cached "
                                "without them); delete the cached model to retrain it.")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) if r.get(k) not in (None, "") else np.nan for r in rows])
            for k in T.CURVE_FIELDS}
