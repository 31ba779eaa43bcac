"""Which models each adversarial example fools: 3-set Venn diagrams (normal / advtrain /
gradient-regularized), for FGSM and TGSM.

    python experiments/venn_overlaps.py --dataset mnist [--budget reduced | --quick] [--eps 0.4]

Ross & Doshi-Velez (AAAI 2018), MNIST cells 35 and 47 (notMNIST 24/31, SVHN 23/30;
``compare_misclassification_overlaps``): for the single-step examples made from each of the
normal, adversarially trained and Grad Reg (y) models at one eps (MNIST 0.4, others 0.5), on
the first 256 test images, the overlap of the sets of examples that Grad Reg (y), Adv. Trained
and Normal misclassify. Examples crafted as in the transfer grids
(:func:`gradreg_tf.eval.grids.leading_signs`). Writes ``<dataset>_venn_<attack>.png/.pdf``,
``<dataset>_venn.csv`` (attack, eps, source, region, count) and ``<dataset>_venn.json``.
"""

from __future__ import annotations

import sys

import _common

SOURCES = ("normal", "advtrain", "doubleback")
# the paper's venn3 order: set A top left, B top right, C bottom
SETS = ("doubleback", "advtrain", "normal")
PAPER_EPS = {"mnist": 0.4}
DEFAULT_EPS = 0.5


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--eps", type=float, default=None,
                   help="perturbation (default: 0.4 on MNIST, 0.5 otherwise, as the paper)")
    p.add_argument("--n-examples", type=int, default=256, help="first N test images")
    p.add_argument("--attacks", default="fgsm,tgsm", help="comma-separated: fgsm, tgsm")
    args = p.parse_args(argv)

    import numpy as np

    from gradreg_tf import plotting
    from gradreg_tf.eval import grids
    from gradreg_tf.eval.metrics import region_counts

    attacks = [a.strip().lower() for a in args.attacks.split(",") if a.strip()]
    if not attacks or any(a not in ("fgsm", "tgsm") for a in attacks):
        p.error(f"--attacks must list fgsm and/or tgsm, received {args.attacks!r}")
    ds = _common.load_dataset(args)
    eps = args.eps if args.eps is not None else PAPER_EPS.get(ds.name, DEFAULT_EPS)
    n = min(args.n_examples, len(ds.x_test))
    models = _common.paper_models(ds, args, names=SOURCES)
    x, y = np.asarray(ds.x_test), np.asarray(ds.y_test[:n])
    rows, summary = [], {}
    for attack in attacks:
        fig = plotting.new_figure((13, 4.6))
        fig.get_layout_engine().set(h_pad=0.12)
        axes = fig.subplots(1, len(SOURCES))
        for ax, source in zip(axes, SOURCES):
            signs = grids.leading_signs(models[source], x, ds.y_test, n, attack=attack,
                                        bounds=ds.bounds)
            x_adv = grids.perturb(x[:n], signs, eps, attack=attack, bounds=ds.bounds)
            fooled = [evaluation_mistakes(models[m], x_adv, y) for m in SETS]
            counts = region_counts(fooled)
            plotting.plot_venn3(counts, [plotting.model_label(m) for m in SETS],
                                [plotting.model_color(m) for m in SETS], ax=ax,
                                title=f"{plotting.model_label(source)} examples")
            summary[f"{attack}/{source}"] = {"fooled": {m: int(f.sum()) for m, f in
                                                        zip(SETS, fooled)}, "regions": counts}
            for code, k in counts.items():
                members = "+".join(m for bit, m in zip(code, SETS) if bit == "1")
                rows.append({"attack": attack, "eps": eps, "source_model": source,
                             "region": code, "fooled_exactly_by": members, "count": k,
                             "n_examples": n})
        fig.suptitle(fr"Overlap in which $\epsilon={eps:g}$ {attack.upper()} examples fool which "
                     f"model ({_common.title(ds)}, first {n} test images)", fontsize=13)
        fig.supxlabel(_common.budget_text(ds, args), fontsize=9, color="0.3")
        _common.save(fig, _common.stem(args, ds, f"venn_{attack}"))
    stem = _common.stem(args, ds, "venn")
    _common.write_csv(stem.with_suffix(".csv"), rows)
    _common.write_json(stem.with_suffix(".json"), {
        **_common.metadata(ds, args, __file__, eps=eps, n_examples=n,
                           sets_order=list(SETS),
                           region_code="bit i = misclassified by sets_order[i]"),
        "overlaps": summary})
    return rows


def evaluation_mistakes(model, x, y):
    """Bool mask of the examples ``model`` misclassifies (one batch, as the notebooks)."""
    import numpy as np

    from gradreg_tf.attacks import predict_labels

    return predict_labels(model, x, batch_size=len(x)) != np.asarray(y)


if __name__ == "__main__":
    main(sys.argv[1:])
