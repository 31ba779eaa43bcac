"""Transfer grids of the paper (FGSM and TGSM): every model against every model's examples.

    python experiments/transfer.py --dataset mnist [--budget reduced | --quick] [--n-examples all]

Ross & Doshi-Velez (AAAI 2018), "CNN Accuracy on <dataset> Adversarial Examples": for each
attack, the accuracy of each of the five paper models (target) on single-step examples made
from each model's input gradients (source), eps in {0, 0.1, ..., 0.7}, first 256 test images,
computed as the notebooks did (:func:`gradreg_tf.eval.grids.transfer_grid`). Models come from
the cache or are trained on the way. Writes, in ``--out`` (default ``figures/``):

* ``<dataset>_transfer.csv``: the published file's columns (dataset, attack, target_model,
  source_model, eps, accuracy, n_correct, n_examples) plus ``whitebox``, one row per cell;
* ``<dataset>_transfer_<attack>.png``/``.pdf``: the paper's 2 x 3 figure, published curves
  drawn faintly (dashed) beside ours;
* ``<dataset>_transfer.json``: provenance, clean accuracy of each model on the attacked
  images, the comparison with the published grid, and the paper's claims
  (:mod:`gradreg_tf.eval.claims`) on ours and on the published grid. Our side of the claims is
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


def main(argv=None, *, default_dataset: str = "mnist"):
    """Runs the transfer experiment; returns the written rows (list of dicts)."""
    p = build_parser(default_dataset)
    args = p.parse_args(argv)
    n_arg = cli.check_count_or_all(p, args.n_examples, option="--n-examples")
    attacks = cli.check_names(p, args.attacks, ATTACKS, option="--attacks", lower=True)

    from gradreg_tf import plotting, published
    from gradreg_tf.eval import compare, grids

    epsilons = grids.PAPER_EPSILONS if args.epsilons is None else args.epsilons
    start = time.time()
    ds = _common.load_dataset(args)
    n_test, n_all = len(ds.x_test), _common.notebook_test_size(ds)
    n = n_all if n_arg == "all" else min(n_arg, n_test)
    if n_arg != "all" and n_arg > n_test:
        _common.log(f"note: --n-examples {n_arg} > {n_test} test images; using {n}.")
    models = _common.paper_models(ds, args)
    names, x, y = list(models), ds.x_test, ds.y_test
    limit = max(n, n_all)  # the notebooks computed SVHN gradients on Xt[:4000] only
    clean = {name: grids.accuracy(m, x[:n], y[:n], batch_size=n) for name, m in models.items()}
    rows, summary, grid_objects = [], {}, []
    for attack in attacks:
        grid_rows = grids.transfer_grid(models, models, x[:limit], y[:limit], attack=attack,
                                        epsilons=epsilons, bounds=ds.bounds, n_examples=n,
                                        progress=args.progress)
        grid_objects += grid_rows
        these = [dict(dataset=ds.name, **r.as_dict(),
                      whitebox=int(r.target_model == r.source_model)) for r in grid_rows]
        rows += these
        ours, theirs, summary[attack] = compare.grid_vs_published(these, ds.name, attack, names,
                                                                  epsilons, n)
        cmp = summary[attack]["vs_published"]
        notes = compare.agreement_notes(cmp, n)
        fig = plotting.plot_transfer_grid(
            epsilons, ours, names, reference=theirs if cmp.get("n_points") else None,
            attack_label=attack.upper(),
            title=f"CNN Accuracy on {_common.title(ds)} Adversarial Examples ({attack.upper()})",
            caption=f"This reproduction: {_common.budget_text(ds, args)}; first {n} test images. "
                    f"Dashed: published (Ross & Doshi-Velez 2018, 256 images).", notes=notes)
        _common.save(fig, _common.stem(args, ds, f"transfer_{attack}"))
        _common.log(f"{attack.upper()}: " + (f"mean |ours - published| = "
                                             f"{cmp['mean_abs_difference']:.3f}"
                                             if cmp.get("n_points") else "no published numbers"))
    claims, n_claims = [], 0
    if set(attacks) == set(ATTACKS):
        n_claims = min(args.n_claims, n_test) if args.n_claims else n
        if n_claims != n:
            _common.log(f"claims: transfer grids on the first {n_claims} test images")
        claim_grid = compare.claim_grid(models, ds, n_claims=n_claims, grid=grid_objects,
                                        epsilons=epsilons, min_images=n_all, progress=args.progress)
        grids.save_per_example(_common.stem(args, ds, "transfer").with_suffix(
            ".per_example.npz"), claim_grid)
        claims = compare.paper_claims([r.as_dict(per_example=True) for r in claim_grid], ds.name,
                                      log=_common.log)
    for c in claims:
        _common.log(f"claim {c['claim']}: ours {'holds' if c['ours'] else 'FAILS'}, "
                    f"published {'holds' if c['published'] else 'fails'} ({c['detail']})")
    csv_path = _common.write_csv(_common.stem(args, ds, "transfer").with_suffix(".csv"), rows,
                                 list(published.TRANSFER_FIELDS) + ["whitebox"])
    _common.write_json(csv_path.with_suffix(".json"), {
        **_common.metadata(ds, args, __file__, n_examples=n, epsilons=list(epsilons),
                           seconds=round(time.time() - start, 1)),
        "clean_accuracy_on_attacked_images": clean, "attacks": summary,
        "claims": claims, "n_claims": n_claims})
    _common.log(f"wrote {csv_path} ({len(rows)} rows) in {time.time() - start:.0f} s")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
