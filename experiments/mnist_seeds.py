"""The MNIST reproduction across training seeds: every verdict per seed, and the seed-to-seed noise floor.

    python experiments/mnist_seeds.py [--seeds 0,1,2]

For each seed, the five paper-schedule models (seed 0: the shipped ones; other seeds: the runs
committed under ``runs/seed<s>/mnist/``, weights, manifest and curves written by
``experiments/ship_pretrained.py --root runs/seed<s> --seed <s>``) are attacked once as in
``experiments/mnist_transfer.py`` (FGSM and TGSM grids on the first 2,048 test images) and the
per-image results are stored next to the run (``runs/seed<s>/mnist/transfer.per_example.npz``);
later runs read them and train or attack nothing. A seed whose five models are not all there yet
is reported as missing. :func:`gradreg_tf.seeds.seed_report` computes every number. Writes
``figures/mnist_seeds.{csv,md,png,pdf}``.
"""

from __future__ import annotations

import pathlib
import sys

import _common

REPO = pathlib.Path(__file__).resolve().parents[1]
RUNS = REPO / "runs"
N_CLAIMS = 2048


def run_root(seed: int):
    """Weights root of a seed's run: the package's for seed 0, else ``runs/seed<s>``."""
    from gradreg_tf import pretrained

    return pretrained.WEIGHTS_DIR if seed == 0 else RUNS / f"seed{seed}"


def grid_file(seed: int) -> pathlib.Path:
    return RUNS / f"seed{seed}" / "mnist" / "transfer.per_example.npz"


def seed_grid(ds, seed: int, *, progress: bool):
    """The seed's per-image grid rows: stored, or computed now from its five models (None if
    they are not all there)."""
    from gradreg_tf import pretrained, recipes
    from gradreg_tf.eval import grids

    path = grid_file(seed)
    if not path.is_file():
        root = run_root(seed)
        try:
            metas = [pretrained.verify("mnist", m, root=root) for m in recipes.PAPER_MODELS]
        except pretrained.PretrainedModelError as err:
            _common.log(f"seed {seed}: not all five models are there yet ({err})")
            return None
        if any(meta["seed"] != seed for meta in metas):
            raise SystemExit(f"{root}: a manifest's seed is not {seed}.")
        models = {m: pretrained.load("mnist", m, root=root) for m in recipes.PAPER_MODELS}
        _common.log(f"seed {seed}: attacking its five models (first {N_CLAIMS} test images)")
        rows = [r for attack in ("fgsm", "tgsm") for r in grids.transfer_grid(
            models, models, ds.x_test[:N_CLAIMS], ds.y_test[:N_CLAIMS], attack=attack,
            bounds=ds.bounds, n_examples=N_CLAIMS, progress=progress)]
        grids.save_per_example(path, rows)
    return grids.per_example_rows(grids.load_per_example(path))


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    p.add_argument("--data-dir", default=None, help="MNIST files (else the usual places)")
    p.add_argument("--out", default="figures", help="output directory")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    try:
        seeds = sorted({int(s) for s in args.seeds.split(",") if s.strip()})
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, received {args.seeds!r}")
    if not seeds or min(seeds) < 0:
        p.error(f"--seeds must name at least one seed >= 0, received {args.seeds!r}")
    out = pathlib.Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out must be a directory, received the file {str(out)!r}")
    out.mkdir(parents=True, exist_ok=True)

    import numpy as np

    from gradreg_tf import data, plotting, pretrained, published, recipes
    from gradreg_tf.eval import seeds as S

    ds = data.load("mnist", data_dir=args.data_dir)
    seed_grids, clean = {}, {}
    for seed in seeds:
        rows = seed_grid(ds, seed, progress=args.progress)
        if rows is not None:
            seed_grids[seed] = rows
            clean[seed] = {m: pretrained.manifest("mnist", m, root=run_root(seed))
                           ["clean_test_accuracy"] for m in recipes.PAPER_MODELS}
    if not seed_grids:
        raise SystemExit("no seed has all five models yet: nothing to report.")
    report = S.seed_report(seed_grids, published.load_transfer(dataset="mnist"), clean=clean)
    stem = out / "mnist_seeds"
    _common.write_csv(stem.with_suffix(".csv"), S.report_rows(report))
    missing = [s for s in seeds if s not in seed_grids]
    stem.with_suffix(".md").write_text(S.report_markdown(report, missing=missing))
    from gradreg_tf.eval import claims, grids

    eps, targets = grids.PAPER_EPSILONS, claims.NON_DISTILLED
    pub = published.load_transfer(dataset="mnist")
    curves = {a.upper(): np.array([[claims.blackbox_curve(seed_grids[s], a, t, eps) for t in targets]
                                   for s in report.seeds]) for a in ("fgsm", "tgsm")}
    reference = {a.upper(): np.array([claims.blackbox_curve(pub, a, t, eps) for t in targets])
                 for a in ("fgsm", "tgsm")}
    fig = plotting.plot_seed_bands(
        eps, curves, targets, reference=reference, seeds=report.seeds,
        title="MNIST transfer accuracy across training seeds (paper schedule)",
        caption=f"first {N_CLAIMS} test images per seed; dashed: published (256 images)")
    _common.save(fig, stem)
    _common.log(f"seeds {list(report.seeds)}; missing {missing}; noise floor FGSM "
                f"{report.noise_floor('fgsm'):.3f}, TGSM {report.noise_floor('tgsm'):.3f}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
