"""SVHN (cropped 32x32 digits), split and preprocessed as the paper's code did.

The original (datasets/svhn.py:80-194) read the official ``train_32x32.mat``,
``test_32x32.mat`` and ``extra_32x32.mat`` (``X`` uint8 ``(32, 32, 3, N)``, ``y`` ``(N, 1)``
with label 10 meaning digit 0) and:

1. mapped label 10 to 0 (l.90-92);
2. per class took the first 400 images of train and the first 200 of extra as validation
   (6,000 images) and the rest as training images (l.98-104);
3. shuffled each of the four index lists (l.106-109; unseeded ``random.shuffle``, seeded here
   with ``numpy.random.default_rng(seed)``) and concatenated extra before train, for the
   validation and the training set alike (l.111-114);
4. kept the test set in its official order (l.115-116);
5. converted RGB to gray ``x . [0.2989, 0.5870, 0.1140]`` (l.131-137) and applied per-image
   global contrast normalization ``(x - mean) / std`` with ``ddof=1`` and ``std < 1e-4``
   replaced by 1 (l.147-159), in float64, stored as float32;
6. trained on the first 200,000 training images only (``limit=200000``, l.34-37, 53, 194).

Since the shuffled extra indices come first and extra has 529,131 training images, the
first 200,000 are all extra images; this is what the original trained on and it is kept.

``Dataset.bounds`` is ``(min, max)`` over the normalized test images: the original clipped
attacks to the min/max of its test array (the notebook used the first 4,000 test images;
here all 26,032, a range at least as wide).

``extra_32x32.mat`` is optional. Without it validation is the first 400/class of train
(4,000) and training the remaining train images (69,257), and ``Dataset.deviation`` says so.
When no directory holds the files and ``data_dir`` is not given, tensorflow-datasets'
``svhn_cropped`` is used; its example ids restore the official order.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np

from gradreg_tf._checks import as_bounds
from gradreg_tf.data import _locate, _tfds
from gradreg_tf.data.base import DIGITS, DataError, Dataset, check_distinct, check_seed

TRAIN, TEST, EXTRA = "train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)
MIN_DIVISOR = 1e-4
VALID_PER_CLASS_TRAIN = 400
VALID_PER_CLASS_EXTRA = 200
TRAIN_LIMIT = 200000
_CHUNK = 8192  # images per preprocessing chunk (bounds float64 temporaries to ~200 MB)


def read_mat(path) -> tuple[np.ndarray, np.ndarray]:
    """Reads an official SVHN ``.mat`` file.

    Returns:
        ``(x, y)``: uint8 images ``(N, 32, 32, 3)`` (a view of ``X``) and int64 labels
        0..9 (10 mapped to 0).

    Raises:
        DataError: naming ``path`` if it cannot be read or does not have the official layout.
    """
    import scipy.io

    path = pathlib.Path(path)
    try:
        mat = scipy.io.loadmat(str(path), variable_names=("X", "y"))
    except Exception as err:  # scipy raises ValueError, OSError, NotImplementedError (v7.3), ...
        raise DataError(f"cannot read {path}: {type(err).__name__}: {err}.") from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise DataError(f"{path} lacks the variables 'X' and 'y' of the official layout.")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: X must be uint8 (32, 32, 3, N), received {x.dtype} {x.shape}.")
    n = x.shape[3]
    if y.size != n or (y.ndim == 2 and y.shape[1] != 1) or y.ndim > 2:
        raise DataError(f"{path}: y must have shape ({n}, 1), received {y.shape}.")
    y = y.reshape(-1).astype(np.int64)
    if n and (y.min() < 1 or y.max() > 10):
        raise DataError(
            f"{path}: y must hold labels 1..10 (10 = digit 0), received "
            f"[{int(y.min())}, {int(y.max())}]."
        )
    y[y == 10] = 0
    return np.moveaxis(x, -1, 0), y


def gray_gcn(x: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """RGB -> gray, then per-image global contrast normalization, as the original.

    Args:
        x: uint8 (or float) images ``(N, H, W, 3)``.
        index: optional indices of the images to convert (gathered chunk by chunk, so a
            large selection is never copied as uint8 at once); default all, in order.

    Returns:
        float32 ``(N, H, W, 1)``: ``g = x . [0.2989, 0.5870, 0.1140]`` and
        ``(g - mean(g)) / std(g, ddof=1)`` per image, with ``std < 1e-4`` replaced by 1,
        computed in float64.
    """
    n = len(x) if index is None else len(index)
    out = np.empty((n,) + x.shape[1:3] + (1,), np.float32)
    weights = np.array(GRAY_WEIGHTS, dtype=float)[:, None]
    for start in range(0, n, _CHUNK):
        part = slice(start, start + _CHUNK)
        images = x[part] if index is None else x[index[part]]
        gray = np.dot(images.astype(float), weights)[..., 0]
        mean = np.mean(gray, axis=(1, 2), dtype=float)
        std = np.std(gray, axis=(1, 2), dtype=float, ddof=1)
        std[std < MIN_DIVISOR] = 1.0
        out[part, ..., 0] = (gray - mean[:, None, None]) / std[:, None, None]
    return out


def _split(y: np.ndarray, n_valid: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per class in label order: the first ``n_valid`` indices -> valid, the rest -> train."""
    valid, train = [], []
    for label in range(10):
        idx = np.flatnonzero(y == label)
        if len(idx) <= n_valid:
            raise DataError(
                f"{name} has {len(idx)} images of digit {label}, need more than {n_valid} "
                f"({n_valid} go to the validation set)."
            )
        valid.append(idx[:n_valid])
        train.append(idx[n_valid:])
    return np.concatenate(valid), np.concatenate(train)


