"""Verdicts across training seeds: how far each seed's grids are from the published ones, how
far our own seeds are from each other (the noise floor any reproduction faces), and each of the
paper's claims per seed with its paired margin (:mod:`gradreg_tf.eval.claims`).

Input per seed: the transfer-grid rows with per-image results (``correct``), as stored by
:func:`gradreg_tf.eval.grids.save_per_example` and rebuilt by
:func:`gradreg_tf.eval.grids.per_example_rows`. Distances to the published grid and between seeds
are measured on the first ``n_grid`` images of each cell (the published grids' 256: the same
images for every seed, so seed-to-seed differences are training differences only); the claims
use every stored image.

Scaling: O(seeds² · cells · n_grid) for the distances, O(seeds · cells · n) for the claims.
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
from typing import Mapping, Sequence

import numpy as np

from gradreg_tf import pretrained, recipes
from gradreg_tf.eval import claims as C
from gradreg_tf.eval.grids import (PAPER_EPSILONS, load_per_example, per_example_rows,
                                   save_per_example, transfer_grid)

ATTACKS = ("fgsm", "tgsm")


def first_images(rows: Sequence[Mapping], n: int) -> list[dict]:
    """Copies of per-image transfer rows restricted to the first ``n`` images of each cell.

    Raises:
        ValueError: if a row has no per-image results or fewer than ``n`` images.
    """
    out = []
    for r in rows:
        correct = r.get("correct")
        if correct is None or len(correct) < n:
            raise ValueError(f"the cell {r['attack']} {r['target_model']} <- {r['source_model']} "
                             f"eps {r['eps']} needs per-image results on at least {n} images, "
                             f"received {None if correct is None else len(correct)}.")
        c = np.asarray(correct[:n], dtype=bool)
        out.append({**r, "correct": c, "accuracy": float(c.mean()), "n_correct": int(c.sum()),
                    "n_examples": n})
    return out


@dataclasses.dataclass(frozen=True)
class SeedReport:
    """The across-seed summary (see :func:`seed_report`).

    Attributes:
        seeds: the seeds, in order.
        mad_published: ``{seed: {attack: mean |ours − published|}}``.
        mad_between: ``{attack: {(seed_a, seed_b): mean |a − b|}}`` over every pair.
        claims: ``{seed: {claim name: Claim}}``.
        clean: ``{seed: {model: clean test accuracy}}`` (as given).
        n_grid: images per cell for the distances.
    """

    seeds: tuple
    mad_published: dict
    mad_between: dict
    claims: dict
    clean: dict
    n_grid: int

    def noise_floor(self, attack: str) -> float:
        """Mean seed-to-seed |difference| of ``attack`` over every pair of seeds (NaN with one)."""
        pairs = self.mad_between.get(attack, {})
        return float(np.mean(list(pairs.values()))) if pairs else float("nan")

    def holds_on(self, name: str) -> int:
        """On how many seeds the claim ``name`` holds."""
        return sum(self.claims[s][name].holds for s in self.seeds)


def seed_report(grids: Mapping[int, Sequence[Mapping]], published_rows: Sequence[Mapping], *,
                clean: Mapping[int, Mapping[str, float]] | None = None,
                n_grid: int = C.PUBLISHED_N) -> SeedReport:
    """Every number of the seed comparison, from per-image grid rows.

    Args:
        grids: ``{seed: transfer rows with per-image "correct"}`` (FGSM and TGSM).
        published_rows: the published transfer rows (:func:`gradreg_tf.published.load_transfer`).
        clean: ``{seed: {model: clean accuracy}}`` to carry along (not checked here).
        n_grid: images per cell for the distances (the published 256).

    Returns:
        A :class:`SeedReport`.

    Raises:
        ValueError: if ``grids`` is empty, or as :func:`gradreg_tf.eval.claims.transfer_claims`.
    """
    if not grids:
        raise ValueError("grids must hold at least one seed's rows, received none.")
    seeds = tuple(sorted(grids))
    head = {s: first_images(grids[s], n_grid) for s in seeds}
    mad_published = {s: {a: C.mean_abs_difference(head[s], published_rows, a) for a in ATTACKS}
                     for s in seeds}
    mad_between = {a: {(s, t): C.mean_abs_difference(head[s], head[t], a)
                       for s, t in itertools.combinations(seeds, 2)} for a in ATTACKS}
    verdicts = {s: C.transfer_claims(grids[s]) for s in seeds}
    return SeedReport(seeds=seeds, mad_published=mad_published, mad_between=mad_between,
                      claims=verdicts, clean=dict(clean or {}), n_grid=n_grid)


def report_rows(report: SeedReport, *, in_training: Mapping[int, Mapping[str, float]] = None
                ) -> list[dict]:
    """The report as long-format rows ``seed, quantity, name, value, holds`` (for a CSV).

    Args:
        report: the :class:`SeedReport`.
        in_training: ``{seed: {model: clean accuracy}}`` of the finished models of seeds that do
            not have all five yet (:func:`seed_clean_accuracy`); they get clean-accuracy rows only.
    """
    rows = []
    for s in report.seeds:
        for model, acc in report.clean.get(s, {}).items():
            rows.append({"seed": s, "quantity": "clean_accuracy", "name": model, "value": acc,
                         "holds": ""})
        for attack, mad in report.mad_published[s].items():
            rows.append({"seed": s, "quantity": "mad_vs_published", "name": attack,
                         "value": round(mad, 4), "holds": ""})
        for name, claim in report.claims[s].items():
            rows.append({"seed": s, "quantity": "claim_margin_se", "name": name,
                         "value": round(claim.margin, 2), "holds": claim.holds})
    for attack, pairs in report.mad_between.items():
        for (a, b), mad in pairs.items():
            rows.append({"seed": f"{a}-{b}", "quantity": "mad_between_seeds", "name": attack,
                         "value": round(mad, 4), "holds": ""})
    return rows + [{"seed": s, "quantity": "clean_accuracy", "name": m, "value": acc, "holds": ""}
                   for s, done in sorted((in_training or {}).items()) for m, acc in done.items()]


def _in_training_text(seed: int, done: Mapping[str, float]) -> str:
    if not done:
        return f"seed {seed}: no model yet"
    accs = ", ".join(f"{m} {100 * a:.2f}%" for m, a in done.items())
    return f"seed {seed}: {len(done)} of {len(recipes.PAPER_MODELS)} models so far ({accs})"


def report_markdown(report: SeedReport, *, missing: Sequence[int] = (),
                    in_training: Mapping[int, Mapping[str, float]] = None) -> str:
    """The report as markdown tables (clean accuracy, distances, claims per seed).

    Args:
        report: the :class:`SeedReport`.
        missing: seeds asked for that do not have all five models yet.
        in_training: ``{seed: {model: clean accuracy}}`` of those seeds' finished models, said
            beside them (:func:`seed_clean_accuracy`).
    """
    seeds = report.seeds
    in_training = in_training or {}
    head = "| | " + " | ".join(f"seed {s}" for s in seeds) + " |\n|---|" + "---|" * len(seeds)
    status = "; ".join(_in_training_text(s, in_training.get(s, {})) for s in missing)
    lines = ["# MNIST at the paper's schedule across training seeds", "",
             f"Seeds with all five models: {', '.join(map(str, seeds))}"
             + (f". Not yet complete, so in no table below: {status}" if missing else "") + ".",
             "", "## Clean test accuracy (10,000 images)", "", head]
    models = sorted({m for s in seeds for m in report.clean.get(s, {})},
                    key=lambda m: C.PAPER_MODELS.index(m) if m in C.PAPER_MODELS else 99)
    for m in models:
        lines.append(f"| {m} | " + " | ".join(
            f"{100 * report.clean[s][m]:.2f}%" if m in report.clean.get(s, {}) else "-"
            for s in seeds) + " |")
    lines += ["", f"## Transfer grids: mean |difference| over the 200 cells (first "
                  f"{report.n_grid} test images)", "", head]
    for a in ATTACKS:
        lines.append(f"| ours − published, {a.upper()} | " + " | ".join(
            f"{report.mad_published[s][a]:.3f}" for s in seeds) + " |")
    for a in ATTACKS:
        floor = report.noise_floor(a)
        pairs = ", ".join(f"{x}-{y}: {v:.3f}" for (x, y), v in report.mad_between[a].items())
        lines.append(f"\nSeed-to-seed noise floor, {a.upper()}: "
                     + (f"{floor:.3f} ({pairs})" if pairs else "needs two seeds"))
    lines += ["", "## The paper's claims per seed (margin in paired standard errors)", "",
              "| claim | " + " | ".join(f"seed {s}" for s in seeds) + " | holds on |",
              "|---|" + "---|" * (len(seeds) + 1)]
    for name in report.claims[seeds[0]]:
        cells = [f"{'holds' if report.claims[s][name].holds else '**misses**'} "
                 f"({report.claims[s][name].margin:+.1f})" for s in seeds]
        lines.append(f"| {report.claims[seeds[0]][name].name} | " + " | ".join(cells)
                     + f" | {report.holds_on(name)} of {len(seeds)} |")
    return "\n".join(lines) + "\n"


def run_root(seed: int, runs) -> pathlib.Path:
    """Weights root of a seed's run: the shipped weights for seed 0, else ``<runs>/seed<s>``."""
    return pretrained.WEIGHTS_DIR if seed == 0 else pathlib.Path(runs) / f"seed{seed}"


