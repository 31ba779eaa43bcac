"""notMNIST (letters A-J), split and scaled as the paper's code did.

The original (datasets/notmnist.py:35-217, the Udacity notMNIST pipeline) read every PNG of
the official ``notMNIST_large`` and ``notMNIST_small`` folder layouts
``<root>/<A..J>/<file>.png``, skipped unreadable files, scaled pixels to
``(v - 127.5) / 255`` in ``[-0.5, 0.5]`` (l.97-98), then per letter shuffled the images and took
1,000 validation + 20,000 training images from notMNIST_large and 1,000 test images from
notMNIST_small (l.146-186), and finally shuffled each set (l.161, 192-199): 200,000 / 10,000 /
10,000 train / valid / test. All its shuffles were unseeded; here every draw uses
``numpy.random.default_rng`` streams derived from ``seed`` (the test draw does not depend on
whether notMNIST_large is present).

Accepted files, in order of preference, for ``S`` in ``notMNIST_small`` / ``notMNIST_large``:
``S.npz`` (arrays ``x`` uint8 ``(N, 28, 28)``, ``y`` int ``0..9``, ``names``), an extracted
``S/`` folder, or the official ``S.tar.gz``. Unreadable PNGs are skipped with a warning
that counts them (the official notMNIST_small has two 0-byte files).

notMNIST_large was not available to this project. Without it, the training set is the
notMNIST_small images left after the test draw (8,724 of the 18,724 readable images), there
is no validation set, and ``Dataset.deviation`` and a ``UserWarning`` say so. The shared data
directory also holds ``notMNIST_large_sample.npz``: 3,493 images (~0.7%) sampled from
notMNIST_large. It is not notMNIST_large and the loader ignores it.
"""

from __future__ import annotations

import functools
import io
import pathlib
import tarfile
import warnings
import zipfile
import zlib

import numpy as np

from gradreg_tf.data import _locate
from gradreg_tf.data.base import LETTERS, DataError, Dataset, check_seed
from gradreg_tf.types import Bounds

BOUNDS = Bounds(-0.5, 0.5)
TEST_PER_CLASS = 1000  # from notMNIST_small
VALID_PER_CLASS = 1000  # from notMNIST_large
TRAIN_PER_CLASS = 20000  # from notMNIST_large
SMALL, LARGE = "notMNIST_small", "notMNIST_large"


def _forms(stem: str) -> tuple[str, str, str]:
    return (f"{stem}.npz", stem, f"{stem}.tar.gz")


def read_npz(path) -> tuple[np.ndarray, np.ndarray, int]:
    """Reads the decoded form: ``x`` uint8 ``(N, 28, 28)`` and ``y`` labels 0..9.

    Returns:
        ``(x, y, n_skipped)`` with ``n_skipped = 0`` (the npz holds readable images only).

    Raises:
        DataError: naming ``path`` if it cannot be read or its arrays are malformed.
    """
    path = pathlib.Path(path)
    try:
        with np.load(path) as npz:
            x, y = npz["x"], npz["y"]
    except (OSError, EOFError, KeyError, ValueError, zlib.error, zipfile.BadZipFile) as err:
        raise DataError(
            f"cannot read {path} as a notMNIST npz ({type(err).__name__}: {err})."
        ) from None
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{path}: 'x' must be uint8 (N, 28, 28), received {x.dtype} {x.shape}.")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (
        y.size and (y.min() < 0 or y.max() > 9)
    ):
        raise DataError(
            f"{path}: 'y' must hold {len(x)} integer labels in 0..9, received {y.dtype} {y.shape}."
        )
    return x, y.astype(np.int64), 0


def _png_entries(path: pathlib.Path):
    """Yields ``(letter, name, bytes)`` for every file in ``<root>/<A..J>/`` (folder or tar)."""
    if path.is_dir():
        for letter in LETTERS:
            folder = path / letter
            if folder.is_dir():
                for file in sorted(folder.iterdir()):
                    if file.is_file():
                        yield letter, f"{letter}/{file.name}", file.read_bytes()
        return
    with tarfile.open(path, "r|*") as tar:  # streaming: one pass over the gzip
        for member in tar:
            parts = pathlib.PurePosixPath(member.name).parts
            if member.isfile() and len(parts) >= 2 and parts[-2] in LETTERS:
                yield parts[-2], f"{parts[-2]}/{parts[-1]}", tar.extractfile(member).read()


