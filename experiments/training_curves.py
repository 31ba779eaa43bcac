"""Clean and FGSM accuracy over training, normal vs gradient-regularized (double backprop).

    python experiments/training_curves.py --dataset mnist [--budget reduced | --quick]

Ross & Doshi-Velez (AAAI 2018), MNIST cell 37: every 100 batches, accuracy on the first 512
test images (green) and on their eps=0.2 FGSM versions made from a separately trained
reference normal model (blue; the original used a cached normal-model perturbation); left
the normal CNN, right Grad Reg (y). The paper's normal model peaks near 0.79 FGSM accuracy
and decays to about 0.55 while the regularized one rises to about 0.9 and stays. The curves
are recorded while the models train (:func:`gradreg_tf.zoo.trained_curves`). Writes
``<dataset>_training_curves.png/.pdf``, ``.csv`` (model, batch, test_accuracy,
fgsm_accuracy, loss, cross_entropy, penalty) and ``.json``.
"""

from __future__ import annotations

import sys

import _common

MODELS = ("normal", "doubleback")
TITLES = {"normal": "Normal CNN", "doubleback": "Grad. Reg. CNN"}


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--max-batch", type=int, default=None,
                   help="plot only the first N batches (the paper showed ~5000)")
    args = p.parse_args(argv)

    import numpy as np

    from gradreg_tf import plotting, zoo

    ds = _common.load_dataset(args)
    _common.paper_models(ds, args, names=MODELS)  # trains (with progress) if missing
    fig = plotting.new_figure((11, 3.9))
    axes = fig.subplots(1, 2, sharey=True)
    rows, summary = [], {}
    for ax, name in zip(axes, MODELS):
        c = zoo.trained_curves(ds, name, budget=args.budget, n_batches=args.batches,
                               seed=args.seed, cache_dir=args.cache_dir, progress=args.progress)
        keep = np.ones(len(c["batch"]), bool) if args.max_batch is None else \
            c["batch"] <= args.max_batch
        plotting.plot_training_curves(c["batch"][keep], c["test_accuracy"][keep],
                                      c["fgsm_accuracy"][keep], ax=ax, title=TITLES[name])
        rows += [{"model": name, **{k: float(v[i]) for k, v in c.items()}}
                 for i in np.flatnonzero(keep)]
        f = c["fgsm_accuracy"][keep]
        summary[name] = {"points": int(keep.sum()),
                         "final_test_accuracy": float(c["test_accuracy"][keep][-1]) if keep.any()
                         else None,
                         "final_fgsm_accuracy": float(f[-1]) if f.size else None,
                         "max_fgsm_accuracy": float(np.nanmax(f)) if f.size else None,
                         "batch_of_max_fgsm": float(c["batch"][keep][np.nanargmax(f)]) if f.size
                         else None}
    fig.suptitle(f"Normal and adversarial accuracy over training ({_common.title(ds)})\n"
                 f"{_common.budget_text(ds, args)}; FGSM from a reference normal model",
                 fontsize=12)
    stem = _common.stem(args, ds, "training_curves")
    _common.save(fig, stem)
    _common.write_csv(stem.with_suffix(".csv"), rows)
    _common.write_json(stem.with_suffix(".json"), {
        **_common.metadata(ds, args, __file__), "curves": summary})
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