def grid_file(seed: int, runs) -> pathlib.Path:
    """Where a seed's per-image MNIST transfer grids are stored (next to its run)."""
    return pathlib.Path(runs) / f"seed{seed}" / "mnist" / "transfer.per_example.npz"


def seed_grid(ds, seed: int, *, runs, n_images: int = 2048, progress: bool = False,
              log=print) -> list[dict] | None:
    """A seed's per-image FGSM and TGSM grid rows: stored (:func:`grid_file`), or computed now
    from its five MNIST models on the first ``n_images`` test images and stored.

    Args:
        ds: the MNIST :class:`gradreg_tf.data.Dataset`.
        seed: the training seed.
        runs: the folder of the non-shipping runs (``runs/``).
        n_images: attacked test images.
        progress: show progress bars.
        log: told when the seed's models are not all there yet, or are attacked now.

    Returns:
        The rows (:func:`gradreg_tf.eval.grids.per_example_rows`), or None when not all five
        models of the seed are there yet.

    Raises:
        ValueError: a model's manifest names another seed.
    """
    path = grid_file(seed, runs)
    if not path.is_file():
        root = run_root(seed, runs)
        try:
            metas = [pretrained.verify("mnist", m, root=root) for m in recipes.PAPER_MODELS]
        except pretrained.PretrainedModelError as err:
            log(f"seed {seed}: not all five models are there yet ({err})")
            return None
        if any(meta["seed"] != seed for meta in metas):
            raise ValueError(f"{root}: a manifest's seed is not {seed}.")
        models = {m: pretrained.load("mnist", m, root=root) for m in recipes.PAPER_MODELS}
        log(f"seed {seed}: attacking its five models (first {n_images} test images)")
        rows = [r for attack in ATTACKS for r in transfer_grid(
            models, models, ds.x_test[:n_images], ds.y_test[:n_images], attack=attack,
            bounds=ds.bounds, n_examples=n_images, progress=progress)]
        save_per_example(path, rows)
    return per_example_rows(load_per_example(path))


