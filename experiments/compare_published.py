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
import pathlib
import sys

from gradreg_tf import claims, published


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"attack", "target_model", "source_model", "eps", "accuracy"} <= set(rows[0]):
        raise SystemExit(f"{path}: expected a transfer CSV with columns "
                         f"{', '.join(published.TRANSFER_FIELDS)}; received {list(rows[0]) if rows else 'no rows'}.")
    for r in rows:
        r["eps"], r["accuracy"] = float(r["eps"]), float(r["accuracy"])
        r["dataset"] = r.get("dataset", "mnist").lower()
    return rows


def compare(rows, *, verbose: bool = True):
    """Returns summary rows (dataset, attack, mean_abs_diff, n_cells) and claim rows."""
    summary, claim_rows = [], []
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
            mine, published_claims = claims.transfer_claims(ours), claims.transfer_claims(theirs)
            for key, ours_claim in mine.items():
                claim_rows.append({"dataset": dataset, "claim": ours_claim.name,
                                   "ours": ours_claim.holds, "published": published_claims[key].holds,
                                   "margin": ours_claim.margin, "detail": ours_claim.detail})
        except (KeyError, ValueError) as err:  # a partial grid (e.g. fewer models or attacks)
            print(f"claims skipped for {dataset}: missing cell {err}")
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
    summary, claim_rows = compare(_read(path), verbose=not args.quiet)
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