def _take(parts, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Concatenates ``(x, y, idx)`` selections in order, keeping the first ``limit`` images."""
    xs, ys = [], []
    left = np.inf if limit is None else limit
    for x, y, idx in parts:
        idx = idx[: int(min(left, len(idx)))]
        left -= len(idx)
        xs.append(gray_gcn(x, idx))
        ys.append(y[idx])
    return np.concatenate(xs), np.concatenate(ys)


def _build(train, test, extra, *, seed, valid_train, valid_extra, limit, source) -> Dataset:
    rng = np.random.default_rng(seed)
    valid_idx, train_idx = _split(train[1], valid_train, TRAIN)
    # Shuffle in the original's order: valid_index, train_index, valid_index2, train_index2.
    valid_idx, train_idx = rng.permutation(valid_idx), rng.permutation(train_idx)
    if extra is not None:
        valid_idx2, train_idx2 = _split(extra[1], valid_extra, EXTRA)
        valid_idx2, train_idx2 = rng.permutation(valid_idx2), rng.permutation(train_idx2)
        valid_parts = [(*extra, valid_idx2), (*train, valid_idx)]
        train_parts = [(*extra, train_idx2), (*train, train_idx)]
        deviation = ""
    else:
        valid_parts, train_parts = [(*train, valid_idx)], [(*train, train_idx)]
        deviation = (
            f"{EXTRA} not found: validation = the first {valid_train}/class of {TRAIN} "
            f"({len(valid_idx)} images), training = the remaining {TRAIN} images (the paper "
            f"also used {EXTRA}: {valid_extra}/class validation, and training on the first "
            f"{limit} of the shuffled rest of extra + train)."
        )
    x_train, y_train = _take(train_parts, limit)
    x_valid, y_valid = _take(valid_parts, None)
    x_test = gray_gcn(test[0])
    return Dataset(
        name="svhn", x_train=x_train, y_train=y_train, x_test=x_test, y_test=test[1],
        x_valid=x_valid, y_valid=y_valid,
        bounds=as_bounds((float(x_test.min()), float(x_test.max()))),
        class_names=DIGITS, source=source, deviation=deviation,
    )


@functools.lru_cache(maxsize=1)
def _load_files(sig, origin, seed, valid_train, valid_extra, limit) -> Dataset:
    train_path, test_path, extra_path = (None if s is None else pathlib.Path(s[0]) for s in sig)
    train, test = read_mat(train_path), read_mat(test_path)
    check_distinct(train[0], test[0], train_source=train_path, test_source=test_path)
    return _build(
        train, test,
        None if extra_path is None else read_mat(extra_path),
        seed=seed, valid_train=valid_train, valid_extra=valid_extra, limit=limit,
        source=f".mat files in {train_path.parent} ({origin})",
    )


def _tfds_split(split: dict) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(split["id"], kind="stable")  # ids "train_000123" = official order
    return split["image"][order], split["label"][order].astype(np.int64)


@functools.lru_cache(maxsize=1)
def _load_tfds(seed, valid_train, valid_extra, limit) -> Dataset:
    splits, source = _tfds.load_splits("svhn_cropped", ("train", "test", "extra"))
    return _build(
        _tfds_split(splits["train"]), _tfds_split(splits["test"]), _tfds_split(splits["extra"]),
        seed=seed, valid_train=valid_train, valid_extra=valid_extra, limit=limit,
        source=source + " (official order restored from example ids)",
    )


def load_svhn(
    *,
    data_dir=None,
    seed: int = 0,
    valid_per_class_train: int = VALID_PER_CLASS_TRAIN,
    valid_per_class_extra: int = VALID_PER_CLASS_EXTRA,
    train_limit: int | None = TRAIN_LIMIT,
) -> Dataset:
    """Loads SVHN as grayscale, contrast-normalized 32x32 images.

    Args:
        data_dir: directory holding ``train_32x32.mat`` and ``test_32x32.mat`` (and
            optionally ``extra_32x32.mat``), directly or in a ``svhn/`` subfolder. Default:
            ``$GRADREG_DATA_DIR``, then tensorflow-datasets ``svhn_cropped``.
        seed: seed of the shuffles (the original's were unseeded).
        valid_per_class_train: leading images per class of train that go to validation.
        valid_per_class_extra: leading images per class of extra that go to validation.
        train_limit: keep the first this many training images (``None``: all).

    Returns:
        A read-only :class:`Dataset`; 200,000 / 6,000 / 26,032 train / valid / test with
        the official files.

    Raises:
        DataNotFoundError: if no place holds train and test (the message lists them).
        DataError: if a file is unreadable, not in the official layout, or a class has too
            few images for the validation split.
        ValueError: on a negative seed or non-positive counts.
    """
    seed = check_seed(seed)
    counts = {"valid_per_class_train": valid_per_class_train,
              "valid_per_class_extra": valid_per_class_extra, "train_limit": train_limit}
    for key, value in counts.items():
        if key == "train_limit" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{key} must be a positive integer, received {value!r}.")
    params = (int(valid_per_class_train), int(valid_per_class_extra),
              None if train_limit is None else int(train_limit))
    looked = []
    for place in _locate.places("svhn", data_dir, bundled=False):
        train, test, extra = (place.path / f if (place.path / f).exists() else None
                              for f in (TRAIN, TEST, EXTRA))
        if train is not None and test is not None:
            return _load_files(_locate.signature([train, test, extra]), place.origin, seed, *params)
        found = [p.name for p in (train, test, extra) if p is not None]
        looked.append(f"{place}" + (f": only {', '.join(found)}" if found else ""))
    if data_dir is None:
        try:
            return _load_tfds(seed, *params)
        except _tfds.TfdsUnavailable as err:
            looked.append(f"{_tfds.describe('svhn_cropped')}: {err}")
    raise _locate.not_found("svhn", [TRAIN, TEST, f"{EXTRA} (optional)"], looked)
