"""MNIST, split and scaled as the paper's code did.

The original loaded MNIST with TensorFlow's old
``tensorflow.examples.tutorials.mnist.input_data.read_data_sets(datadir)`` defaults
(datasets/mnist.py:21-24): pixels ``uint8 * float32(1/255)`` in ``[0, 1]``, the first 5,000
training images held out as validation, the remaining 55,000 used for training, the 10,000
test images in their official order. This module reproduces that from the four official
IDX files (gzipped or not) and keeps the images as ``(N, 28, 28, 1)`` instead of 784-vectors.

Content check: every IDX file whose header has the official image count (60,000 train,
10,000 test) must match the sha256 of the official uncompressed content, and a file holding
another official file's content (the test images under a ``train-*`` name) is refused; smaller
files (e.g. synthetic test fixtures) are parsed and shape-checked but cannot be checksummed,
and training images identical to the test images are refused whatever their size.

When no directory holds the files, tensorflow-datasets' ``mnist`` builder is used (only when
``data_dir`` is not given). Its example order differs from the official files, so the
validation split and the test order then differ from the paper's; ``Dataset.deviation`` says so.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import pathlib
import struct
import zlib

import numpy as np

from gradreg_tf.data import _locate, _tfds
from gradreg_tf.data.base import DIGITS, DataError, Dataset, check_distinct, check_seed
from gradreg_tf.types import Bounds

BOUNDS = Bounds(0.0, 1.0)
VALIDATION_SIZE = 5000  # read_data_sets' default validation_size

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# sha256 of the official *uncompressed* content (shared/data/README.md, bundled/README.md).
SHA256 = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
OFFICIAL_COUNT = {TRAIN_IMAGES: 60000, TRAIN_LABELS: 60000, TEST_IMAGES: 10000, TEST_LABELS: 10000}
MAGIC = {TRAIN_IMAGES: 2051, TRAIN_LABELS: 2049, TEST_IMAGES: 2051, TEST_LABELS: 2049}

TFDS_DEVIATION = (
    "Loaded from tensorflow-datasets 'mnist', whose example order differs from the official "
    "IDX files: the 5,000 validation images (the paper's held-out first 5,000) and the test "
    "order are not the paper's."
)


def _read_bytes(path: pathlib.Path) -> bytes:
    """Reads a file, gunzipping ``*.gz``; unreadable or truncated files raise DataError."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(
            f"cannot read {path}: {type(err).__name__}: {err}. The file is truncated or "
            "corrupt; replace it with the official file."
        ) from None


def read_idx(path, *, magic: int) -> tuple[np.ndarray, bool]:
    """Parses one IDX file of unsigned bytes and checks its header.

    Args:
        path: ``*.gz`` or uncompressed IDX file.
        magic: expected magic number: 2051 for images, 2049 for labels.

    Returns:
        ``(array, verified)``: the uint8 array of the header's dims, and whether the
        content was checked against the official sha256 (it is whenever the file has the
        official count, 60,000 or 10,000).

    Raises:
        DataError: naming ``path`` if it is truncated, not IDX, has the wrong magic number,
            or has the official count but not the official content.
    """
    path = pathlib.Path(path)
    raw = _read_bytes(path)
    ndim = magic - 2048
    received = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if received != magic:
        raise DataError(
            f"{path} is not an IDX file of {ndim}-d unsigned bytes: magic number {received}, "
            f"expected {magic}."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, shorter than its header.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    size = header + int(np.prod(dims))
    if len(raw) != size:
        raise DataError(
            f"{path} has {len(raw)} bytes of content but its header (dims {dims}) needs "
            f"{size}; the file is truncated or corrupt."
        )
    key = path.name.removesuffix(".gz")
    verified = key in SHA256 and dims[0] == OFFICIAL_COUNT[key]
    if dims[0] in OFFICIAL_COUNT.values():
        digest = hashlib.sha256(raw).hexdigest()
        other = next((k for k, v in SHA256.items() if v == digest and k != key), None)
        if other is not None:
            raise DataError(
                f"{path} holds the official {other} content, not {key}: the files are "
                "misnamed (e.g. the test set under the training name)."
            )
    if verified:
        if digest != SHA256[key]:
            raise DataError(
                f"{path} has the official size but not the official content: sha256 of the "
                f"uncompressed bytes is {digest}, expected {SHA256[key]}."
            )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims), verified


