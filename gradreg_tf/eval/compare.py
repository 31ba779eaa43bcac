"""A transfer-grid CSV of ours against the published numbers: cell by cell and claim by claim.

:func:`read_transfer_csv` reads and checks a CSV written by ``experiments/*_transfer.py``;
:func:`claim_source` finds the per-image results stored beside it; :func:`compare` computes the
mean absolute difference per grid (:func:`gradreg_tf.eval.claims.mean_abs_difference`) and the
paper's claims on ours and on the published grid (:func:`gradreg_tf.eval.claims.transfer_claims`);
:func:`to_markdown` and :func:`cell_table` format them. ``experiments/compare_published.py`` is
the command line.
"""

from __future__ import annotations

import csv
import math
import pathlib

from gradreg_tf import published
from gradreg_tf.eval import claims, grids, metrics

__all__ = ["CELL_GROUPS", "cell_group", "cell_table", "claim_grid", "claim_source", "compare",
           "grid_vs_published", "model_cells", "paper_claims", "read_transfer_csv", "to_markdown"]

REQUIRED = ("attack", "target_model", "source_model", "eps", "accuracy")


def _number(text, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, received {text!r}; "
                         "no comparison from a missing or non-finite value.")
    return value


def read_transfer_csv(path) -> list[dict]:
    """The rows of a transfer CSV, ``eps`` and ``accuracy`` as floats, ``dataset`` lower case
    (``mnist`` when the column is absent).

    Raises:
        ValueError: on missing columns, no rows, or a non-finite number (naming line and column).
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not set(REQUIRED) <= set(rows[0]):
        raise ValueError(f"{path}: expected a transfer CSV with columns "
                         f"{', '.join(published.TRANSFER_FIELDS)}; received "
                         f"{list(rows[0]) if rows else 'no rows'}.")
    for line, r in enumerate(rows, start=2):
        for column in ("eps", "accuracy"):
            r[column] = _number(r[column], f"{path}, line {line}, column {column}")
        r["dataset"] = (r.get("dataset") or "mnist").lower()
    return rows


def claim_source(path, rows) -> tuple[list[dict], str]:
    """The rows the claims are computed from, and a line saying which: the per-image results
    stored next to the CSV (``<stem>.per_example.npz``, paired standard errors) when present,
    else the CSV's cells (per-cell standard-error bound)."""
    npz = pathlib.Path(path).with_suffix(".per_example.npz")
    if not npz.is_file():
        return rows, "the CSV's cells (per-cell standard-error bound)"
    table = grids.load_per_example(npz)
    dataset = rows[0]["dataset"]
    return ([{**r, "dataset": dataset} for r in grids.per_example_rows(table)],
            f"{npz.name} (paired per-image standard errors, "
            f"{len(next(iter(table.values())))} images)")


def cell_table(ours, theirs, attack: str) -> str:
    """Every common cell of one attack as text: ``target <- source`` rows, ``ours/published``
    per eps (white-box rows starred)."""
    a, b = claims.lookup(ours, attack), claims.lookup(theirs, attack)
    common = sorted(set(a) & set(b))
    eps_list = sorted({k[2] for k in common})
    order = {m: i for i, m in enumerate(claims.PAPER_MODELS)}
    lines = [f"{'target <- source':28s}" + "".join(f"{e:>14.1f}" for e in eps_list)]
    for t, s in sorted({k[:2] for k in common}, key=lambda p: (order.get(p[0], 9), p[1])):
        cells = "".join(f"{a[(t, s, e)]:>7.3f}/{b[(t, s, e)]:<6.3f}" for e in eps_list)
        lines.append(f"{(('*' if t == s else ' ') + t + ' <- ' + s):28s}{cells}")
    return "\n".join(lines)


