"""JSMA target grids: each original class pushed toward each target class by the Jacobian
saliency map attack, per model.

    python experiments/jsma_grids.py --dataset mnist [--budget reduced | --quick] [--gamma 0.25]

The original's ``scripts/generate_jsma_grids.py`` (Ross & Doshi-Velez, AAAI 2018): pairwise
JSMA (Papernot et al. 2016, cleverhans 2.0 semantics, :func:`gradreg_tf.attacks.jsma`) with
theta=1 and gamma=0.25 on the logits, from the first test image of every class toward every
other class. No JSMA figure or number appears in the notebooks, so there is nothing published
to compare with; the grid shows what the attack does to each model (how many pixels it needs,
``n_changed``, is in the CSV). Row = original class, column = target, diagonal = original.
Cost: 90 attacks per model, each up to ``floor(n_features * gamma / 2)`` (MNIST: 98)
forward/backward passes; see the JSON's ``seconds_attacks``. Writes
``<dataset>_jsma_grids.png/.pdf``, ``.csv`` (model, original_class, target_class,
predicted, success, p_target, n_changed), ``.npz`` and ``.json``.
"""

from __future__ import annotations

import sys

import _common
import _grids


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--theta", type=float, default=1.0, help="change per selected feature")
    p.add_argument("--gamma", type=float, default=0.25,
                   help="maximum fraction of features changed (the original: 0.25)")
    p.add_argument("--n-classes", type=int, default=None,
                   help="only the first N classes (a smaller grid, for smoke tests)")
    p.add_argument("--batch-size", type=int, default=100, help="examples attacked together")
    args = p.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from gradreg_tf import attacks

    ds = _common.load_dataset(args)
    k = args.n_classes or ds.n_classes
    if not 2 <= k <= ds.n_classes:
        p.error(f"--n-classes must be in [2, {ds.n_classes}], received {k}")
    x, y, idx = _grids.originals(ds, 1)
    x, y, idx = x[:k], y[:k], idx[:k]
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    src = np.array([i for i, _ in pairs])
    tgt = np.array([j for _, j in pairs])
    models = _common.paper_models(ds, args)
    timer = _grids.Timer()
    images, preds, success, p_target, changed = {}, {}, {}, {}, {}
    for m_i, (name, model) in enumerate(models.items(), 1):
        t0 = _grids.Timer()
        res = attacks.jsma(model, x[src], y_target=tgt, bounds=ds.bounds, theta=args.theta,
                           gamma=args.gamma, batch_size=args.batch_size)
        x_adv = np.array(res.x_adv)
        grid = np.repeat(x[:, None], k, axis=1)  # the diagonal keeps the original
        grid[src, tgt] = x_adv
        prob = tf.nn.softmax(model(grid.reshape((-1,) + x.shape[1:]), training=False)).numpy()
        prob = prob.reshape(k, k, -1)
        pr = prob.argmax(-1)
        n_changed = np.zeros((k, k), int)
        n_changed[src, tgt] = res.n_changed.numpy()
        images[name], preds[name], changed[name] = grid, pr, n_changed
        p_target[name] = np.take_along_axis(prob, np.arange(k)[None, :, None].repeat(k, 0),
                                            axis=-1)[..., 0]
        success[name] = pr == np.arange(k)[None, :]
        _common.log(f"[{m_i}/{len(models)}] JSMA on {name}: {len(pairs)} attacks in {t0()} s, "
                    f"median {int(np.median(res.n_changed.numpy()))} pixels changed")
    return _grids.write_outputs(
        args, ds, "jsma_grids", images=images, predictions=preds, success=success,
        p_target=p_target, classes=list(range(k)), per_cell={"n_changed": changed},
        title=f"JSMA toward every class ({_common.title(ds)})",
        subtitle=fr"JSMA, $\theta={args.theta:g}$, $\gamma={args.gamma:g}$ (logits)",
        extra={"theta": args.theta, "gamma": args.gamma, "test_indices": idx,
               "seconds_attacks": timer(),
               "median_pixels_changed": {m: float(np.median(c[src, tgt]))
                                         for m, c in changed.items()}})


if __name__ == "__main__":
    main(sys.argv[1:])
