"""Result files of the figure scripts: CSV, JSON with a separate run log, markdown tables.

Every file is written through the one atomic writer, :func:`gradreg_tf.cache.atomic_write`
(temporary name in the same directory, then a rename), so a crash never leaves a half-written
result. What varies from run to run or names the host goes to a git-ignored run log beside the
JSON (:func:`run_log_path`), so re-running a script on the same models rewrites the committed
files byte for byte.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import pathlib
import platform
import sys

from gradreg_tf import cache, provenance

RUN_KEYS = ("seconds", "audit_seconds")
"""Extra metadata keys that vary from run to run (timings): kept in the run log, not the JSON."""

HOST_OPTIONS = ("out", "cache_dir", "data_dir", "progress", "strategy")
"""Options that name this machine or this terminal, not the result: kept in the run log."""

VERSIONS = ("gradreg_tf", "tensorflow", "numpy", "matplotlib", "python")
"""The packages whose versions every result JSON records."""


def write_text(path, text: str) -> pathlib.Path:
    """Writes ``text`` to ``path`` atomically (creating the directory).

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    return cache.atomic_write(path, lambda tmp: pathlib.Path(tmp).write_text(text))


def write_csv(path, rows, fields=None) -> pathlib.Path:
    """Writes ``rows`` (dicts) as CSV atomically; keys outside ``fields`` are left out.

    Args:
        path: the CSV file.
        rows: an iterable of dicts.
        fields: the columns, in order (default: the first row's keys).

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    rows = list(rows)
    fields = list(fields or (rows[0].keys() if rows else []))

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    return cache.atomic_write(path, write)


def read_csv(path) -> list[dict]:
    """The rows of a CSV file as dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def jsonable(value):
    """``value`` with numpy arrays and scalars, paths and tuples made JSON types (NaN: None)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, pathlib.Path):
        return str(value)
    return value


def run_log_path(path) -> pathlib.Path:
    """The git-ignored run log beside a JSON: ``x.json`` -> ``x.run.json``."""
    path = pathlib.Path(path)
    return path.with_name(path.stem + ".run.json")


def write_json(path, obj) -> pathlib.Path:
    """Writes ``obj`` as JSON atomically; its ``"run"`` entry (see :func:`metadata`) goes to
    :func:`run_log_path` instead, so the committed file holds results and provenance only.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    path = pathlib.Path(path)
    obj = dict(obj)
    run = obj.pop("run", None)
    for target, content in ((path, obj), (run_log_path(path), run)):
        if content is not None:
            write_text(target, json.dumps(jsonable(content), indent=1) + "\n")
    return path


def metadata(ds, args, script: str, *, batches_per_model: int, **extra) -> dict:
    """Provenance written into every result JSON: data, budget, seed, options, versions.

    What varies from run to run or names the host (time written, durations, paths, machine)
    goes under ``"run"``, which :func:`write_json` moves to the run log.

    Args:
        ds: the :class:`gradreg_tf.data.Dataset`.
        args: the script's options (:func:`gradreg_tf.cli.parser`).
        script: the script's path (its file name is recorded).
        batches_per_model: batches each paper model trains
            (:func:`gradreg_tf.plan.batches_per_model`).
        **extra: more entries; :data:`RUN_KEYS` among them go to the run log.
    """
    options = vars(args)
    return {
        "script": pathlib.Path(script).name,
        "dataset": ds.name,
        "data": repr(ds),
        "data_deviation": ds.deviation,
        "budget": args.budget,
        "batches_option": args.batches,
        "batches_per_model": batches_per_model,
        "seed": args.seed,
        "options": {k: v for k, v in options.items() if k not in HOST_OPTIONS},
        "versions": provenance.versions(VERSIONS),
        **{k: v for k, v in extra.items() if k not in RUN_KEYS},
        "run": {
            "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": [pathlib.Path(sys.argv[0]).name, *sys.argv[1:]],
            "host": {"machine": platform.machine(), "processor": platform.processor(),
                     "cpu_count": os.cpu_count(), "platform": platform.platform()},
            "options": {k: options[k] for k in HOST_OPTIONS if k in options},
            **{k: v for k, v in extra.items() if k in RUN_KEYS},
        },
    }


def markdown_table(rows, columns) -> str:
    """A GitHub markdown table of ``rows`` (dicts) over ``columns`` ``[(key, header)]``."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(k, "")) for k, _ in columns) + " |")
    return "\n".join(lines) + "\n"
