"""Input-gradient maps of every model (the paper's "∇x log f(X) for CNNs" figure).

    python experiments/gradient_maps.py --dataset mnist [--budget reduced | --quick]

Ross & Doshi-Velez (AAAI 2018), MNIST cell 17 (notMNIST 10, SVHN 10): the first test image of
each of the first six classes (top row) and, one row per model, the input gradient of the sum
of all log-probabilities (``gradreg_tf.saliency.sum_logp_gradients``), each map scaled to its
own min/max as the original's ``imshow``. Gradient-regularized models give smooth, digit-shaped
maps; normal and distilled ones look like noise. Writes ``<dataset>_gradient_maps.png/.pdf``,
``.npz`` (images, raw gradients, test indices) and ``.json`` (provenance, per-map statistics).
"""

from __future__ import annotations

import sys

import _common


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--n-classes", type=int, default=6, help="columns: the first N classes")
    p.add_argument("--offset", type=int, default=None,
                   help="use the (offset+1)-th test example of each class (default: 0; SVHN 1, "
                        "as the notebook)")
    args = p.parse_args(argv)

    import numpy as np

    from gradreg_tf import plotting, saliency
    from gradreg_tf.data.base import first_of_each_class
    from gradreg_tf.eval.metrics import gradient_map_stats

    ds = _common.load_dataset(args)
    if not 1 <= args.n_classes <= ds.n_classes:
        p.error(f"--n-classes must be in [1, {ds.n_classes}], received {args.n_classes}")
    offset = args.offset if args.offset is not None else (1 if ds.name == "svhn" else 0)
    idx = first_of_each_class(ds.y_test, ds.n_classes, offset=offset)[:args.n_classes]
    x = np.asarray(ds.x_test[idx])
    models = _common.paper_models(ds, args)
    grads = {name: saliency.sum_logp_gradients(m, x) for name, m in models.items()}
    shown = np.stack([saliency.minmax(x)] + [saliency.minmax(g) for g in grads.values()])
    labels = ["Images"] + [plotting.model_label(n) for n in grads]
    fig = plotting.plot_image_grid(
        shown, row_labels=labels, col_labels=[ds.class_names[int(ds.y_test[i])] for i in idx],
        title=fr"$\nabla_x \log f(X)$ for CNNs on {_common.title(ds)}" + "\n"
              + _common.budget_text(ds, args), cell_size=1.05)
    stats = gradient_map_stats(grads, x)
    _common.write_results(
        args, ds, "gradient_maps", __file__, meta={"test_indices": idx, "offset": offset},
        fig=fig, arrays={"indices": idx, "images": x, **{f"grad_{k}": v for k, v in grads.items()}},
        gradient="d/dx sum_k log softmax(logits)_k, per example, training=False", maps=stats)
    return stats


if __name__ == "__main__":
    main(sys.argv[1:])