def compare(rows, *, claim_rows=None, log=None) -> tuple[list[dict], list[dict]]:
    """Ours against the published grids of the same datasets.

    Args:
        rows: transfer rows (e.g. :func:`read_transfer_csv`).
        claim_rows: the rows the claims are computed from (default ``rows``; see
            :func:`claim_source`).
        log: called with a line when a dataset's claims cannot be evaluated (a partial grid).

    Returns:
        ``(summary, claims)``: per (dataset, attack) ``mean_abs_diff`` over ``n_cells`` common
        cells; per dataset and claim, whether it holds on ours and on the published grid, our
        margin in standard errors and our numbers. Scaling: O(cells + images · cells).
    """
    summary, out = [], []
    claim_rows = rows if claim_rows is None else claim_rows
    for dataset in sorted({r["dataset"] for r in rows}):
        ours = [r for r in rows if r["dataset"] == dataset]
        theirs = published.load_transfer(dataset=dataset)
        for attack in sorted({r["attack"] for r in ours}):
            common = set(claims.lookup(ours, attack)) & set(claims.lookup(theirs, attack))
            summary.append({"dataset": dataset, "attack": attack,
                            "mean_abs_diff": claims.mean_abs_difference(ours, theirs, attack),
                            "n_cells": len(common)})
        mine = [r for r in claim_rows if r["dataset"] == dataset]
        out += [{"dataset": dataset, "claim": c.name, "ours": c.holds, "published": holds,
                 "margin": c.margin, "detail": c.detail}
                for _, c, holds in _side_by_side(mine, theirs, log=log, where=f" for {dataset}")]
    return summary, out


def _side_by_side(rows, published_rows, *, log, where: str = "") -> list[tuple]:
    """``[(key, our Claim, holds on the published grid)]``; empty (and ``log`` told why) when a
    claim needs a cell the grid lacks (a partial grid, e.g. fewer models or custom eps)."""
    try:
        ours = claims.transfer_claims(rows)
        theirs = claims.transfer_claims(published_rows)
    except claims.MissingCellError as err:
        if log is not None:
            log(f"claims not evaluated{where}: {err}")
        return []
    return [(key, c, theirs[key].holds) for key, c in ours.items()]


def to_markdown(summary, claim_rows, *, label: str = "") -> str:
    """The comparison as two markdown tables (the README carries them)."""
    lines = [f"Reproduction vs published{(' (' + label + ')') if label else ''}:", "",
             "| dataset | attack | mean abs. difference | cells |", "|---|---|---|---|"]
    lines += [f"| {s['dataset']} | {s['attack'].upper()} | {s['mean_abs_diff']:.3f} | "
              f"{s['n_cells']} |" for s in summary]
    lines += ["", "| dataset | claim | ours | margin (SE) | published | our numbers |",
              "|---|---|---|---|---|---|"]
    mark = {True: "holds", False: "**fails**"}
    lines += [f"| {c['dataset']} | {c['claim']} | {mark[c['ours']]} | {c['margin']:+.1f} | "
              f"{mark[c['published']]} | {c['detail']} |" for c in claim_rows]
    return "\n".join(lines) + "\n"


CELL_GROUPS = ("target", "source", "white-box")
"""How a grid cell involves one model: attacked by the others, its examples against the others,
or white-box (itself)."""


def cell_group(target: str, source: str, model: str = "insensitive") -> str | None:
    """Which of :data:`CELL_GROUPS` a ``(target, source)`` cell of ``model`` belongs to, else
    None."""
    if target == source == model:
        return "white-box"
    if target == model:
        return "target"
    if source == model:
        return "source"
    return None


def model_cells(rows, published_rows, attack: str, *, model: str = "insensitive") -> dict:
    """Ours against published on the cells of one model (eps > 0; eps 0 is clean accuracy).

    Used to ask which candidate the paper published in ``model``'s place
    (``experiments/insensitive_variants.py``).

    Returns:
        ``{"pairs": {group: [(ours, published), ...]}, "mean_abs_diff": {group: float or None},
        "overall": float}``: per :data:`CELL_GROUPS` group the cells with a published value and
        their mean |ours − published| (:func:`gradreg_tf.eval.claims.mean_abs_difference`),
        and the same over all the model's cells. Scaling: O(cells).
    """
    ours, theirs = claims.lookup(rows, attack), claims.lookup(published_rows, attack)
    pairs = {g: [] for g in CELL_GROUPS}
    for key in sorted(set(ours) & set(theirs)):
        group = cell_group(*key[:2], model)
        if group is not None and key[2] > 0:
            pairs[group].append((ours[key], theirs[key]))
    mad = {g: (claims.mean_abs_difference(
        rows, published_rows, attack,
        where=lambda k, g=g: k[2] > 0 and cell_group(*k[:2], model) == g) if pairs[g] else None)
        for g in CELL_GROUPS}
    overall = claims.mean_abs_difference(
        rows, published_rows, attack,
        where=lambda k: k[2] > 0 and cell_group(*k[:2], model) is not None)
    return {"pairs": pairs, "mean_abs_diff": mad, "overall": overall}


