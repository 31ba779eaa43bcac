"""Plumbing shared by the figure scripts: options, data, models, output paths.

Not a library API: every script is ``main(argv=None)`` = parse, call the library
(:mod:`gradreg_tf.zoo`, :mod:`gradreg_tf.eval`, :mod:`gradreg_tf.attacks`,
:mod:`gradreg_tf.saliency`), plot (:mod:`gradreg_tf.plotting`), and write
(:mod:`gradreg_tf.eval.io`: CSV, JSON with its run log, markdown; re-exported here).
"""

from __future__ import annotations

import os
import pathlib
import sys
import time
import warnings

os.environ.setdefault("MPLBACKEND", "Agg")

from gradreg_tf import cli, plan  # noqa: E402
from gradreg_tf.data.base import notebook_test_size  # noqa: E402
from gradreg_tf.eval import io  # noqa: E402
from gradreg_tf.eval.io import markdown_table, read_csv, write_csv, write_json  # noqa: E402, F401
from gradreg_tf.plan import batches_per_model, budget_text  # noqa: E402, F401

cli.quiet_tensorflow()


def parser(description: str, *, dataset: bool = True, default_dataset: str = "mnist"):
    """The shared ``cli.parser`` with ``--out figures``."""
    return cli.parser(description, dataset=dataset, default_dataset=default_dataset,
                      out="figures")


def add_n_test(p) -> None:
    """The ``--n-test`` option of the scripts that score the test set."""
    p.add_argument("--n-test", type=int, default=None,
                   help="first N test images (default: all; SVHN 4000 as the notebook)")


def n_test(ds, args) -> int:
    """``--n-test``, else the notebooks' test-set size (all, SVHN 4000)."""
    return args.n_test or notebook_test_size(ds)


def test_set_run(description: str, argv):
    """Parses the shared options and ``--n-test``, then loads the data: ``(args, ds, n)``."""
    p = parser(description)
    add_n_test(p)
    args = p.parse_args(argv)
    ds = load_dataset(args)
    return args, ds, n_test(ds, args)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_dataset(args):
    """The dataset of ``--dataset``/``--data-dir`` (``gradreg_tf.data.load``)."""
    import tensorflow as tf

    from gradreg_tf import data

    tf.get_logger().setLevel("ERROR")  # one tf.function per model is intended, not retracing
    start = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = data.load(args.dataset, data_dir=args.data_dir)
    for w in caught:  # the deviation is said once, as a note below; other warnings pass on
        if str(w.message) != ds.deviation:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    log(f"{ds!r} ({time.time() - start:.1f} s)")
    if ds.deviation:
        log(f"note: {ds.deviation}")
    return ds


def title(ds) -> str:
    from gradreg_tf.data.base import TITLES

    return TITLES.get(ds.name, ds.name)


def paper_models(ds, args, names=None) -> dict:
    """``{name: trained model}`` (:func:`gradreg_tf.plan.paper_models`, logging here)."""
    return plan.paper_models(ds, args, names, log=log)


def stem(args, ds, name: str) -> pathlib.Path:
    """Output path without extension: ``<out>/<dataset>_<name>``."""
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out / f"{ds.name}_{name}"


def metadata(ds, args, script: str, **extra) -> dict:
    """Provenance of every result JSON (:func:`gradreg_tf.eval.io.metadata`)."""
    return io.metadata(ds, args, script, batches_per_model=batches_per_model(ds, args), **extra)


def save(fig, stem_path) -> list[pathlib.Path]:
    """PNG + PDF via ``plotting.save_figure``; logs the paths."""
    from gradreg_tf import plotting

    paths = plotting.save_figure(fig, stem_path)
    log("wrote " + ", ".join(str(p) for p in paths))
    return paths


def write_results(args, ds, name: str, script: str, *, meta=None, fig=None, rows=None,
                  arrays=None, **entries) -> pathlib.Path:
    """Writes ``<out>/<dataset>_<name>``: ``fig`` (.png/.pdf), ``rows`` (.csv), ``arrays``
    (.npz) and the JSON of :func:`metadata` (with ``meta``) followed by ``entries``."""
    import numpy as np

    path = stem(args, ds, name)
    if fig is not None:
        save(fig, path)
    if rows is not None:
        write_csv(path.with_suffix(".csv"), rows)
    if arrays is not None:
        np.savez_compressed(path.with_suffix(".npz"), **arrays)
    write_json(path.with_suffix(".json"), {**metadata(ds, args, script, **(meta or {})),
                                           **entries})
    return path

