"""Box plots of input-gradient norms along the FGSM and TGSM directions, per model.

    python experiments/gradient_norms.py --dataset mnist [--budget reduced | --quick]

Ross & Doshi-Velez (AAAI 2018), MNIST cell 25 (notMNIST 17, SVHN 16): per test image (SVHN:
the first 4000), the L2 norm of the input gradient of the chunk-mean cross-entropy (chunks of
1000, as the attacks) w.r.t. the true label (top, the FGSM direction) and w.r.t. (y+1) mod K
(bottom, TGSM), floored at 1e-20, log scale (``gradreg_tf.saliency.gradient_norms``). The
distilled model's true-label gradients are exactly zero (vanishing softmax at T=1). Writes
``<dataset>_gradient_norms.png/.pdf``, ``.csv`` (summary statistics per model and direction),
``.npz`` (every norm) and ``.json`` (provenance).
"""

from __future__ import annotations

import sys

import _common

DIRECTIONS = (("fgsm", 0, r"$\|\nabla_x H(y, \hat{y})\|_2$ (FGSM)"),
              ("tgsm", 1, r"$\|\nabla_x H(y_{+1}, \hat{y})\|_2$ (TGSM)"))


def main(argv=None):
    args, ds, n = _common.test_set_run(__doc__.splitlines()[0], argv)

    import numpy as np

    from gradreg_tf import plotting, saliency
    from gradreg_tf.eval.metrics import distribution_summary

    x, y = ds.x_test[:n], ds.y_test[:n]
    models = _common.paper_models(ds, args)
    fig = plotting.new_figure((9, 7))
    axes = fig.subplots(2, 1)
    rows, raw = [], {}
    for ax, (attack, offset, ylabel) in zip(axes, DIRECTIONS):
        norms = {name: saliency.gradient_norms(m, x, y, label_offset=offset)
                 for name, m in models.items()}
        # the axis spans every model's 1st percentile to the maximum (isolated outliers below
        # are cut, as the paper's fixed ylim did); the CSV keeps the true minimum
        low = min(np.quantile(v, 0.01) for v in norms.values())
        high = max(v.max() for v in norms.values())
        plotting.plot_gradient_norms(norms, ax=ax, ylabel=ylabel,
                                     ylim=(10 ** np.floor(np.log10(low) - 0.3),
                                           10 ** np.ceil(np.log10(high) + 0.3)))
        for name, v in norms.items():
            raw[f"{attack}_{name}"] = v
            rows.append({"attack": attack, "model": name,
                         **distribution_summary(v, floor=saliency.NORM_FLOOR)})
    fig.suptitle(f"Adversarial input gradient norms for CNNs on {_common.title(ds)} "
                 f"({n} test images)\n{_common.budget_text(ds, args)}", fontsize=12)
    _common.write_results(
        args, ds, "gradient_norms", __file__, meta={"n_test": n}, fig=fig, rows=rows, arrays=raw,
        gradient="L2 norm of d/dx mean_chunk CE(labels), chunks of 1000, floored at 1e-20",
        summary=rows)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
