"""Last-resort source: tensorflow-datasets builders, prepared in the user cache directory."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gradreg_tf.data._locate import cache_dir


class TfdsUnavailable(Exception):
    """tensorflow-datasets is missing or failed; the message says why."""


def tfds_dir():
    """Directory tensorflow-datasets downloads and prepares into (never the package)."""
    return cache_dir() / "tfds"


def describe(builder_name: str) -> str:
    """Human-readable place for error messages."""
    return f"tensorflow-datasets '{builder_name}' in {tfds_dir()}"


def load_splits(builder_name: str, splits: Sequence[str]) -> tuple[dict[str, dict], str]:
    """Loads whole splits of a tensorflow-datasets builder as numpy arrays.

    Downloads and prepares the builder under :func:`tfds_dir` when needed.

    Args:
        builder_name: e.g. ``"mnist"`` or ``"svhn_cropped"``.
        splits: split names, e.g. ``("train", "test")``.

    Returns:
        ``({split: {feature: array}}, source)`` where ``source`` names builder, version and
        directory.

    Raises:
        TfdsUnavailable: if tensorflow-datasets is not importable or anything fails.
    """
    try:
        import tensorflow_datasets as tfds
    except Exception as err:  # ImportError, or a broken install
        raise TfdsUnavailable(f"tensorflow_datasets is not importable ({err})") from None
    directory = tfds_dir()
    try:
        builder = tfds.builder(builder_name, data_dir=str(directory))
        builder.download_and_prepare()
        out = {}
        for split in splits:
            batch = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
            out[split] = {key: np.asarray(value) for key, value in batch.items()}
        version = builder.info.version
    except Exception as err:  # network, disk, format: any failure means "not available"
        raise TfdsUnavailable(f"{type(err).__name__}: {err}") from None
    return out, f"tensorflow-datasets '{builder_name}' {version} in {directory}"
