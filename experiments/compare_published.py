"""Compare a transfer-grid CSV of ours with the published numbers, cell by cell and claim by claim.

    python experiments/compare_published.py figures/mnist_transfer.csv [--markdown out.md]

Prints, per (dataset, attack): ours vs published for every (target, source, eps), the mean
absolute difference per grid, and which of the paper's claims hold on ours and on theirs
(:mod:`gradreg_tf.claims`). ``--markdown`` also writes the summary as a markdown table (the
README carries it).
"""

from __future__ import annotations

import argparse
import csv
import math
import pathlib
import sys

from gradreg_tf import claims, evaluation, published


def _number(text, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value):
        raise SystemExit(f"{where}: expected a finite number, received {text!r}; "
                         "no comparison from a missing or non-finite value.")
    return value


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"attack", "target_model", "source_model", "eps", "accuracy"} <= set(rows[0]):
        raise SystemExit(f"{path}: expected a transfer CSV with columns "
                         f"{', '.join(published.TRANSFER_FIELDS)}; received {list(rows[0]) if rows else 'no rows'}.")
    for line, r in enumerate(rows, start=2):
        for column in ("eps", "accuracy"):
            r[column] = _number(r[column], f"{path}, line {line}, column {column}")
        r["dataset"] = (r.get("dataset") or "mnist").lower()
    return rows


def _claim_rows(path, rows):
    """The rows the claims are computed from: the per-image results stored next to the CSV
    (``<stem>.per_example.npz``, paired standard errors) when present, else the CSV's cells."""
    npz = pathlib.Path(path).with_suffix(".per_example.npz")
    if not npz.is_file():
        return rows, "the CSV's cells (per-cell standard-error bound)"
    table = evaluation.load_per_example(npz)
    dataset = rows[0]["dataset"]
    return ([{**r, "dataset": dataset} for r in evaluation.per_example_rows(table)],
            f"{npz.name} (paired per-image standard errors, "
            f"{len(next(iter(table.values())))} images)")


def compare(rows, *, verbose: bool = True, claim_source=None):
    """Returns summary rows (dataset, attack, mean_abs_diff, n_cells) and claim rows; the claims
    are computed on ``claim_source`` (default: ``rows``)."""
    summary, claim_rows = [], []
    claim_source = rows if claim_source is None else claim_source
    for dataset in sorted({r["dataset"] for r in rows}):
        ours = [r for r in rows if r["dataset"] == dataset]
        theirs = published.load_transfer(dataset=dataset)
        for attack in sorted({r["attack"] for r in ours}):
            a, b = claims.lookup(ours, attack), claims.lookup(theirs, attack)
            common = sorted(set(a) & set(b))
            if verbose:
                print(f"\n== {dataset} {attack.upper()}: target <- source, ours / published ==")
                eps_list = sorted({k[2] for k in common})
                print(f"{'target <- source':28s}" + "".join(f"{e:>14.1f}" for e in eps_list))
                for t, s in sorted({k[:2] for k in common}, key=lambda p: (claims.PAPER_MODELS.index(p[0]) if p[0] in claims.PAPER_MODELS else 9, p[1])):
                    cells = "".join(f"{a[(t, s, e)]:>7.3f}/{b[(t, s, e)]:<6.3f}" for e in eps_list)
                    print(f"{(('*' if t == s else ' ') + t + ' <- ' + s):28s}{cells}")
            mad = claims.mean_abs_difference(ours, theirs, attack)
            summary.append({"dataset": dataset, "attack": attack, "mean_abs_diff": mad,
                            "n_cells": len(common)})
        try:
            mine = claims.transfer_claims([r for r in claim_source if r["dataset"] == dataset])
            published_claims = claims.transfer_claims(theirs)
            for key, ours_claim in mine.items():
                claim_rows.append({"dataset": dataset, "claim": ours_claim.name,
                                   "ours": ours_claim.holds, "published": published_claims[key].holds,
                                   "margin": ours_claim.margin, "detail": ours_claim.detail})
        except claims.MissingCellError as err:  # a partial grid (e.g. fewer models or attacks)
            print(f"claims not evaluated for {dataset}: {err}")
    return summary, claim_rows


def to_markdown(summary, claim_rows, *, label: str = "") -> str:
    lines = [f"Reproduction vs published{(' (' + label + ')') if label else ''}:", "",
             "| dataset | attack | mean abs. difference | cells |", "|---|---|---|---|"]
    lines += [f"| {s['dataset']} | {s['attack'].upper()} | {s['mean_abs_diff']:.3f} | {s['n_cells']} |"
              for s in summary]
    lines += ["", "| dataset | claim | ours | margin (SE) | published | our numbers |",
              "|---|---|---|---|---|---|"]
    mark = {True: "holds", False: "**fails**"}
    lines += [f"| {c['dataset']} | {c['claim']} | {mark[c['ours']]} | {c['margin']:+.1f} | "
              f"{mark[c['published']]} | {c['detail']} |" for c in claim_rows]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="transfer CSV written by experiments/*_transfer.py")
    p.add_argument("--markdown", default=None, help="also write the summary as markdown here")
    p.add_argument("--label", default="", help="label for the markdown (e.g. the budget)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    args = p.parse_args(argv)
    path = pathlib.Path(args.results)
    if not path.is_file():
        p.error(f"results file {path} not found (run experiments/mnist_transfer.py first)")
    rows = _read(path)
    claim_source, described = _claim_rows(path, rows)
    summary, claim_rows = compare(rows, verbose=not args.quiet, claim_source=claim_source)
    print(f"\nclaims computed from {described}")
    print("\nmean absolute difference per grid:")
    for s in summary:
        print(f"  {s['dataset']:9s} {s['attack'].upper():5s} {s['mean_abs_diff']:.4f} over {s['n_cells']} cells")
    print("\nclaims (ours / published):")
    for c in claim_rows:
        print(f"  [{'ok' if c['ours'] else 'FAIL':4s}/{'ok' if c['published'] else 'FAIL':4s}] "
              f"{c['dataset']}: {c['claim']} (margin {c['margin']:+.1f} SE) -- {c['detail']}")
    if args.markdown:
        pathlib.Path(args.markdown).write_text(to_markdown(summary, claim_rows, label=args.label))
    return summary, claim_rows


if __name__ == "__main__":
    main(sys.argv[1:])