def seed_clean_accuracy(seed: int, runs) -> dict:
    """``{model: clean test accuracy}`` of a seed's finished MNIST models, from their manifests
    (all five for a complete seed; those trained so far, in the recipes' order, for a seed still
    in training).

    Raises:
        ValueError: a manifest names another seed.
    """
    root = run_root(seed, runs)
    out = {}
    for m in recipes.PAPER_MODELS:
        if not pretrained.manifest_path("mnist", m, root=root).is_file():
            continue
        meta = pretrained.manifest("mnist", m, root=root)
        if meta["seed"] != seed:
            raise ValueError(f"{pretrained.manifest_path('mnist', m, root=root)} names seed "
                             f"{meta['seed']}, expected {seed}.")
        out[m] = meta["clean_test_accuracy"]
    return out


def blackbox_bands(grids: Mapping[int, Sequence[Mapping]], published_rows, seeds, *,
                   epsilons=PAPER_EPSILONS, targets=C.NON_DISTILLED) -> tuple[dict, dict]:
    """Black-box accuracy curves per seed and the published ones, for the seed-band figure.

    Returns:
        ``(curves, reference)``: per attack (``"FGSM"``, ``"TGSM"``) an array ``[seed, target,
        eps]`` of :func:`gradreg_tf.eval.claims.blackbox_curve` over ``seeds``, and the published
        ``[target, eps]``.
    """
    curves = {a.upper(): np.array([[C.blackbox_curve(grids[s], a, t, epsilons) for t in targets]
                                   for s in seeds]) for a in ATTACKS}
    reference = {a.upper(): np.array([C.blackbox_curve(published_rows, a, t, epsilons)
                                      for t in targets]) for a in ATTACKS}
    return curves, reference
