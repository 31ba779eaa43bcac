"""The paper models of a figure script: what they cost before any training (batches per model,
the budget text of titles and captions, which models would be trained now and for how long),
then the models themselves (:func:`paper_models`).

``args`` is the namespace of the shared script options (:func:`gradreg_tf.cli.parser`:
``budget``, ``batches``, ``seed``, ``cache_dir``).
"""

from __future__ import annotations

import time

from gradreg_tf import cli, recipes, zoo

STEP_SECONDS = {"plain": 0.146, "penalty": 0.351, "adversarial": 0.364, "both": 0.569}
"""Seconds per training batch of 256 of the paper's MNIST CNN on the reference machine (AMD EPYC,
2 cores, shared; README "Performance", ``bench/train_step.py``): the basis of the estimates
:func:`training_plan` gives. The SVHN network is larger, so its estimates are lower bounds."""

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
"""What a user can run instead, per dataset, said before any training."""


def batches_per_model(ds, args) -> int:
    """Batches a paper model of this budget actually trains (the original's epoch rounding)."""
    nominal = zoo.resolve_batches(ds, args.budget, args.batches)
    return recipes.paper_recipe(ds.name, "normal", n_batches=nominal).total_batches(len(ds.x_train))


def budget_text(ds, args) -> str:
    """E.g. ``"budget: reduced (1505 batches per model, seed 0)"``, for titles and captions."""
    n = batches_per_model(ds, args)
    head = f"{args.batches} nominal batches" if args.batches else f"budget: {args.budget}"
    return f"{head} ({n} batches per model, seed {args.seed})"


def step_seconds(recipe) -> float:
    """Measured seconds per training batch of ``recipe`` (:data:`STEP_SECONDS`)."""
    adversarial = getattr(recipe, "adversarial_eps", 0) > 0
    penalty = getattr(recipe, "penalty", None) is not None
    key = "both" if adversarial and penalty else "adversarial" if adversarial else (
        "penalty" if penalty else "plain")
    return STEP_SECONDS[key]


def training_plan(ds, args, names) -> tuple[list[str], float]:
    """Models of ``names`` that are neither shipped nor cached (so would be trained now), and an
    estimate of the training time in seconds from :data:`STEP_SECONDS` (distillation: teacher and
    student)."""
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
        seconds += sum(r.total_batches(len(ds.x_train)) * step_seconds(r) for r in steps)
    return todo, seconds


def announce_training(ds, args, names, log) -> list[str]:
    """Says through ``log``, before any training, which models will be trained, for how long
    (estimated), and what the faster or faithful alternative is.

    Returns:
        The models to train.
    """
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


SWEEP_SECONDS_PER_BATCH = (0.2, 0.44)
"""Range of training seconds per batch of a lambda-sweep model on 2 shared CPU cores (the
measured 5-11 min per model at ``--budget reduced``, 1,505 batches): the sweep estimate's basis."""


def announce_sweep(ds, args, sweeps, log) -> list:
    """Says through ``log``, before any training, how many lambda-sweep models are neither
    shipped nor cached, an estimate of their training time, and the faster alternatives.

    Args:
        ds: the :class:`gradreg_tf.data.Dataset`.
        args: the shared script options.
        sweeps: ``{kind: [recipe]}`` of the sweep (``recipes.sweep_recipes``).
        log: where the lines go.

    Returns:
        The recipes that would be trained now.
    """
    todo = {kind: [r for r in sweep if zoo.shipped_match(ds, r, seed=args.seed) is None
                   and not zoo.cached_model_path(ds, kind, budget=args.budget,
                                                 n_batches=args.batches, seed=args.seed,
                                                 cache_dir=args.cache_dir, recipe=r).is_file()]
            for kind, sweep in sweeps.items()}
    n_todo, n_all = sum(map(len, todo.values())), sum(map(len, sweeps.values()))
    if not n_todo:
        log(f"no training: all {n_all} sweep models are shipped or cached "
            f"({budget_text(ds, args)})")
        return []
    batches = sum(r.total_batches(len(ds.x_train)) for rs in todo.values() for r in rs)
    low, high = (batches * s / 3600 for s in SWEEP_SECONDS_PER_BATCH)
    log(f"will train {n_todo} of the {n_all} sweep models "
        f"({', '.join(f'{k} {len(v)}' for k, v in todo.items())}); "
        f"{budget_text(ds, args)}; estimated {low:.1f}-{high:.1f} h on 2 CPU cores "
        f"(5-11 min per 1,505 batches, measured); trained models are cached")
    log("instead: --budget reduced (a tenth of the schedule) or --quick (~1 epoch per "
        "model, a pipeline check); --points 3 trains fewer λ values, --kinds doubleback "
        "one sweep")
    return [r for rs in todo.values() for r in rs]


def paper_models(ds, args, names=None, *, log=print) -> dict:
    """``{name: trained model}`` from the shipped weights or the cache, training any that is
    missing (announced first by :func:`announce_training`).

    Args:
        ds: the :class:`gradreg_tf.data.Dataset`.
        args: the shared script options (also ``strategy`` and ``progress``).
        names: the models (default: :data:`gradreg_tf.recipes.PAPER_MODELS`).
        log: where the plan and the progress lines go.
    """
    names = tuple(names or recipes.PAPER_MODELS)
    announce_training(ds, args, names, log)
    strategy = cli.make_strategy(args.strategy)
    out = {}
    for i, name in enumerate(names, 1):
        start = time.time()
        log(f"[{i}/{len(names)}] {name} model ({budget_text(ds, args)})")
        out[name] = zoo.trained_model(ds, name, budget=args.budget, n_batches=args.batches,
                                      seed=args.seed, cache_dir=args.cache_dir,
                                      progress=args.progress, strategy=strategy)
        log(f"      ready in {time.time() - start:.1f} s")
    return out
