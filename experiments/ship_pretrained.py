"""Ship paper-schedule models from the user cache as package data, after replaying their provenance.

    python experiments/train_models.py --budget paper --deterministic --models normal
    python experiments/ship_pretrained.py --models normal

For each model: finds its paper-schedule run in the cache (trained with op determinism),
writes ``gradreg_tf/weights/<dataset>/<model>.weights.h5`` with its manifest and training
curves (:func:`gradreg_tf.shipping.export`), then retrains the first 100 batches of its recipe
(and of a distilled model's teacher) in this process and requires the weights' sha256 to equal
the one recorded by the training run (:func:`gradreg_tf.pretrained.replay_provenance`). On a
mismatch the shipped files are removed again and the script exits with status 1.
"""

from __future__ import annotations

import sys

from gradreg_tf import cli

cli.quiet_tensorflow()


def main(argv=None):
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--models", default="normal,distilled,advtrain,insensitive,doubleback",
                   help="comma-separated paper models to ship")
    p.add_argument("--root", default=None,
                   help="write here instead of the package's weights folder (e.g. runs/seed1 for "
                        "an extra training seed, which does not ship)")
    args = p.parse_args(argv)
    from gradreg_tf import data, pretrained, recipes, shipping, training

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in recipes.PAPER_MODELS:
            p.error(f"unknown model {m!r}; choose from {', '.join(recipes.PAPER_MODELS)}")
    if args.budget != "paper" or args.batches is not None:
        p.error("only paper-schedule models are shipped (no --budget/--batches)")
    training.enable_determinism()
    ds = data.load(args.dataset, data_dir=args.data_dir)
    failed = []
    for name in models:
        meta = shipping.export(ds, name, seed=args.seed, cache_dir=args.cache_dir,
                                 root=args.root)
        print(f"{name}: wrote {meta['weights_file']} ({meta['size_bytes'] / 1e6:.1f} MB), "
              f"clean accuracy {meta['clean_test_accuracy']:.4f}; replaying its first "
              f"{meta['provenance']['batch']} batches...", flush=True)
        replays = pretrained.replay_provenance(ds, name, root=args.root)
        for r in replays:
            print("   ", r.summary(), flush=True)
        if not all(r.bitwise for r in replays):
            failed.append(name)
            folder = pretrained.weights_path(ds.name, name, root=args.root).parent
            for f in folder.glob(f"{name}.*"):
                f.unlink()
            print(f"{name}: provenance replay differs; its shipped files were removed.",
                  flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
