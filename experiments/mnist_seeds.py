"""The MNIST reproduction across training seeds: every verdict per seed, and the seed-to-seed noise floor.

    python experiments/mnist_seeds.py [--seeds 0,1,2]

For each seed, the five paper-schedule models (seed 0: the shipped ones; other seeds: the runs
committed under ``runs/seed<s>/mnist/``, weights, manifest and curves written by
``experiments/ship_pretrained.py --root runs/seed<s> --seed <s>``) are attacked once as in
``experiments/mnist_transfer.py`` (FGSM and TGSM grids on the first 2,048 test images) and the
per-image results are stored next to the run (``runs/seed<s>/mnist/transfer.per_example.npz``);
later runs read them and train or attack nothing. A seed whose five models are not all there yet
is reported as not complete, with the clean accuracy of the models it has so far (from their
committed manifests). :mod:`gradreg_tf.eval.seeds` computes every number. Writes
``figures/mnist_seeds.{csv,md,png,pdf}``.
"""

from __future__ import annotations

import pathlib
import sys

import _common

REPO = pathlib.Path(__file__).resolve().parents[1]
RUNS = REPO / "runs"
N_CLAIMS = 2048


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

    from gradreg_tf import data, plotting, published
    from gradreg_tf.eval import claims, grids
    from gradreg_tf.eval import seeds as S

    ds = data.load("mnist", data_dir=args.data_dir)
    seed_grids, clean = {}, {}
    for seed in seeds:
        try:
            rows = S.seed_grid(ds, seed, runs=RUNS, n_images=N_CLAIMS, progress=args.progress,
                               log=_common.log)
            clean[seed] = S.seed_clean_accuracy(seed, RUNS)
        except ValueError as err:  # a manifest of another seed
            raise SystemExit(str(err)) from None
        if rows is not None:
            seed_grids[seed] = rows
    if not seed_grids:
        raise SystemExit("no seed has all five models yet: nothing to report.")
    pub = published.load_transfer(dataset="mnist")
    report = S.seed_report(seed_grids, pub, clean={s: clean[s] for s in seed_grids})
    stem = out / "mnist_seeds"
    missing = [s for s in seeds if s not in seed_grids]
    in_training = {s: clean[s] for s in missing}
    _common.write_csv(stem.with_suffix(".csv"), S.report_rows(report, in_training=in_training))
    stem.with_suffix(".md").write_text(S.report_markdown(report, missing=missing,
                                                         in_training=in_training))
    curves, reference = S.blackbox_bands(seed_grids, pub, report.seeds)
    fig = plotting.plot_seed_bands(
        grids.PAPER_EPSILONS, curves, claims.NON_DISTILLED, reference=reference, seeds=report.seeds,
        title="MNIST transfer accuracy across training seeds (paper schedule)",
        caption=f"first {N_CLAIMS} test images per seed; dashed: published (256 images)")
    _common.save(fig, stem)
    _common.log(f"seeds {list(report.seeds)}; missing {missing}; noise floor FGSM "
                f"{report.noise_floor('fgsm'):.3f}, TGSM {report.noise_floor('tgsm'):.3f}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
