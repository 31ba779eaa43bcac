"""Transfer grids of the paper (FGSM and TGSM): every model against every model's examples.

    python experiments/transfer.py --dataset mnist [--budget reduced | --quick] [--n-examples all]

Ross & Doshi-Velez (AAAI 2018), "CNN Accuracy on <dataset> Adversarial Examples": for each
attack, the accuracy of each of the five paper models (target) on single-step examples made
from each model's input gradients (source), eps in {0, 0.1, ..., 0.7}, first 256 test images,
computed as the notebooks did (:func:`gradreg_tf.evaluation.transfer_grid`). Models come from
the cache or are trained on the way. Writes, in ``--out`` (default ``figures/``):

* ``<dataset>_transfer.csv``: the published file's columns (dataset, attack, target_model,
  source_model, eps, accuracy, n_correct, n_examples) plus ``whitebox``, one row per cell;
* ``<dataset>_transfer_<attack>.png``/``.pdf``: the paper's 2 x 3 figure, published curves
  drawn faintly (dashed) beside ours;
* ``<dataset>_transfer.json``: provenance, clean accuracy of each model on the attacked
  images, the comparison with the published grid, and the paper's claims
  (:mod:`gradreg_tf.claims`) on ours and on the published grid. Our side of the claims is
  measured on the first ``--n-claims`` test images (default 2048; the published side has 256),
  with each claim's margin in standard errors, as ``tests/test_published.py`` checks them.

``mnist_transfer.py``, ``notmnist_transfer.py`` and ``svhn_transfer.py`` are this script with
the dataset preset.
"""

from __future__ import annotations

import sys
import time

import _common

from gradreg_tf import cli

ATTACKS = ("fgsm", "tgsm")


def _n_examples(text: str):
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"--n-examples must be a positive integer or 'all', received {text!r}")
    return value


def build_parser(default_dataset: str = "mnist"):
    p = _common.parser(__doc__.splitlines()[0], default_dataset=default_dataset)
    p.add_argument("--n-examples", default="256",
                   help="attacked test images: the first N, or 'all' = the notebooks' test set "
                        "(MNIST, notMNIST: all 10000; SVHN: the first 4000)")
    p.add_argument("--n-claims", type=cli.nonnegative_int, default=2048,
                   help="test images for our side of the paper's claims (0: use the grid's own)")
    p.add_argument("--attacks", default="fgsm,tgsm", help="comma-separated: fgsm, tgsm")
    p.add_argument("--epsilons", type=cli.nonnegative_floats, default=None,
                   help="comma-separated eps values (default: 0,0.1,...,0.7 as the paper)")
    return p


def compare(ours, theirs, models, epsilons, n_examples: int, mean_abs_difference: float) -> dict:
    """Agreement of two ``[source, target, eps]`` grids (the mean absolute difference comes from
    :func:`gradreg_tf.claims.mean_abs_difference`)."""
    import numpy as np

    diff = ours - theirs
    ok = ~np.isnan(diff)
    out = {"n_points": int(ok.sum())}
    if not ok.any():
        return out
    se = np.sqrt(np.clip(theirs * (1 - theirs), 1 / n_examples, None) / n_examples)
    worst = np.unravel_index(np.nanargmax(np.abs(diff)), diff.shape)
    out.update({
        "mean_abs_difference": mean_abs_difference,
        "mean_difference": float(np.nanmean(diff)),
        "max_abs_difference": float(np.abs(diff[worst])),
        "max_at": {"source_model": models[worst[0]], "target_model": models[worst[1]],
                   "eps": float(epsilons[worst[2]])},
        "fraction_within_2se": float(np.mean(np.abs(diff[ok]) <= 2 * se[ok])),
    })
    return out


def blackbox_means(grid, models) -> dict:
    """Per target and eps: mean accuracy over foreign sources other than ``distilled`` (whose
    FGSM examples are degenerate), the quantity of the paper's transfer claim."""
    import numpy as np

    out = {}
    for t, target in enumerate(models):
        src = [s for s, name in enumerate(models) if name not in (target, "distilled")]
        out[target] = np.nanmean(grid[src, t, :], axis=0) if src else np.full(grid.shape[2],
                                                                                np.nan)
    return out


def paper_claims(rows, dataset: str) -> list[dict]:
    """The paper's transfer claims (:mod:`gradreg_tf.claims`) on ours and on the published grid."""
    from gradreg_tf import claims, published

    try:
        ours = claims.transfer_claims(rows)
        theirs = claims.transfer_claims(published.load_transfer(dataset=dataset))
    except claims.MissingCellError as err:  # a partial grid (custom --epsilons): no claims
        _common.log(f"claims not evaluated: {err}")
        return []
    return [{"claim": a.name, "key": key, "ours": a.holds, "margin_se": round(a.margin, 2),
             "published": theirs[key].holds, "detail": a.detail} for key, a in ours.items()]