def paper_claims(rows, dataset: str, *, log=None) -> list[dict]:
    """The paper's transfer claims on ours (``rows``, with per-image results where they have
    them) and on the published grid of ``dataset``, one dict per claim: ``claim, key, ours,
    margin_se, published, detail``. A grid lacking cells a claim needs (e.g. custom eps) gives
    no claims (``log`` is told why); malformed rows raise ``ValueError``."""
    return [{"claim": c.name, "key": key, "ours": c.holds, "margin_se": round(c.margin, 2),
             "published": holds, "detail": c.detail}
            for key, c, holds in _side_by_side(rows, published.load_transfer(dataset=dataset),
                                               log=log)]


def claim_grid(models, dataset_obj, *, n_claims: int, grid, epsilons, min_images: int = 0,
               progress: bool = False) -> list:
    """The FGSM and TGSM grid rows our side of the claims is measured on: ``grid`` itself when it
    was computed on ``n_claims`` images, else both grids again on the first ``n_claims`` test
    images (gradients over the first ``max(n_claims, min_images)``, as the notebooks' chunks).
    Scaling: 2 · models² · eps attacks of ``n_claims`` images."""
    if grid and grid[0].n_examples == n_claims:
        return list(grid)
    limit = max(n_claims, min_images)
    x, y = dataset_obj.x_test[:limit], dataset_obj.y_test[:limit]
    return [r for attack in ("fgsm", "tgsm") for r in grids.transfer_grid(
        models, models, x, y, attack=attack, epsilons=epsilons, bounds=dataset_obj.bounds,
        n_examples=n_claims, progress=progress)]


def grid_vs_published(rows, dataset: str, attack: str, models, epsilons, n_examples: int):
    """One attack's grid of ours against the published one, as arrays and numbers.

    Args:
        rows: our transfer rows of ``attack``.
        dataset: whose published grid.
        attack: ``"fgsm"`` or ``"tgsm"``.
        models: the order of sources and targets in the arrays.
        epsilons: the eps of the arrays' last axis.
        n_examples: test images per cell of ours.

    Returns:
        ``(ours, theirs, summary)``: ``[source, target, eps]`` arrays (NaN: no such cell) and
        ``{"vs_published": metrics.grid_agreement(...), "blackbox_mean_ours": ...,
        "blackbox_mean_published": ...}`` (:mod:`gradreg_tf.eval.metrics`).
    """
    theirs_rows = published.load_transfer(dataset=dataset, attack=attack)
    ours, theirs = (published.grid_array(g, sources=models, targets=models, epsilons=epsilons)
                    for g in (rows, theirs_rows))
    try:
        mad = claims.mean_abs_difference(rows, theirs_rows, attack)
    except ValueError:  # no published cell for these models/eps
        mad = None
    return ours, theirs, {
        "vs_published": metrics.grid_agreement(ours, theirs, models, epsilons, n_examples, mad),
        "blackbox_mean_ours": metrics.blackbox_means(ours, models),
        "blackbox_mean_published": metrics.blackbox_means(theirs, models)}


def agreement_notes(agreement: dict, n_examples: int) -> list[str]:
    """The figure's notes on ours against the published grid (none without a published point).

    Args:
        agreement: :func:`gradreg_tf.eval.metrics.grid_agreement` of the two grids.
        n_examples: test images per cell of ours.
    """
    if not agreement.get("n_points"):
        return []
    return [f"|ours − published|: mean {agreement['mean_abs_difference']:.3f}, "
            f"max {agreement['max_abs_difference']:.2f}",
            f"{100 * agreement['fraction_within_2se']:.0f}% of points within 2 SE "
            f"(n = {n_examples})"]
