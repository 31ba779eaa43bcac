"""Accuracy versus the penalty weight λ for the paper's two gradient-regularization sweeps.

    python experiments/lambda_sweep.py --dataset mnist [--budget reduced | --quick] [--points 13]

The original launcher (``train_all.py``) trained double backprop ("Grad Reg (y)") at
λ = logspace(2, 5, 13) and "Grad Reg (1/K)" at λ = logspace(0, 3, 13), the latter with the
double-backprop flag too (SETUP.md §8.1; our ``insensitive``); ``--kinds certainty`` sweeps the
certainty-sensitivity penalty that the paper's text describes on that grid. This script trains (or
fetches) every model of the sweeps (:func:`gradreg_tf.recipes.sweep_recipes`), scores each as the
original selected λ (:func:`gradreg_tf.eval.sweeps.lambda_point`: clean, and FGSM at eps
0.1/0.2/0.3 transferred from a reference normal model and white-box, first 1024 test images) and
plots, per sweep, those accuracies against λ (transferred solid, the original's selection score;
white-box dashed), with the paper's λ marked.

Cost: 13 trained models per sweep (two by default). Per model about as long as the paper model
of the same kind at this budget (measured on 2 shared CPU cores: 1-2 min each at --quick, 5-11
min at --budget reduced, i.e. roughly 30-45 min / 3-4 h for both sweeps); ``--points`` trains
fewer (evenly spaced, ends included; the paper's λ is always added: the paper model, shared with
the other figures), ``--kinds`` one sweep only. Models are cached, so a rerun is quick. Writes
``<dataset>_lambda_sweep.png/.pdf``, ``.csv`` (kind, lambda, metric, eps, accuracy) and ``.json``.
"""

from __future__ import annotations

import sys
import time

import _common

KINDS = ("doubleback", "insensitive", "certainty")
EPSILONS = (0.1, 0.2, 0.3)
N_SCORE = 1024


def subsample(recipes_, points: int, chosen: float):
    """``points`` evenly spaced recipes of the sweep (ends included) plus the paper's λ."""
    import numpy as np

    if points >= len(recipes_):
        return list(recipes_)
    keep = set(np.round(np.linspace(0, len(recipes_) - 1, points)).astype(int).tolist())
    keep |= {i for i, r in enumerate(recipes_) if abs(r.penalty_weight / chosen - 1) < 1e-9}
    return [recipes_[i] for i in sorted(keep)]


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--kinds", default="doubleback,insensitive",
                   help="comma-separated sweeps: doubleback, insensitive (double backprop on the "
                        "insensitive grid, as launched), certainty (the certainty penalty)")
    p.add_argument("--points", type=int, default=13,
                   help="λ values per sweep (evenly spaced on the 13-point grid, ends included; "
                        "the paper's λ is always added)")
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        p.error(f"--kinds must list some of {', '.join(KINDS)}, received {args.kinds!r}")
    if args.points < 1:
        p.error(f"--points must be >= 1, received {args.points}")

    import numpy as np

    from gradreg_tf import plan, plotting, recipes, zoo
    from gradreg_tf.eval import sweeps

    start = time.time()
    ds = _common.load_dataset(args)
    nominal = zoo.resolve_batches(ds, args.budget, args.batches)
    sweeps_ = {kind: subsample(recipes.sweep_recipes(ds.name, kind, n_batches=nominal),
                               args.points, recipes.paper_lambda(ds.name, kind)) for kind in kinds}
    plan.announce_sweep(ds, args, sweeps_, _common.log)
    n = min(N_SCORE, len(ds.x_test))
    x, y = np.asarray(ds.x_test[:n]), np.asarray(ds.y_test[:n])
    reference = {e: zoo.reference_fgsm(ds, eps=e, n=n, seed=args.seed, cache_dir=args.cache_dir,
                                       progress=args.progress) for e in EPSILONS}
    rows, results = [], {}
    for kind, sweep in sweeps_.items():
        res = results[kind] = {"lambda": [], "clean": [], **{f"{m}_{e}": [] for m in (
            "transfer", "whitebox") for e in EPSILONS}}
        for i, recipe in enumerate(sweep, 1):
            lam = recipe.penalty_weight
            _common.log(f"[{kind} {i}/{len(sweep)}] λ = {lam:.6g} "
                        f"({_common.budget_text(ds, args)})")
            model = zoo.trained_model(ds, kind, budget=args.budget, n_batches=args.batches,
                                      seed=args.seed, cache_dir=args.cache_dir,
                                      progress=args.progress, recipe=recipe)
            point = sweeps.lambda_point(model, x, y, reference=reference, bounds=ds.bounds)
            rows += sweeps.point_rows(kind, lam, point, n)
            res["lambda"].append(lam)
            res["clean"].append(point["clean"])
            for e in EPSILONS:
                res[f"transfer_{e}"].append(point["transfer"][e])
                res[f"whitebox_{e}"].append(point["whitebox"][e])
    chosen = {k: recipes.paper_lambda(ds.name, k) for k in kinds}
    fig = plotting.plot_lambda_sweeps(
        results, chosen, epsilons=EPSILONS, label_of=plotting.model_label,
        title=f"Accuracy versus λ on {_common.title(ds)} (first {n} test images)\n"
              f"{_common.budget_text(ds, args)}")
    stem = _common.stem(args, ds, "lambda_sweep")
    _common.save(fig, stem)
    _common.write_csv(stem.with_suffix(".csv"), rows)
    _common.write_json(stem.with_suffix(".json"), {
        **_common.metadata(ds, args, __file__, n_examples=n, points=args.points,
                           seconds=round(time.time() - start, 1)),
        "paper_lambda": chosen, "sweeps": results})
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