def read_pngs(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decodes the official folder layout ``<root>/<A..J>/<file>.png`` (folder or tar.gz).

    Files that are not readable images are skipped, as the original did.

    Returns:
        ``(x, y, skipped)``: uint8 ``(N, 28, 28)`` sorted by letter then file name, int64
        labels (A=0 ... J=9), and the skipped ``"<letter>/<file>"`` names.

    Raises:
        DataError: naming the file if the archive is corrupt or an image is not 28x28
            grayscale (the original stopped there too), or if no image was found.
    """
    from PIL import Image  # only needed for this form

    path = pathlib.Path(path)
    items, skipped = [], []
    try:
        for letter, name, data in _png_entries(path):
            try:
                with Image.open(io.BytesIO(data)) as img:
                    arr = np.asarray(img)
            except (OSError, ValueError, SyntaxError):  # PIL's errors for unreadable images
                skipped.append(name)
                continue
            if arr.shape != (28, 28) or arr.dtype != np.uint8:
                raise DataError(
                    f"{path}: {name} is a {arr.dtype} image of shape {arr.shape}, expected "
                    "uint8 (28, 28) grayscale."
                )
            items.append((letter, name, arr))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"cannot read {path}: {type(err).__name__}: {err} (truncated or corrupt?)."
        ) from None
    if not items:
        raise DataError(f"{path} holds no readable images in <A..J>/ folders.")
    items.sort(key=lambda item: (item[0], item[1]))
    x = np.stack([item[2] for item in items])
    y = np.array([LETTERS.index(item[0]) for item in items], dtype=np.int64)
    return x, y, sorted(skipped)


def _read(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if path.name.endswith(".npz"):
        x, y, _ = read_npz(path)
        return x, y, []
    return read_pngs(path)


def _draw(y: np.ndarray, counts: tuple[int, ...], rng: np.random.Generator, what: str):
    """Per class: shuffle the indices, cut consecutive chunks of ``counts`` (None = the rest)."""
    chunks = [[] for _ in counts]
    for label in range(len(LETTERS)):
        idx = rng.permutation(np.flatnonzero(y == label))
        needed = sum(c for c in counts if c is not None)
        if len(idx) < needed or (None in counts and len(idx) == needed):
            raise DataError(
                f"{what} has {len(idx)} images of letter {LETTERS[label]}, need "
                f"{'more than ' if None in counts else ''}{needed}."
            )
        start = 0
        for k, count in enumerate(counts):
            stop = len(idx) if count is None else start + count
            chunks[k].append(idx[start:stop])
            start = stop
    return [np.concatenate(c) for c in chunks]


def _scale(x: np.ndarray) -> np.ndarray:
    """uint8 -> float32 ``(v - 127.5) / 255`` in [-0.5, 0.5] (in float64, as the original)."""
    return ((x.astype(np.float64) - 127.5) / 255.0).astype(np.float32)[..., None]


def _shuffled(x, y, rng):
    order = rng.permutation(len(y))
    return _scale(x[order]), y[order]


@functools.lru_cache(maxsize=2)
def _load(small_sig, large_sig, origins, seed, test_per_class, valid_per_class, train_per_class):
    small = pathlib.Path(small_sig[0])
    x_small, y_small, skipped = _read(small)
    rngs = [np.random.default_rng([seed, stream]) for stream in range(5)]
    if large_sig is None:
        test_idx, train_idx = _draw(y_small, (test_per_class, None), rngs[0], str(small))
        x_train, y_train = _shuffled(x_small[train_idx], y_small[train_idx], rngs[2])
        x_valid, y_valid = np.zeros((0, 28, 28, 1), np.float32), np.zeros(0, np.int64)
        deviation = (
            f"notMNIST_large not found: training on the {len(train_idx)} notMNIST_small images "
            f"left after the {test_per_class}/class test draw, without a validation set (the "
            f"paper: {train_per_class}/class training and {valid_per_class}/class validation "
            "images from notMNIST_large)."
        )
        large_text = "notMNIST_large: not found"
    else:
        large = pathlib.Path(large_sig[0])
        (test_idx,) = _draw(y_small, (test_per_class,), rngs[0], str(small))
        x_large, y_large, skipped_large = _read(large)
        skipped = skipped + [f"{LARGE}/{name}" for name in skipped_large]
        valid_idx, train_idx = _draw(
            y_large, (valid_per_class, train_per_class), rngs[1], str(large)
        )
        x_train, y_train = _shuffled(x_large[train_idx], y_large[train_idx], rngs[2])
        x_valid, y_valid = _shuffled(x_large[valid_idx], y_large[valid_idx], rngs[4])
        deviation = ""
        large_text = f"notMNIST_large: {large} ({origins[1]})"
    x_test, y_test = _shuffled(x_small[test_idx], y_small[test_idx], rngs[3])
    dataset = Dataset(
        name="notmnist", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        x_valid=x_valid, y_valid=y_valid, bounds=BOUNDS, class_names=LETTERS,
        source=f"notMNIST_small: {small} ({origins[0]}); {large_text}", deviation=deviation,
    )
    return dataset, tuple(skipped)


def load_notmnist(
    *,
    data_dir=None,
    seed: int = 0,
    test_per_class: int = TEST_PER_CLASS,
    valid_per_class: int = VALID_PER_CLASS,
    train_per_class: int = TRAIN_PER_CLASS,
) -> Dataset:
    """Loads notMNIST: test from notMNIST_small, train/valid from notMNIST_large if present.

    Args:
        data_dir: directory holding ``notMNIST_small`` (and optionally ``notMNIST_large``)
            as ``.npz``, folder or ``.tar.gz``, directly or in a ``notmnist/`` subfolder.
            Default: ``$GRADREG_DATA_DIR``, then the bundled ``notMNIST_small.npz``.
        seed: seed of every random draw (the original's draws were unseeded).
        test_per_class: test images per letter drawn from notMNIST_small.
        valid_per_class: validation images per letter from notMNIST_large.
        train_per_class: training images per letter from notMNIST_large.

    Returns:
        A read-only :class:`Dataset`, pixels in [-0.5, 0.5].

    Raises:
        DataNotFoundError: if no place holds notMNIST_small.
        DataError: if a file is corrupt or a letter has too few images.
        ValueError: on a negative seed or non-positive counts.

    Warns:
        UserWarning: when notMNIST_large is missing (see ``Dataset.deviation``) and when
            unreadable PNGs were skipped.
    """
    seed = check_seed(seed)
    counts = {"test_per_class": test_per_class, "valid_per_class": valid_per_class,
              "train_per_class": train_per_class}
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{key} must be a positive integer, received {value!r}.")
    found = {SMALL: None, LARGE: None}
    looked = []
    for place in _locate.places("notmnist", data_dir, bundled=True):
        for stem in found:
            if found[stem] is None:
                path = _locate.first_existing(place.path, _forms(stem))
                found[stem] = (path, place.origin) if path is not None else None
        looked.append(str(place))
    if found[SMALL] is None:
        raise _locate.not_found(
            "notmnist", [" or ".join(_forms(SMALL)) + " (required)", " or ".join(_forms(LARGE))],
            looked,
        )
    small, small_origin = found[SMALL]
    large, large_origin = found[LARGE] or (None, None)
    dataset, skipped = _load(
        _locate.signature([small])[0],
        None if large is None else _locate.signature([large])[0],
        (small_origin, large_origin), seed, int(test_per_class), int(valid_per_class),
        int(train_per_class),
    )
    if skipped:
        warnings.warn(
            f"notMNIST: skipped {len(skipped)} unreadable image file(s): "
            + ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""),
            UserWarning, stacklevel=2,
        )
    if dataset.deviation:
        warnings.warn(dataset.deviation, UserWarning, stacklevel=2)
    return dataset

