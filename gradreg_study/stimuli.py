"""Stimuli of the human-subject study: adversarial examples written as a copyable study folder.

Ross & Doshi-Velez (AAAI 2018, abstract and §Experiments) report that people rated targeted
adversarial examples made against gradient-regularized models as more often showing the target
class. The stimuli follow the original's grid generators (``scripts/generate_tgsm_grids.py``,
``generate_jsma_grids.py``; ``experiments/tgsm_grids.py`` here): the first ``n_per_class`` test
images of every class, each pushed toward every other class. A *condition* is the model an
example was crafted against; an *item* is an (original image, target class) pair. An item is
kept only when the attack reached its target against every compared model, so every condition
shows the same items.

Each stimulus is saved as an 8-bit PNG (the dataset's ``bounds`` mapped linearly onto 0..255;
MNIST's pixels k/255 round-trip up to float32 rounding), and the models' predictions and the
success filter are computed on the image *as saved*, i.e. on what people will see. Clean test
images that are not originals (the next ``n_attention_per_class`` of each class) are saved as
attention checks.

A study is a folder ``images/<condition>/<item>.png``, ``images/clean/<test>.png`` and
``manifest.json`` (attack settings, items, every stimulus with its sha256 and the model's
prediction, provenance). It is built in a temporary sibling folder and renamed into place, so
a crash never leaves a half-written study. Cost: ``n_models * K`` attack calls of
``n_per_class * K`` images (TGSM, ``steps`` gradient steps each) or ``n_models * K * (K - 1) *
n_per_class`` JSMA runs.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
import math
import os
import pathlib
import re
import shutil
import tempfile
import time
from typing import Callable, Mapping, Sequence

import numpy as np

FORMAT = "gradreg_tf.study/1"  # on-disk format id, unchanged by the package move
MANIFEST = "manifest.json"
DATABASE = "responses.sqlite3"
CLEAN = "clean"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class StudyError(ValueError):
    """A study folder is missing files, has a changed file or an unreadable manifest."""


class Attack(str, enum.Enum):
    """Attacks that can make the stimuli."""

    TGSM = "tgsm"
    JSMA = "jsma"


@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """How the adversarial stimuli are made.

    Attributes:
        attack: :attr:`Attack.TGSM` (iterated targeted gradient sign, the default) or
            :attr:`Attack.JSMA`.
        eps: TGSM step size in data units (the paper's grids: 0.1).
        steps: TGSM iterations (the paper's MNIST/notMNIST grids: 10).
        theta: JSMA change per selected feature (the original: 1.0).
        gamma: JSMA maximum fraction of features changed (the original: 0.25).
    """

    attack: Attack = Attack.TGSM
    eps: float = 0.1
    steps: int = 10
    theta: float = 1.0
    gamma: float = 0.25

    def __post_init__(self):
        try:
            object.__setattr__(self, "attack", Attack(self.attack))
        except ValueError:
            raise ValueError(f"attack must be one of {[a.value for a in Attack]}, received "
                             f"{self.attack!r}.") from None
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be a finite number > 0, received {self.eps!r}.")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, received {self.steps!r}.")
        if not (isinstance(self.theta, (int, float)) and math.isfinite(self.theta)
                and self.theta != 0):
            raise ValueError(f"theta must be a finite non-zero number, received {self.theta!r}.")
        if not (isinstance(self.gamma, (int, float)) and 0 < self.gamma <= 1):
            raise ValueError(f"gamma must be in (0, 1], received {self.gamma!r}.")

    def as_dict(self) -> dict:
        """The settings that apply to the chosen attack, for the manifest."""
        if self.attack is Attack.TGSM:
            return {"attack": "tgsm", "eps": float(self.eps), "steps": self.steps,
                    "gradient_batch": "all originals of one target (as the grid scripts)"}
        return {"attack": "jsma", "theta": float(self.theta), "gamma": float(self.gamma)}


def to_uint8(x: np.ndarray, bounds) -> np.ndarray:
    """Maps images in ``bounds`` linearly onto 0..255 (rounded), as they are saved."""
    lower, upper = bounds
    scaled = (np.asarray(x, np.float64) - lower) / (upper - lower) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def from_uint8(u8: np.ndarray, bounds) -> np.ndarray:
    """The inverse of :func:`to_uint8`: float32 images in data units."""
    lower, upper = bounds
    return (lower + np.asarray(u8, np.float64) / 255.0 * (upper - lower)).astype(np.float32)


def originals(y: np.ndarray, n_classes: int, n_per_class: int, *, offset: int = 0,
              classes: Sequence[int] | None = None) -> np.ndarray:
    """Test indices of the ``offset``-th to ``offset + n_per_class - 1``-th image of each class,
    class-major (the grid scripts' ``Xta`` order).

    Raises:
        ValueError: if a class has too few test images or ``n_per_class`` < 0.
    """
    if n_per_class < 0:
        raise ValueError(f"n_per_class must be >= 0, received {n_per_class}.")
    y = np.asarray(y)
    out = []
    for k in (range(n_classes) if classes is None else classes):
        idx = np.flatnonzero(y == k)
        if len(idx) < offset + n_per_class:
            raise ValueError(f"class {k} has {len(idx)} test images, need "
                             f"{offset + n_per_class}.")
        out.extend(int(i) for i in idx[offset:offset + n_per_class])
    return np.asarray(out, np.int64)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _probabilities(model, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    parts = [np.asarray(model(x[i:i + batch_size], training=False), np.float64)
             for i in range(0, len(x), batch_size)]
    return _softmax(np.concatenate(parts))


@dataclasses.dataclass(frozen=True)
class Crafted:
    """Adversarial images of one model for every (original, target) pair.

    Attributes:
        images: uint8 ``(n_originals, K, H, W, C)``; ``[i, y_i]`` holds the original.
        probabilities: ``(n_originals, K, K)`` softmax of the model on ``images``.
    """

    images: np.ndarray
    probabilities: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(-1)


def craft(model, x: np.ndarray, y: np.ndarray, *, bounds, n_classes: int,
          settings: AttackSettings, targets: Sequence[int] | None = None,
          on_target: Callable[[], None] | None = None) -> Crafted:
    """Attacks every original toward every other class; predicts on the saved 8-bit images.

    Args:
        model: Keras model (or callable) returning logits.
        x: originals ``(n, H, W, C)`` in data units.
        y: their labels ``(n,)``.
        bounds: the dataset's pixel range.
        n_classes: number of classes K.
        settings: the attack and its parameters.
        targets: target classes to attack (default: all); other cells hold the original.
        on_target: called once per target class (TGSM) or per original (JSMA), for progress.

    Returns:
        :class:`Crafted`.
    """
    from gradreg_tf import attacks

    n = len(x)
    targets = list(range(n_classes)) if targets is None else list(targets)
    grid = np.repeat(to_uint8(x, bounds)[:, None], n_classes, axis=1)
    if settings.attack is Attack.TGSM:
        for t in targets:
            x_adv = attacks.tgsm(model, x, settings.eps, bounds=bounds,
                                 y_target=np.full(n, t), steps=settings.steps, batch_size=n)
            keep = y != t
            grid[keep, t] = to_uint8(np.asarray(x_adv), bounds)[keep]
            if on_target:
                on_target()
    else:
        for i in range(n):
            others = np.array([t for t in targets if t != y[i]])
            res = attacks.jsma(model, np.repeat(x[i:i + 1], len(others), axis=0),
                               y_target=others, bounds=bounds, theta=settings.theta,
                               gamma=settings.gamma)
            grid[i, others] = to_uint8(np.asarray(res.x_adv), bounds)
            if on_target:
                on_target()
    flat = grid.reshape((n * n_classes,) + grid.shape[2:])
    probs = _probabilities(model, from_uint8(flat, bounds)).reshape(n, n_classes, -1)
    return Crafted(grid, probs)


def _check_models(models: Mapping[str, object]) -> list[str]:
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"models must be a non-empty dict {{condition: model}}, received "
                         f"{type(models).__name__} {models!r:.80}.")
    names = list(models)
    for name in names:
        if not isinstance(name, str) or not NAME_PATTERN.match(name) or name == CLEAN:
            raise ValueError(f"condition names must match {NAME_PATTERN.pattern} and not be "
                             f"{CLEAN!r}, received {name!r}.")
    return names


def check_destination(out_dir: pathlib.Path, overwrite: bool) -> None:
    """Refuses to write a study into ``out_dir`` unless it is new, or ``overwrite`` is set and it
    is a study folder without collected answers.

    Raises:
        FileExistsError: naming the folder and why it is kept.
    """
    if out_dir.exists():
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists; choose another folder or overwrite it.")
        if (out_dir / DATABASE).exists():
            raise FileExistsError(f"{out_dir} holds collected answers ({DATABASE}); move them "
                                  "away before overwriting the study.")
        if not (out_dir / MANIFEST).exists():
            raise FileExistsError(f"{out_dir} exists and is not a study folder; refusing to "
                                  "overwrite it.")


def make_study(models: Mapping[str, object], dataset, out_dir, *,
               settings: AttackSettings = AttackSettings(), n_per_class: int = 5,
               n_attention_per_class: int = 2, classes: Sequence[int] | None = None,
               overwrite: bool = False, progress: bool = True,
               provenance: dict | None = None) -> "Study":
    """Crafts the stimuli against every model and writes the study folder.

    Args:
        models: ``{condition: model}``; the condition names (e.g. the paper's ``normal``,
            ``distilled``, ``advtrain``, ``insensitive``, ``doubleback``) name the folders.
        dataset: a :class:`gradreg_tf.data.Dataset` (or any object with ``name``,
            ``x_test``, ``y_test``, ``bounds``, ``class_names``).
        out_dir: the study folder to create.
        settings: the attack (default: iterated TGSM, eps 0.1, 10 steps).
        n_per_class: originals per class (the paper's grids: 5).
        n_attention_per_class: clean attention-check images per class (the test images
            after the originals).
        classes: restrict originals and targets to these classes (default: all).
        overwrite: replace an existing study folder (never one holding answers).
        progress: show a progress bar.
        provenance: extra fields recorded in the manifest (budget, seed, command ...).

    Returns:
        The written :class:`Study`.

    Raises:
        ValueError: bad models, settings, counts or classes (before any attack runs).
        FileExistsError: ``out_dir`` exists (and ``overwrite`` is off, or it holds answers).
        StudyError: no item succeeded against every model.
    """
    names = _check_models(models)
    if not isinstance(settings, AttackSettings):
        raise TypeError(f"settings must be an AttackSettings, received {type(settings).__name__}.")
    out_dir = pathlib.Path(out_dir)
    check_destination(out_dir, overwrite)
    n_classes = len(dataset.class_names)
    if classes is not None:
        classes = sorted({int(c) for c in classes})
        if len(classes) < 2 or classes[0] < 0 or classes[-1] >= n_classes:
            raise ValueError(f"classes must hold at least 2 labels in [0, {n_classes}), "
                             f"received {classes}.")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, received {n_per_class}.")
    bounds = tuple(float(b) for b in dataset.bounds)
    idx = originals(dataset.y_test, n_classes, n_per_class, classes=classes)
    att_idx = originals(dataset.y_test, n_classes, n_attention_per_class, offset=n_per_class,
                        classes=classes)
    x = np.asarray(dataset.x_test[idx], np.float32)
    y = np.asarray(dataset.y_test[idx], np.int64)
    for name in names:
        out = np.asarray(models[name](x[:1], training=False))
        if out.shape != (1, n_classes):
            raise ValueError(f"model {name!r} returns logits of shape {out.shape[1:]}, expected "
                             f"({n_classes},) for the {n_classes} classes of {dataset.name}.")
    targets = classes if classes is not None else list(range(n_classes))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        per_model = len(targets) if settings.attack is Attack.TGSM else len(x)
        bar = tqdm(total=len(names) * per_model, desc=f"{settings.attack.value} stimuli",
                   unit="target" if settings.attack is Attack.TGSM else "image")
    crafted, start = {}, time.time()
    for name in names:
        if bar is not None:
            bar.set_postfix_str(name)
        crafted[name] = craft(models[name], x, y, bounds=bounds, n_classes=n_classes,
                              settings=settings, targets=targets,
                              on_target=bar.update if bar else None)
    if bar is not None:
        bar.close()
    manifest, images = _layout(dataset, names, crafted, idx, y, targets, att_idx, models, bounds)
    if not manifest["items"]:
        raise StudyError("the attack reached its target against every model on none of the "
                         f"{len(manifest['dropped'])} (original, target) pairs; nothing to show.")
    manifest.update({
        "attack": settings.as_dict(),
        "originals": {"n_per_class": n_per_class, "test_indices": idx.tolist(),
                      "classes": targets},
        "n_attention_per_class": n_attention_per_class,
        "seconds_attacks": round(time.time() - start, 1),
        "provenance": {**(provenance or {}), **_versions()},
    })
    return write_study(out_dir, manifest, images, overwrite=overwrite)


def _layout(dataset, names, crafted, idx, y, targets, att_idx, models, bounds):
    """Manifest entries and ``{file: uint8 image}`` for the kept items and attention checks."""
    items, stimuli, dropped, images = [], [], [], {}
    for i, (test_index, label) in enumerate(zip(idx.tolist(), y.tolist())):
        for t in targets:
            if t == label:
                continue
            failed = [m for m in names if crafted[m].predicted[i, t] != t]
            if failed:
                dropped.append({"test_index": test_index, "target": t, "failed": failed})
                continue
            item_id = f"test{test_index}-to{t}"
            items.append({"item_id": item_id, "test_index": test_index,
                          "original_label": label, "target": t})
            for m in names:
                probs = crafted[m].probabilities[i, t]
                file = f"images/{m}/{item_id}.png"
                images[file] = crafted[m].images[i, t]
                stimuli.append({
                    "stimulus_id": f"{m}/{item_id}", "kind": "adversarial", "condition": m,
                    "item_id": item_id, "original_label": label, "target": t, "file": file,
                    "predicted": int(probs.argmax()), "p_target": round(float(probs[t]), 6),
                    "p_original": round(float(probs[label]), 6),
                    "linf": round(float(np.max(np.abs(
                        from_uint8(images[file], bounds) - dataset.x_test[test_index]))), 6),
                    "transfer_predictions": {
                        other: int(crafted[other].predicted[i, t]) for other in names},
                })
    attention = []
    clean_u8 = to_uint8(np.asarray(dataset.x_test[att_idx]), bounds)
    clean_x = from_uint8(clean_u8, bounds)
    preds = {m: _probabilities(models[m], clean_x).argmax(1) for m in names}
    for j, test_index in enumerate(att_idx.tolist()):
        file = f"images/{CLEAN}/test{test_index}.png"
        images[file] = clean_u8[j]
        label = int(dataset.y_test[test_index])
        attention.append({"stimulus_id": f"{CLEAN}/test{test_index}", "kind": "attention",
                          "condition": None, "item_id": None, "original_label": label,
                          "target": None, "file": file, "test_index": test_index,
                          "model_predictions": {m: int(preds[m][j]) for m in names}})
    manifest = {
        "format": FORMAT, "dataset": dataset.name, "class_names": list(dataset.class_names),
        "bounds": list(bounds), "image_shape": list(np.shape(dataset.x_test)[1:]),
        "conditions": list(names), "items": items, "stimuli": stimuli,
        "attention": attention, "dropped": dropped,
        "encoding": "8-bit PNG, bounds mapped linearly onto 0..255; predictions are of the "
                    "saved image",
    }
    return manifest, images


def _versions() -> dict:
    from gradreg_tf import provenance

    return {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **provenance.versions(("gradreg_tf", "numpy", "python"))}


def _write_png(path: pathlib.Path, image: np.ndarray) -> None:
    from PIL import Image

    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"stimulus images must be uint8 (H, W[, C]), received {arr.dtype} "
                         f"{arr.shape}.")
    Image.fromarray(arr).save(path, format="PNG")


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_study(out_dir, manifest: dict, images: Mapping[str, np.ndarray], *,
                overwrite: bool = False) -> "Study":
    """Writes ``images`` as PNGs and ``manifest`` (with each file's sha256) as a study folder.

    The folder is assembled under a temporary name next to ``out_dir`` and renamed into place,
    so a crash leaves either no study or a complete one.

    Args:
        out_dir: the study folder.
        manifest: the manifest; every entry of ``stimuli`` and ``attention`` names a ``file``.
        images: ``{file: uint8 array (H, W[, C])}``, one per manifest file.
        overwrite: replace an existing study folder (never one holding answers).

    Returns:
        The written :class:`Study`.

    Raises:
        ValueError: a manifest file without an image or an image not in the manifest.
        FileExistsError: as :func:`make_study`.
    """
    out_dir = pathlib.Path(out_dir)
    check_destination(out_dir, overwrite)
    entries = list(manifest.get("stimuli", [])) + list(manifest.get("attention", []))
    files = [e["file"] for e in entries]
    if sorted(files) != sorted(images) or len(set(files)) != len(files):
        raise ValueError("the manifest's files and the images differ: "
                         f"{sorted(set(files) ^ set(images))[:5]} ...")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for entry in entries:
            path = tmp / entry["file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_png(path, images[entry["file"]])
            entry["sha256"] = _sha256(path)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return load_study(out_dir)


@dataclasses.dataclass(frozen=True)
class Study:
    """A study folder as loaded (and verified) by :func:`load_study`.

    Attributes:
        root: the folder.
        manifest: the parsed ``manifest.json``.
        fingerprint: sha256 of ``manifest.json`` (which holds every image's sha256).
    """

    root: pathlib.Path
    manifest: dict
    fingerprint: str

    @property
    def conditions(self) -> tuple[str, ...]:
        return tuple(self.manifest["conditions"])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.manifest["class_names"])

    @property
    def items(self) -> list[dict]:
        return self.manifest["items"]

    @property
    def stimuli(self) -> list[dict]:
        """Every stimulus: the adversarial ones, then the attention checks."""
        return self.manifest["stimuli"] + self.manifest["attention"]

    @property
    def attention(self) -> list[dict]:
        return self.manifest["attention"]

    def path(self, stimulus: dict) -> pathlib.Path:
        return self.root / stimulus["file"]

    def image(self, stimulus: dict) -> np.ndarray:
        """A stimulus decoded to float32 data units ``(H, W, C)``, as a model sees it."""
        from PIL import Image

        with Image.open(self.path(stimulus)) as img:
            arr = np.asarray(img)
        if arr.ndim == 2:
            arr = arr[..., None]
        return from_uint8(arr, self.manifest["bounds"])


_REQUIRED = ("format", "dataset", "class_names", "bounds", "conditions", "items", "stimuli",
             "attention")


def load_study(path, *, verify: bool = True) -> Study:
    """Reads a study folder and (by default) checks every image against its sha256.

    Args:
        path: the study folder written by :func:`make_study` / :func:`write_study`.
        verify: check that every image exists and is unchanged.

    Returns:
        :class:`Study`.

    Raises:
        FileNotFoundError: ``path`` is not a folder with a ``manifest.json``.
        StudyError: an unreadable or foreign manifest, a missing or changed image, or a
            condition without a stimulus for some item.
    """
    root = pathlib.Path(path).resolve()
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{root} is not a study folder (no {MANIFEST}); make one with "
                                "`python experiments/human_study.py make-stimuli`.")
    raw = manifest_path.read_bytes()
    try:
        manifest = json.loads(raw)
    except ValueError as err:
        raise StudyError(f"{manifest_path} is not valid JSON: {err}.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise StudyError(f"{manifest_path} has format {found!r}, expected {FORMAT!r}.")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise StudyError(f"{manifest_path} lacks the fields {missing}.")
    study = Study(root, manifest, hashlib.sha256(raw).hexdigest())
    by_item = {}
    for s in manifest["stimuli"]:
        by_item.setdefault(s["item_id"], set()).add(s["condition"])
    want = set(study.conditions)
    for item in manifest["items"]:
        if by_item.get(item["item_id"]) != want:
            have = sorted(by_item.get(item["item_id"], ()))
            raise StudyError(f"item {item['item_id']} has stimuli for conditions {have}, "
                             f"expected {sorted(want)}.")
    if verify:
        for s in study.stimuli:
            file = study.path(s)
            if not file.is_file():
                raise StudyError(f"{file} is missing (listed in {manifest_path}).")
            if _sha256(file) != s["sha256"]:
                raise StudyError(f"{file} differs from the file the manifest records "
                                 "(sha256 mismatch).")
    return study
