"""The paper's datasets (MNIST, notMNIST, SVHN) as immutable, preprocessed arrays.

Example:
    >>> from gradreg_tf import data
    >>> mnist = data.load("mnist")
    >>> mnist
    MNIST Dataset, N=55000/5000/10000 train/valid/test, bounds (0.0, 1.0)
    >>> mnist.x_train.shape, mnist.bounds
    ((55000, 28, 28, 1), Bounds(lower=0.0, upper=1.0))

Files are looked for in ``data_dir`` if given (only there), else in ``$GRADREG_DATA_DIR``,
the copy bundled with the package (MNIST, notMNIST_small) and tensorflow-datasets (MNIST,
SVHN) in a user cache directory; see :mod:`gradreg_tf.data._locate`. Loaded datasets are
cached in-process (keyed on the files and the seed); :func:`clear_cache` frees them.
"""

from __future__ import annotations

from gradreg_tf.data import mnist, notmnist, svhn
from gradreg_tf.data.base import DataError, DataNotFoundError, Dataset
from gradreg_tf.data.mnist import load_mnist
from gradreg_tf.data.notmnist import load_notmnist
from gradreg_tf.data.svhn import load_svhn

LOADERS = {"mnist": load_mnist, "notmnist": load_notmnist, "svhn": load_svhn}
DATASETS = tuple(LOADERS)


def load(name: str, *, data_dir=None, seed: int = 0) -> Dataset:
    """Loads one of the paper's datasets, preprocessed as the original code did.

    Args:
        name: ``"mnist"``, ``"notmnist"`` or ``"svhn"`` (case-insensitive).
        data_dir: directory holding the dataset's files (directly or in a ``<name>/``
            subfolder). When given, no other place is searched.
        seed: seed of the random splits (notMNIST, SVHN; MNIST's split is fixed).

    Returns:
        A read-only :class:`Dataset`; see ``Dataset.deviation`` for differences from the paper.

    Raises:
        ValueError: if ``name`` is not a known dataset or ``seed`` is negative.
        DataNotFoundError: (a ``FileNotFoundError``) if the files are nowhere; the message
            lists the expected names and every place looked.
        DataError: (a ``ValueError``) if a file is truncated, corrupt or not the official content.
    """
    key = name.lower() if isinstance(name, str) else None
    if key not in LOADERS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {', '.join(DATASETS)}.")
    return LOADERS[key](data_dir=data_dir, seed=seed)


def clear_cache() -> None:
    """Drops every dataset held by the in-process cache."""
    for cached in (mnist._load_files, mnist._load_tfds, notmnist._load,
                   svhn._load_files, svhn._load_tfds):
        cached.cache_clear()


__all__ = [
    "DATASETS", "DataError", "DataNotFoundError", "Dataset", "clear_cache", "load",
    "load_mnist", "load_notmnist", "load_svhn",
]
