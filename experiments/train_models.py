"""Train (or fetch from the cache) the paper's models for one dataset.

    python experiments/train_models.py --dataset mnist --models normal,distilled,advtrain,insensitive,doubleback --quick

Each model is trained once per (recipe, budget, seed, data) and cached as ``.keras``;
a second run returns at once. An interrupted run resumes from its last checkpoint.
Training curves (CSV) and TensorBoard logs go next to the cached model; a summary
table (clean test accuracy) is printed and written to ``<out>/trained_<dataset>.csv``.
"""

from __future__ import annotations

import csv
import pathlib
import sys
import time

from gradreg_tf import cli

cli.quiet_tensorflow()


def main(argv=None):
    p = cli.parser(__doc__.splitlines()[0], out="results")
    p.add_argument("--models", default="normal,distilled,advtrain,insensitive,doubleback",
                   help="comma-separated: normal, distilled, advtrain, insensitive, doubleback, both")
    p.add_argument("--deterministic", action="store_true",
                   help="enable TensorFlow op determinism (bitwise-reproducible resume)")
    args = p.parse_args(argv)

    from gradreg_tf import data, recipes, training, zoo
    from gradreg_tf.eval import grids

    if args.deterministic:
        training.enable_determinism()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in recipes.MODEL_NAMES:
            p.error(f"unknown model {m!r}; choose from {', '.join(recipes.MODEL_NAMES)}")
    ds = data.load(args.dataset, data_dir=args.data_dir)
    strategy = cli.make_strategy(args.strategy)
    rows = []
    for name in models:
        start = time.time()
        model = zoo.trained_model(ds, name, budget=args.budget, n_batches=args.batches,
                                  seed=args.seed, cache_dir=args.cache_dir,
                                  progress=args.progress, strategy=strategy)
        acc = grids.accuracy(model, ds.x_test, ds.y_test)
        rows.append({"dataset": ds.name, "model": name, "budget": cli.budget_label(args),
                     "seed": args.seed, "clean_accuracy": round(float(acc), 4),
                     "seconds": round(time.time() - start, 1)})
        print(f"{name:>12s}: clean test accuracy {acc:.4f} ({rows[-1]['seconds']} s)", flush=True)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"trained_{ds.name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
