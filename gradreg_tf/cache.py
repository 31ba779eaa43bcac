"""The trained-model cache: a user directory of ``.keras`` files keyed by a content hash.

Location: ``$GRADREG_CACHE``, else ``$XDG_CACHE_HOME/gradreg_tf``, else ``~/.cache/gradreg_tf``
(never inside the package; an empty variable counts as unset, as in :mod:`gradreg_tf.data`).
Every file is written to a temporary name in the same directory and renamed into place, so a
crash never leaves a half-written model; a temporary file that a killed process left behind is
removed by the next write of the same file once it is :data:`STALE_TEMP_SECONDS` old. Each
model has a JSON sidecar with the file's sha256, which is checked before loading.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import pathlib
import re
import tempfile
import time
from typing import Any, Callable

STALE_TEMP_SECONDS = 600
"""Age after which a leftover temporary file of :func:`atomic_write` is deleted (no save of
one file takes this long, so it belongs to a killed process)."""

KEY_FORMAT = 1  # bump when training code changes in a way that changes weights


def cache_dir(path: str | os.PathLike | None = None) -> pathlib.Path:
    """The cache root: ``path``, else ``$GRADREG_CACHE``, else the user's cache directory.

    Raises:
        ValueError: if the chosen path is a file.
    """
    if path is None:
        path = os.environ.get("GRADREG_CACHE") or None  # "" is unset, not the current directory
    if path is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "gradreg_tf")
    root = pathlib.Path(path).expanduser()
    if root.exists() and not root.is_dir():
        raise ValueError(f"the model cache {str(root)!r} is a file, expected a directory.")
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_key(recipe, *, seed: int, data_fingerprint: str, extra: dict | None = None,
              code: str | None = None) -> str:
    """sha256 (hex) over every field that affects the trained weights.

    ``code`` is a fingerprint of the training code (:func:`gradreg_tf.fingerprints.code_fingerprint`):
    with it, a change of the training step retrains instead of reusing stale models. Without
    it, the key names a recipe, seed and data only (how shipped models are matched).
    """
    payload = {
        "format": KEY_FORMAT,
        "recipe": dataclasses.asdict(recipe),
        "seed": int(seed),
        "data": data_fingerprint,
        "extra": extra or {},
    }
    if code is not None:
        payload["code"] = code
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> pathlib.Path:
    """Calls ``write(tmp_path)`` then renames the temporary file onto ``path``.

    The temporary file keeps ``path``'s suffix (Keras checks it: ``.keras``, and the compound
    ``.weights.h5`` of ``save_weights``) and lives in the same directory, so the rename is atomic.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    stem, suffix = _stem_and_suffix(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        os.unlink(tmp)  # keras refuses to overwrite silently in some versions
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


COMPOUND_SUFFIXES = (".weights.h5",)
"""Suffixes Keras checks as a whole (``save_weights`` wants a name ending in ``.weights.h5``)."""


def _stem_and_suffix(path: pathlib.Path) -> tuple[str, str]:
    for suffix in COMPOUND_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[:-len(suffix)], suffix
    return path.stem, path.suffix


def remove_stale_temp_files(path: str | os.PathLike, *,
                            max_age: float = STALE_TEMP_SECONDS) -> list[pathlib.Path]:
    """Deletes temporary files of :func:`atomic_write` for ``path`` older than ``max_age`` s.

    Only names ``.<stem>.<8 characters><suffix>`` next to ``path`` (``tempfile.mkstemp``'s
    pattern for it) are considered, so no other file is ever touched.

    Returns:
        The deleted paths.
    """
    path = pathlib.Path(path)
    stem, suffix = _stem_and_suffix(path)
    pattern = re.compile(re.escape(f".{stem}.") + r"[A-Za-z0-9_]{8}" + re.escape(suffix))
    now, removed = time.time(), []
    try:
        candidates = list(path.parent.glob(f".{glob.escape(stem)}.*"))
    except OSError:
        return removed
    for tmp in candidates:
        try:
            if pattern.fullmatch(tmp.name) and now - tmp.stat().st_mtime > max_age:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # removed meanwhile by another process
            continue
    return removed


def write_json(path: str | os.PathLike, obj) -> pathlib.Path:
    """Writes ``obj`` as indented, key-sorted JSON to ``path`` atomically (:func:`atomic_write`).

    Returns:
        The written path.
    """
    def _write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)

    return atomic_write(path, _write)
