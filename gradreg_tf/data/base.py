"""The immutable :class:`Dataset` record every loader returns, and the data errors."""

from __future__ import annotations

import dataclasses

import numpy as np

from gradreg_tf._checks import as_bounds, check_labels
from gradreg_tf.types import Bounds

DIGITS = tuple(str(i) for i in range(10))
LETTERS = tuple("ABCDEFGHIJ")

# Display names, as the original's Dataset subclasses printed them (dataset.py:13-16).
TITLES = {"mnist": "MNIST", "notmnist": "notMNIST", "svhn": "SVHN"}


class DataError(ValueError):
    """A data file was found but is unreadable, truncated or not the expected content."""


class DataNotFoundError(FileNotFoundError):
    """No location holds the files of a dataset; the message lists the names and places."""


def readonly(array: np.ndarray) -> np.ndarray:
    """Returns ``array`` as a C-contiguous array whose ``writeable`` flag is off."""
    out = np.ascontiguousarray(array)
    out.flags.writeable = False
    return out


def check_distinct(train: np.ndarray, test: np.ndarray, *, train_source, test_source) -> None:
    """Refuses a training set identical to the test set (e.g. test files copied to train names).

    Raises:
        DataError: naming both sources, if the two image arrays are equal.
    """
    if train.shape == test.shape and np.array_equal(train, test):
        raise DataError(
            f"{train_source} holds the same {len(train)} images as {test_source}: the training "
            "files are a copy of the test files. Use the official training files."
        )


def check_seed(seed) -> int:
    """Checks a random seed: a non-negative integer.

    Raises:
        ValueError: if ``seed`` is not an integer >= 0.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, received {seed!r}.")
    return int(seed)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Train/validation/test arrays of one dataset, preprocessed as in the paper.

    Instances are shared by the in-process cache of :func:`gradreg_tf.data.load`, so the
    record is frozen and every array is read-only; copy an array before changing it.

    Attributes:
        name: dataset key as passed to ``load``: ``"mnist"``, ``"notmnist"`` or ``"svhn"``.
        x_train: float32 images, shape ``(N, H, W, 1)`` (NHWC).
        y_train: int64 labels in ``[0, len(class_names))``, shape ``(N,)``.
        x_test: float32 test images, NHWC.
        y_test: int64 test labels.
        x_valid: float32 validation images, NHWC (may hold zero images).
        y_valid: int64 validation labels (may be empty).
        bounds: closed pixel range of the dataset; attacks clip to it.
        class_names: one name per label: digits ``"0".."9"`` or letters ``"A".."J"``.
        source: where the files came from (paths or the tensorflow-datasets builder).
        deviation: how this data differs from the paper's, ``""`` if it does not.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    bounds: Bounds
    class_names: tuple[str, ...]
    source: str
    deviation: str = ""

    def __post_init__(self):
        set_ = object.__setattr__  # the dataclass is frozen
        set_(self, "bounds", as_bounds(self.bounds))
        set_(self, "class_names", tuple(str(c) for c in self.class_names))
        n_classes = len(self.class_names)
        shape = None
        for split in ("train", "test", "valid"):
            x = np.asarray(getattr(self, f"x_{split}"))
            if x.dtype != np.float32 or x.ndim != 4:
                raise ValueError(
                    f"x_{split} must be a float32 NHWC array, received dtype {x.dtype} "
                    f"and shape {x.shape}."
                )
            if shape is not None and x.shape[0] and x.shape[1:] != shape:
                raise ValueError(
                    f"x_{split} has image shape {x.shape[1:]}, expected {shape} like x_train."
                )
            shape = shape or x.shape[1:]
            y = check_labels(
                getattr(self, f"y_{split}"), n_classes=n_classes, n_examples=x.shape[0],
                name=f"y_{split}",
            )
            set_(self, f"x_{split}", readonly(x))
            set_(self, f"y_{split}", readonly(y))

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(H, W, C)`` of one image."""
        return tuple(self.x_test.shape[1:])

    def __repr__(self) -> str:
        title = TITLES.get(self.name, self.name)
        lower, upper = (round(b, 4) for b in self.bounds)
        text = (
            f"{title} Dataset, N={len(self.x_train)}/{len(self.x_valid)}/{len(self.x_test)} "
            f"train/valid/test, bounds ({lower}, {upper})"
        )
        if self.deviation:
            text += " [deviates from the paper, see .deviation]"
        return text


def first_of_each_class(y, n_classes: int, *, offset: int = 0):
    """Index of the ``offset``-th example of each class, in class order.

    Raises:
        ValueError: if a class has too few examples.
    """
    out = []
    for k in range(n_classes):
        idx = np.flatnonzero(np.asarray(y) == k)
        if len(idx) <= offset:
            raise ValueError(f"class {k} has {len(idx)} test examples, need more than {offset}.")
        out.append(int(idx[offset]))
    return np.array(out)


NOTEBOOK_TEST_SIZE = {"svhn": 4000}
"""Test images the notebooks used when not the whole test set (SVHN: ``Xt[:4000]``)."""


def notebook_test_size(ds) -> int:
    """Test images the notebooks scored: all (MNIST, notMNIST), the first 4000 (SVHN)."""
    return min(len(ds.x_test), NOTEBOOK_TEST_SIZE.get(ds.name, len(ds.x_test)))
