"""Plumbing shared by the figure scripts: options, models, captions, CSV/JSON/figure output.

Not a library API: every script is ``main(argv=None)`` = parse, call the library
(:mod:`gradreg_tf.zoo`, :mod:`gradreg_tf.eval.grids`, :mod:`gradreg_tf.attacks`,
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


STEP_SECONDS = {"plain": 0.146, "penalty": 0.351, "adversarial": 0.364, "both": 0.569}
"""Seconds per training batch of 256 of the paper's MNIST CNN on the reference machine (AMD EPYC,
2 cores, shared; README "Performance", ``bench/train_step.py``): the basis of the estimates
:func:`training_plan` prints. The SVHN network is larger, so its estimates are lower bounds."""

ALTERNATIVES = {
    "mnist": "faithful and fastest: --budget paper (the default) answers from the shipped models "
             "without training; --quick trains ~1 epoch per model (a pipeline check, not a "
             "reproduction)",
    "notmnist": "the default is --budget reduced because the training data is notMNIST_small, on "
                "which the paper's schedule overfits (README, Reproduction status); faithful: "
                "--budget paper with notMNIST_large.tar.gz in --data-dir (several CPU-hours); "
                "faster: --quick (~1 epoch per model, a pipeline check, not a reproduction)",
    "svhn": "faster: --budget reduced (a tenth of the schedule) or --quick (~1 epoch per model, a "
            "pipeline check); --budget paper is the faithful setup",
}
"""What a user can run instead, per dataset, printed before any training."""


def _step_seconds(recipe) -> float:
    adversarial = getattr(recipe, "adversarial_eps", 0) > 0
    penalty = getattr(recipe, "penalty", None) is not None
    key = "both" if adversarial and penalty else "adversarial" if adversarial else (
        "penalty" if penalty else "plain")
    return STEP_SECONDS[key]


def training_plan(ds, args, names) -> tuple[list[str], float]:
    """Models of ``names`` that are neither shipped nor cached (so would be trained now), and an
    estimate of the training time in seconds from :data:`STEP_SECONDS` (distillation: teacher and
    student)."""
    from gradreg_tf import recipes, zoo

    nominal = zoo.resolve_batches(ds, args.budget, args.batches)
    todo, seconds = [], 0.0
    for name in names:
        recipe = recipes.paper_recipe(ds.name, name, n_batches=nominal)
        if zoo.shipped_match(ds, recipe, seed=args.seed) is not None:
            continue
        if zoo.cached_model_path(ds, name, budget=args.budget, n_batches=args.batches,
                                 seed=args.seed, cache_dir=args.cache_dir).is_file():
            continue
        todo.append(name)
        steps = [recipe] + ([zoo.teacher_recipe(recipe)] if recipe.distill else [])
        seconds += sum(r.total_batches(len(ds.x_train)) * _step_seconds(r) for r in steps)
    return todo, seconds


def announce_training(ds, args, names) -> list[str]:
    """Says, before any training, which models will be trained, for how long (estimated), and
    what the faster or faithful alternative is. Returns the models to train."""
    todo, seconds = training_plan(ds, args, names)
    if not todo:
        log(f"no training: all {len(names)} models are shipped or cached ({budget_text(ds, args)})")
        return todo
    teacher = " (+ the distilled model's teacher)" if "distilled" in todo else ""
    log(f"will train {len(todo)} {ds.name} model(s): {', '.join(todo)}{teacher}; "
        f"{budget_text(ds, args)}; estimated {seconds / 60:.0f} min on 2 CPU cores "
        f"(from measured step times{', a lower bound for SVHN' if ds.name == 'svhn' else ''}); "
        f"trained models are cached for every later script")
    if ds.name in ALTERNATIVES:
        log(f"instead: {ALTERNATIVES[ds.name]}")
    return todo


def paper_models(ds, args, names=None) -> dict:
    """``{name: trained model}`` from the cache, training any that is missing (announced first by
    :func:`announce_training`)."""
    from gradreg_tf import recipes, zoo

    names = tuple(names or recipes.PAPER_MODELS)
    announce_training(ds, args, names)
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


def run_log_path(path) -> pathlib.Path:
    """The git-ignored run log beside a JSON: ``x.json`` -> ``x.run.json``."""
    path = pathlib.Path(path)
    return path.with_name(path.stem + ".run.json")


def write_json(path, obj) -> pathlib.Path:
    """Writes ``obj`` as JSON atomically; its ``"run"`` entry (see :func:`metadata`) goes to
    :func:`run_log_path` instead, so the committed file holds results and provenance only."""
    from gradreg_tf import cache

    path = pathlib.Path(path)
    obj = dict(obj)
    run = obj.pop("run", None)
    for target, content in ((path, obj), (run_log_path(path), run)):
        if content is None:
            continue
        text = json.dumps(_jsonable(content), indent=1) + "\n"
        cache.atomic_write(target, lambda tmp, t=text: pathlib.Path(tmp).write_text(t))
    return path


RUN_KEYS = ("seconds", "audit_seconds")
"""Extra metadata keys that vary from run to run (timings): kept in the run log, not the JSON."""

HOST_OPTIONS = ("out", "cache_dir", "data_dir", "progress", "strategy")
"""Options that name this machine or this terminal, not the result: kept in the run log."""


def metadata(ds, args, script: str, **extra) -> dict:
    """Provenance written into every JSON: data, budget, seed, options, versions.

    What varies from run to run or names the host (time written, durations, paths, machine)
    goes under ``"run"``, which :func:`write_json` moves to a git-ignored run log, so that
    re-running a script on the same models rewrites the committed JSON byte for byte.
    """
    from gradreg_tf import provenance

    options = vars(args)
    return {
        "script": pathlib.Path(script).name,
        "dataset": ds.name,
        "data": repr(ds),
        "data_deviation": ds.deviation,
        "budget": args.budget,
        "batches_option": args.batches,
        "batches_per_model": batches_per_model(ds, args),
        "seed": args.seed,
        "options": {k: v for k, v in options.items() if k not in HOST_OPTIONS},
        "versions": provenance.versions(("gradreg_tf", "tensorflow", "numpy", "matplotlib",
                                         "python")),
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