def main(argv=None, *, default_dataset: str = "mnist"):
    """Runs the transfer experiment; returns the written rows (list of dicts)."""
    p = build_parser(default_dataset)
    args = p.parse_args(argv)
    try:
        n_arg = _n_examples(args.n_examples)
    except ValueError as err:
        p.error(str(err))
    attacks = [a.strip().lower() for a in args.attacks.split(",") if a.strip()]
    bad = [a for a in attacks if a not in ATTACKS]
    if bad or not attacks:
        p.error(f"--attacks: unknown {bad or attacks}; choose from {', '.join(ATTACKS)}")

    from gradreg_tf import claims as claims_mod
    from gradreg_tf import evaluation, plotting, published

    epsilons = evaluation.PAPER_EPSILONS if args.epsilons is None else args.epsilons
    start = time.time()
    ds = _common.load_dataset(args)
    n_test = len(ds.x_test)
    n_all = min(n_test, _common.NOTEBOOK_TEST_SIZE.get(ds.name, n_test))
    n = n_all if n_arg == "all" else min(n_arg, n_test)
    if n_arg != "all" and n_arg > n_test:
        _common.log(f"note: --n-examples {n_arg} > {n_test} test images; using {n}.")
    models = _common.paper_models(ds, args)
    names = list(models)
    budget = _common.budget_text(ds, args)
    x, y = ds.x_test, ds.y_test
    # the notebooks computed SVHN gradients on Xt[:4000] only (in chunks of 1000)
    limit = max(n, n_all)
    clean = {name: evaluation.accuracy(m, x[:n], y[:n], batch_size=n) for name, m in models.items()}
    rows, summary, grid_objects = [], {}, []
    for attack in attacks:
        grid_rows = evaluation.transfer_grid(models, models, x[:limit], y[:limit], attack=attack,
                                             epsilons=epsilons, bounds=ds.bounds, n_examples=n,
                                             progress=args.progress)
        grid_objects += grid_rows
        these = [dict(dataset=ds.name, **r.as_dict(),
                      whitebox=int(r.target_model == r.source_model)) for r in grid_rows]
        rows += these
        ours = published.grid_array(these, sources=names, targets=names, epsilons=epsilons)
        theirs = published.grid_array(published.load_transfer(dataset=ds.name, attack=attack),
                                      sources=names, targets=names, epsilons=epsilons)
        published_rows = published.load_transfer(dataset=ds.name, attack=attack)
        try:
            mad = claims_mod.mean_abs_difference(these, published_rows, attack)
        except ValueError:  # no published cell for these models/eps
            mad = None
        cmp = compare(ours, theirs, names, epsilons, n, mad)
        summary[attack] = {
            "vs_published": cmp,
            "blackbox_mean_ours": blackbox_means(ours, names),
            "blackbox_mean_published": blackbox_means(theirs, names),
        }
        notes = []
        if cmp.get("n_points"):
            notes.append(f"|ours − published|: mean {cmp['mean_abs_difference']:.3f}, "
                         f"max {cmp['max_abs_difference']:.2f}")
            notes.append(f"{100 * cmp['fraction_within_2se']:.0f}% of points within 2 SE "
                         f"(n = {n})")
        fig = plotting.plot_transfer_grid(
            epsilons, ours, names, reference=theirs if cmp.get("n_points") else None,
            attack_label=attack.upper(),
            title=f"CNN Accuracy on {_common.title(ds)} Adversarial Examples ({attack.upper()})",
            caption=f"This reproduction: {budget}; first {n} test images. "
                    f"Dashed: published (Ross & Doshi-Velez 2018, 256 images).", notes=notes)
        _common.save(fig, _common.stem(args, ds, f"transfer_{attack}"))
        _common.log(f"{attack.upper()}: " + (f"mean |ours - published| = "
                                             f"{cmp['mean_abs_difference']:.3f}"
                                             if cmp.get("n_points") else "no published numbers"))
    claims, n_claims = [], 0
    if set(attacks) == set(ATTACKS):
        n_claims = min(args.n_claims, n_test) if args.n_claims else n
        claim_grid = grid_objects
        if n_claims != n:
            _common.log(f"claims: transfer grids on the first {n_claims} test images")
            claim_grid = [r for attack in attacks for r in evaluation.transfer_grid(
                models, models, x[:max(n_claims, n_all)], y[:max(n_claims, n_all)],
                attack=attack, epsilons=epsilons, bounds=ds.bounds, n_examples=n_claims,
                progress=args.progress)]
        evaluation.save_per_example(_common.stem(args, ds, "transfer").with_suffix(
            ".per_example.npz"), claim_grid)
        claims = paper_claims([r.as_dict(per_example=True) for r in claim_grid], ds.name)
    for c in claims:
        _common.log(f"claim {c['claim']}: ours {'holds' if c['ours'] else 'FAILS'}, "
                    f"published {'holds' if c['published'] else 'fails'} ({c['detail']})")
    csv_path = _common.write_csv(_common.stem(args, ds, "transfer").with_suffix(".csv"), rows,
                                 list(published.TRANSFER_FIELDS) + ["whitebox"])
    _common.write_json(csv_path.with_suffix(".json"), {
        **_common.metadata(ds, args, __file__, n_examples=n, epsilons=list(epsilons),
                           seconds=round(time.time() - start, 1)),
        "clean_accuracy_on_attacked_images": clean,
        "attacks": summary,
        "claims": claims, "n_claims": n_claims,
    })
    _common.log(f"wrote {csv_path} ({len(rows)} rows) in {time.time() - start:.0f} s")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
