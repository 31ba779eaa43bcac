"""Iterated-TGSM target grids: each original class pushed toward each target class, per model.

    python experiments/tgsm_grids.py --dataset mnist [--budget reduced | --quick] [--steps 10]

Ross & Doshi-Velez (AAAI 2018), MNIST cell 50 (notMNIST 33, SVHN 32; the original's
``scripts/generate_tgsm_grids.py``): the first 5 test images of every class (the grid shows
the first), for every target class, ``steps`` iterations of targeted gradient sign steps of
eps=0.1 (:func:`gradreg_tf.attacks.tgsm`, gradients of the mean cross-entropy over those 50
images, clipped to the data bounds, no projection). Row = original class, column = target;
the diagonal is the original. The paper shows 10 iterations (SVHN 15): examples made against
gradient-regularized models morph into the target class, the others look like noise. Writes
``<dataset>_tgsm_grids.png/.pdf``, ``.csv`` (model, original_class, target_class, predicted,
success, p_target), ``.npz`` (the adversarial images) and ``.json``.
"""

from __future__ import annotations

import sys

import _common
import _grids


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--eps", type=float, default=0.1, help="step size")
    p.add_argument("--steps", type=int, default=None,
                   help="iterations (default: 10; SVHN 15, as the figures)")
    p.add_argument("--n-per-class", type=int, default=5,
                   help="images per class attacked together (sets the gradient's batch mean)")
    args = p.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from gradreg_tf import attacks

    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be >= 1, received {args.steps}")
    ds = _common.load_dataset(args)
    steps = args.steps or (15 if ds.name == "svhn" else 10)
    x, y, idx = _grids.originals(ds, args.n_per_class)
    k, npc = ds.n_classes, args.n_per_class
    models = _common.paper_models(ds, args)
    timer = _grids.Timer()
    images, preds, success, p_target = {}, {}, {}, {}
    bar = None
    if args.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(models) * k, desc=f"TGSM x{steps}", unit="target")
    for name, model in models.items():
        grid = np.empty((k, k) + x.shape[1:], x.dtype)
        pr, pt = np.empty((k, k), int), np.empty((k, k))
        for t in range(k):
            x_adv = attacks.tgsm(model, x, args.eps, bounds=ds.bounds,
                                 y_target=np.full(len(x), t), steps=steps, batch_size=len(x))
            x_adv = np.asarray(x_adv)
            first = x_adv[::npc].copy()  # the first image of each class
            first[t] = x[t * npc]  # the diagonal shows the original
            grid[:, t] = first
            prob = tf.nn.softmax(model(first, training=False)).numpy()
            pr[:, t], pt[:, t] = prob.argmax(1), prob[:, t]
            if bar is not None:
                bar.update(1)
        images[name], preds[name], p_target[name] = grid, pr, pt
        success[name] = pr == np.arange(k)[None, :]
    if bar is not None:
        bar.close()
    return _grids.write_outputs(
        args, ds, "tgsm_grids", images=images, predictions=preds, success=success,
        p_target=p_target, classes=list(range(k)),
        title=f"Iterated TGSM toward every class ({_common.title(ds)})",
        subtitle=fr"TGSM, {steps} iterations at $\epsilon={args.eps:g}$",
        extra={"eps": args.eps, "steps": steps, "n_per_class": npc, "test_indices": idx,
               "seconds_attacks": timer()})


if __name__ == "__main__":
    main(sys.argv[1:])