def _pair(images_path: pathlib.Path, labels_path: pathlib.Path) -> tuple:
    """Reads matching image and label files; returns ``(images, labels, checksum_verified)``."""
    images, ok_x = read_idx(images_path, magic=2051)
    labels, ok_y = read_idx(labels_path, magic=2049)
    if images.shape[1:] != (28, 28):
        raise DataError(
            f"{images_path} holds images of shape {images.shape[1:]}, expected (28, 28)."
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels."
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path} has label {int(labels.max())}, expected labels 0..9.")
    return images, labels, ok_x and ok_y


def _scale(images: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1] exactly as read_data_sets: ``x.astype(float32) * (1/255)``."""
    return (images.astype(np.float32) * np.float32(1.0 / 255.0)).reshape(-1, 28, 28, 1)


def _build(train_x, train_y, test_x, test_y, *, validation_size, source, deviation) -> Dataset:
    if not 0 <= validation_size < len(train_x):
        raise ValueError(
            f"validation_size must be in [0, {len(train_x)}) for {len(train_x)} training "
            f"images, received {validation_size}."
        )
    x, x_test = _scale(train_x), _scale(test_x)
    return Dataset(
        name="mnist",
        x_train=x[validation_size:], y_train=train_y[validation_size:],
        x_test=x_test, y_test=test_y,
        x_valid=x[:validation_size], y_valid=train_y[:validation_size],
        bounds=BOUNDS, class_names=DIGITS, source=source, deviation=deviation,
    )


@functools.lru_cache(maxsize=4)
def _load_files(sig: tuple, origin: str, validation_size: int) -> Dataset:
    paths = [pathlib.Path(entry[0]) for entry in sig]
    train_x, train_y, ok_train = _pair(paths[0], paths[1])
    test_x, test_y, ok_test = _pair(paths[2], paths[3])
    check_distinct(train_x, test_x, train_source=paths[0], test_source=paths[2])
    check = (
        "official content, sha256 verified" if ok_train and ok_test
        else "not the official counts, sha256 not checked"
    )
    source = f"IDX files in {paths[0].parent} ({origin}; {check})"
    return _build(train_x, train_y, test_x, test_y,
                  validation_size=validation_size, source=source, deviation="")


@functools.lru_cache(maxsize=1)
def _load_tfds(validation_size: int) -> Dataset:
    splits, source = _tfds.load_splits("mnist", ("train", "test"))
    train, test = splits["train"], splits["test"]
    return _build(train["image"][..., 0], train["label"], test["image"][..., 0], test["label"],
                  validation_size=validation_size, source=source, deviation=TFDS_DEVIATION)


def load_mnist(*, data_dir=None, seed: int = 0, validation_size: int = VALIDATION_SIZE) -> Dataset:
    """Loads MNIST: 55,000 train / 5,000 valid / 10,000 test, pixels in [0, 1].

    Args:
        data_dir: directory holding the four IDX files (``.gz`` or uncompressed), directly
            or in a ``mnist/`` subfolder. Default: ``$GRADREG_DATA_DIR``, then the bundled
            copy, then tensorflow-datasets.
        seed: unused (the split is deterministic); accepted for a uniform loader signature.
        validation_size: how many leading training images form the validation set.

    Returns:
        A read-only :class:`Dataset` (shared by an in-process cache).

    Raises:
        DataNotFoundError: if no place holds all four files (the message lists them).
        DataError: if a file is truncated, malformed or fails the checksum.
        ValueError: on a negative seed or an out-of-range ``validation_size``.
    """
    check_seed(seed)  # accepted for a uniform signature; the split is deterministic
    looked = []
    for place in _locate.places("mnist", data_dir, bundled=True):
        paths = [_locate.first_existing(place.path, (f + ".gz", f)) for f in FILES]
        if all(paths):
            return _load_files(_locate.signature(paths), place.origin, int(validation_size))
        found = [p.name for p in paths if p is not None]
        looked.append(f"{place}" + (f": only {', '.join(found)}" if found else ""))
    if data_dir is None:
        try:
            return _load_tfds(int(validation_size))
        except _tfds.TfdsUnavailable as err:
            looked.append(f"{_tfds.describe('mnist')}: {err}")
    raise _locate.not_found("mnist", [f"{f}.gz (or {f})" for f in FILES], looked)
