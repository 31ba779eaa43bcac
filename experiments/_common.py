"""Plumbing shared by the figure scripts: options, models, captions, CSV/JSON/figure output.

Not a library API: every script is ``main(argv=None)`` = parse, call the library
(:mod:`gradreg_tf.zoo`, :mod:`gradreg_tf.evaluation`, :mod:`gradreg_tf.attacks`,
:mod:`gradreg_tf.saliency`), plot (:mod:`gradreg_tf.plotting`), and write here.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("MPLBACKEND", "Agg")

from gradreg_tf import cli  # noqa: E402

cli.quiet_tensorflow()

NOTEBOOK_TEST_SIZE = {"svhn": 4000}
"""Test images the notebooks used when not the whole test set (SVHN: ``Xt[:4000]``)."""


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
    return args.n_test or min(len(ds.x_test), NOTEBOOK_TEST_SIZE.get(ds.name, len(ds.x_test)))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_dataset(args):
    """The dataset of ``--dataset``/``--data-dir`` (``gradreg_tf.data.load``)."""
    import tensorflow as tf

    from gradreg_tf import data

    tf.get_logger().setLevel("ERROR")  # one tf.function per model is intended, not retracing
    start = time.time()
    ds = data.load(args.dataset, data_dir=args.data_dir)
    log(f"{ds!r} ({time.time() - start:.1f} s)")
    if ds.deviation:
        log(f"note: {ds.deviation}")
    return ds


def title(ds) -> str:
    from gradreg_tf.data.base import TITLES

    return TITLES.get(ds.name, ds.name)


def batches_per_model(ds, args) -> int:
    """Batches a paper model of this budget actually trains (the original's epoch rounding)."""
    from gradreg_tf import recipes, zoo

    nominal = zoo.resolve_batches(ds, args.budget, args.batches)
    return recipes.paper_recipe(ds.name, "normal", n_batches=nominal).total_batches(len(ds.x_train))


def budget_text(ds, args) -> str:
    """E.g. ``"budget: reduced (1505 batches per model)"``, for titles and captions."""
    n = batches_per_model(ds, args)
    head = f"{args.batches} nominal batches" if args.batches else f"budget: {args.budget}"
    return f"{head} ({n} batches per model, seed {args.seed})"


def paper_models(ds, args, names=None) -> dict:
    """``{name: trained model}`` from the cache, training any that is missing."""
    from gradreg_tf import recipes, zoo

    names = tuple(names or recipes.PAPER_MODELS)
    strategy = cli.make_strategy(args.strategy)
    out = {}
    for i, name in enumerate(names, 1):
        start = time.time()
        log(f"[{i}/{len(names)}] {name} model ({budget_text(ds, args)})")
        out[name] = zoo.trained_model(ds, name, budget=args.budget, n_batches=args.batches,
                                      seed=args.seed, cache_dir=args.cache_dir,
                                      progress=args.progress,
                                      strategy=strategy)
        log(f"      ready in {time.time() - start:.1f} s")
    return out


def stem(args, ds, name: str) -> pathlib.Path:
    """Output path without extension: ``<out>/<dataset>_<name>``."""
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out / f"{ds.name}_{name}"


def write_csv(path, rows, fields=None) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    fields = list(fields or (rows[0].keys() if rows else []))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _jsonable(value):
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, pathlib.Path):
        return str(value)
    return value


def write_json(path, obj) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(obj), indent=1) + "\n")
    return path


def metadata(ds, args, script: str, **extra) -> dict:
    """Provenance written into every JSON: data, budget, seed, versions, time, command."""
    import matplotlib
    import numpy as np
    import tensorflow as tf

    import gradreg_tf

    return {
        "script": pathlib.Path(script).name,
        "dataset": ds.name,
        "data": repr(ds),
        "data_deviation": ds.deviation,
        "budget": args.budget,
        "batches_option": args.batches,
        "batches_per_model": batches_per_model(ds, args),
        "seed": args.seed,
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "options": {k: v for k, v in vars(args).items()},
        "versions": {"gradreg_tf": gradreg_tf.__version__, "tensorflow": tf.__version__,
                     "numpy": np.__version__, "matplotlib": matplotlib.__version__,
                     "python": platform.python_version()},
        **extra,
    }


def save(fig, stem_path) -> list[pathlib.Path]:
    """PNG + PDF via ``plotting.save_figure``; logs the paths."""
    from gradreg_tf import plotting

    paths = plotting.save_figure(fig, stem_path)
    log("wrote " + ", ".join(str(p) for p in paths))
    return paths


def first_of_each_class(y, n_classes: int, *, offset: int = 0):
    """Index of the ``offset``-th example of each class, in class order.

    Raises:
        ValueError: if a class has too few examples.
    """
    import numpy as np

    out = []
    for k in range(n_classes):
        idx = np.flatnonzero(np.asarray(y) == k)
        if len(idx) <= offset:
            raise ValueError(f"class {k} has {len(idx)} test examples, need more than {offset}.")
        out.append(int(idx[offset]))
    return np.array(out)


def markdown_table(rows, columns) -> str:
    """A GitHub markdown table of ``rows`` (dicts) over ``columns`` ``[(key, header)]``."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(k, "")) for k, _ in columns) + " |")
    return "\n".join(lines) + "\n"
