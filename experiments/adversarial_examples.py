"""FGSM and TGSM examples at eps=0.2 of the first 10 test images, one row per source model.

    python experiments/adversarial_examples.py --dataset mnist [--budget reduced | --quick]

Ross & Doshi-Velez (AAAI 2018), MNIST cells 29 (FGSM) and 41 (TGSM, target (y+1) mod K);
notMNIST 20/27, SVHN 19/26: the examples of the transfer grids at one eps, made as there
(:func:`gradreg_tf.eval.grids.leading_signs`: chunk-mean cross-entropy, exactly-zero
gradients leave pixels unperturbed, which is why the paper's distilled row is nearly clean).
Each image is drawn with its own min/max. Writes ``<dataset>_examples_<attack>.png/.pdf``,
``<dataset>_examples.csv`` (attack, source, image, label, each model's prediction) and
``.json``.
"""

from __future__ import annotations

import sys

import _common


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--eps", type=float, default=0.2, help="perturbation")
    p.add_argument("--n-images", type=int, default=10, help="first N test images")
    args = p.parse_args(argv)

    import numpy as np

    from gradreg_tf import plotting, saliency
    from gradreg_tf.attacks import predict_labels
    from gradreg_tf.eval import grids

    ds = _common.load_dataset(args)
    n = min(args.n_images, len(ds.x_test))
    x, y = np.asarray(ds.x_test), np.asarray(ds.y_test)
    models = _common.paper_models(ds, args)
    rows, fooled = [], {}
    for attack in ("fgsm", "tgsm"):
        shown = []
        for source, model in models.items():
            signs = grids.leading_signs(model, x, y, n, attack=attack, bounds=ds.bounds)
            x_adv = grids.perturb(x[:n], signs, args.eps, attack=attack, bounds=ds.bounds)
            shown.append(saliency.minmax(x_adv))
            preds = {t: predict_labels(m, x_adv, batch_size=n) for t, m in models.items()}
            fooled[f"{attack}/{source}"] = {t: int(np.sum(v != y[:n])) for t, v in preds.items()}
            for i in range(n):
                rows.append({"attack": attack, "eps": args.eps, "source_model": source,
                             "image": i, "label": int(y[i]),
                             "unperturbed_pixels": int(np.sum(signs[i] == 0)),
                             **{f"pred_{t}": int(v[i]) for t, v in preds.items()}})
        fig = plotting.plot_image_grid(
            np.stack(shown), row_labels=[plotting.model_label(m) for m in models],
            title=fr"{attack.upper()} examples, $\epsilon={args.eps:g}$ ({_common.title(ds)})"
                  + "\n" + _common.budget_text(ds, args), cell_size=1.0)
        _common.save(fig, _common.stem(args, ds, f"examples_{attack}"))
    stem = _common.stem(args, ds, "examples")
    _common.write_csv(stem.with_suffix(".csv"), rows)
    _common.write_json(stem.with_suffix(".json"), {
        **_common.metadata(ds, args, __file__, eps=args.eps, n_images=n),
        "misclassified_count": fooled})
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
