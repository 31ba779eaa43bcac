"""Histograms of every predicted log-probability on the test set (the paper's figure of
confidence: distilled log-probs of non-predicted classes sit near -400 at T=1).

    python experiments/logprob_histograms.py --dataset mnist [--budget reduced | --quick]

Ross & Doshi-Velez (AAAI 2018), MNIST cell 21 (notMNIST 14, SVHN 13): all K log-probabilities
of every test image (SVHN: the first 4000, as the notebook), left panel normal, adversarially
trained and both gradient-regularized models on [-50, 0], right panel the distilled model on
a range wide enough for it (the paper: [-800, 0]). Values left of a panel's range are not
drawn (their fraction is in the JSON). Writes ``<dataset>_logprob_histograms.png/.pdf``,
``.csv`` (model, bin_left, bin_right, count) and ``.json`` (provenance, quantiles).
"""

from __future__ import annotations

import math
import sys

import _common

LEFT = ("normal", "advtrain", "insensitive", "doubleback")
RIGHT = ("distilled",)


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--bins", type=int, default=50, help="bins per panel")
    _common.add_n_test(p)
    args = p.parse_args(argv)

    import numpy as np

    from gradreg_tf import plotting, saliency

    ds = _common.load_dataset(args)
    n = _common.n_test(ds, args)
    models = _common.paper_models(ds, args)
    logp = {name: saliency.log_probabilities(m, ds.x_test[:n]) for name, m in models.items()}
    right_low = min(-50.0, 100 * math.floor(min(np.quantile(logp[m], 0.001) for m in RIGHT) / 100))
    panels = {"left": (LEFT, np.linspace(-50, 0, args.bins + 1)),
              "right": (RIGHT, np.linspace(right_low, 0, args.bins + 1))}
    fig = plotting.new_figure((10, 4.4))
    axes = fig.subplots(1, 2)
    rows, counts_by_panel = [], {}
    for ax, (panel, (names, edges)) in zip(axes, panels.items()):
        counts = {m: np.histogram(logp[m].ravel(), bins=edges)[0] for m in names if m in logp}
        counts_by_panel[panel] = counts
        plotting.plot_histograms(edges, counts, ax=ax, xlabel=None,
                                 ylabel="Frequency" if panel == "left" else None)
        for m, c in counts.items():
            rows += [{"model": m, "bin_left": float(lo), "bin_right": float(hi), "count": int(k)}
                     for lo, hi, k in zip(edges[:-1], edges[1:], c)]
    fig.supxlabel("Predicted log probability")
    fig.suptitle(f"Distribution of Predicted Log Probabilities by Model ({_common.title(ds)}, "
                 f"{n} test images)\n{_common.budget_text(ds, args)}", fontsize=12)
    stem = _common.stem(args, ds, "logprob_histograms")
    _common.save(fig, stem)
    _common.write_csv(stem.with_suffix(".csv"), rows)
    summary = {}
    for m, v in logp.items():
        lows = panels["left" if m in LEFT else "right"][1][0]
        non_max = np.sort(v, axis=1)[:, :-1]
        summary[m] = {"panel_lower_bound": float(lows),
                      "fraction_below_panel": float(np.mean(v < lows)),
                      "median_top_logp": float(np.median(v.max(axis=1))),
                      "median_other_logp": float(np.median(non_max)),
                      "quantiles_all": {str(q): float(np.quantile(v, q))
                                        for q in (0.001, 0.01, 0.1, 0.5, 0.9)}}
    _common.write_json(stem.with_suffix(".json"), {
        **_common.metadata(ds, args, __file__, n_test=n), "log_probabilities": summary})
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
