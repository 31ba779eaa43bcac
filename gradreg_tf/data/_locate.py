"""Where the loaders look for data files, and the error raised when nothing is found.

Search order (the first place holding a dataset's files wins):

1. ``data_dir`` passed to :func:`gradreg_tf.data.load`. An explicit directory is
   authoritative: when it is given, no other place is searched.
2. Otherwise ``$GRADREG_DATA_DIR``, then the copy bundled inside the package
   (``gradreg_tf/data/bundled``: MNIST and notMNIST_small only), then
   tensorflow-datasets (MNIST and SVHN only) in a user cache directory.

In every directory both ``<dir>/<file>`` and ``<dir>/<dataset>/<file>`` are accepted.
Nothing is ever written into the package directory.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Iterable, Sequence

from gradreg_tf.data.base import TITLES, DataNotFoundError

ENV_DATA_DIR = "GRADREG_DATA_DIR"
ENV_CACHE = "GRADREG_CACHE"
BUNDLED_DIR = pathlib.Path(__file__).resolve().parent / "bundled"


@dataclasses.dataclass(frozen=True)
class Place:
    """A directory that may hold a dataset's files, and why it was searched."""

    path: pathlib.Path
    origin: str  # "data_dir argument", "$GRADREG_DATA_DIR" or "bundled package data"

    def __str__(self) -> str:
        return f"{self.path} ({self.origin})"


def places(dataset: str, data_dir=None, *, bundled: bool) -> list[Place]:
    """Lists the directories to search for ``dataset``, in order.

    Args:
        dataset: dataset key, also the name of the optional subfolder (``"mnist"``).
        data_dir: explicit directory; when given, it is the only root searched.
        bundled: whether the package bundles this dataset.

    Returns:
        For each root, ``<root>`` then ``<root>/<dataset>``.
    """
    if data_dir is not None:
        roots = [Place(pathlib.Path(data_dir).expanduser(), "data_dir argument")]
    else:
        roots = []
        env = os.environ.get(ENV_DATA_DIR, "")
        if env:
            roots.append(Place(pathlib.Path(env).expanduser(), f"${ENV_DATA_DIR}"))
        if bundled:
            roots.append(Place(BUNDLED_DIR, "bundled package data"))
    return [Place(p, r.origin) for r in roots for p in (r.path, r.path / dataset)]


def first_existing(directory: pathlib.Path, names: Iterable[str]) -> pathlib.Path | None:
    """Returns ``directory/name`` for the first of ``names`` that exists, else ``None``."""
    for name in names:
        path = directory / name
        if path.exists():
            return path
    return None


def cache_dir() -> pathlib.Path:
    """User cache directory for downloads: ``$GRADREG_CACHE``, else ``~/.cache/gradreg_tf``.

    ``$XDG_CACHE_HOME`` replaces ``~/.cache`` when set.
    """
    env = os.environ.get(ENV_CACHE, "")
    if env:
        return pathlib.Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "gradreg_tf"


def signature(paths: Sequence[pathlib.Path | None]) -> tuple:
    """Hashable identity of files (resolved path, size, mtime) for the in-process cache."""
    out = []
    for path in paths:
        if path is None:
            out.append(None)
            continue
        stat = path.stat()
        out.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def not_found(dataset: str, expected: Sequence[str], looked: Sequence[str]) -> DataNotFoundError:
    """Builds the error listing the expected file names and every place looked."""
    title = TITLES.get(dataset, dataset)
    lines = [f"{title} data not found.", "Expected files: " + ", ".join(expected) + "."]
    lines.append("Looked in:")
    lines.extend(f"  - {place}" for place in looked)
    lines.append(
        f"Pass data_dir=<dir> to gradreg_tf.data.load or set ${ENV_DATA_DIR}; files may sit "
        f"in <dir>/ or <dir>/{dataset}/."
    )
    return DataNotFoundError("\n".join(lines))
