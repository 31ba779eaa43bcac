"""Compare a transfer-grid CSV of ours with the published numbers, cell by cell and claim by claim.

    python experiments/compare_published.py figures/mnist_transfer.csv [--markdown out.md]

Prints, per (dataset, attack): ours vs published for every (target, source, eps), the mean
absolute difference per grid, and which of the paper's claims hold on ours and on theirs
(:mod:`gradreg_tf.eval.compare`, :mod:`gradreg_tf.eval.claims`). The claims use the per-image
results stored beside the CSV (``<stem>.per_example.npz``) when present. ``--markdown`` also
writes the summary as a markdown table (the README carries it).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from gradreg_tf import published
from gradreg_tf.eval import compare as C


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
    try:
        rows = C.read_transfer_csv(path)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    claim_rows, described = C.claim_source(path, rows)
    if not args.quiet:
        for dataset in sorted({r["dataset"] for r in rows}):
            ours = [r for r in rows if r["dataset"] == dataset]
            for attack in sorted({r["attack"] for r in ours}):
                print(f"\n== {dataset} {attack.upper()}: target <- source, ours / published ==")
                print(C.cell_table(ours, published.load_transfer(dataset=dataset), attack))
    summary, claims = C.compare(rows, claim_rows=claim_rows, log=print)
    print(f"\nclaims computed from {described}")
    print("\nmean absolute difference per grid:")
    for s in summary:
        print(f"  {s['dataset']:9s} {s['attack'].upper():5s} {s['mean_abs_diff']:.4f} "
              f"over {s['n_cells']} cells")
    print("\nclaims (ours / published):")
    for c in claims:
        print(f"  [{'ok' if c['ours'] else 'FAIL':4s}/{'ok' if c['published'] else 'FAIL':4s}] "
              f"{c['dataset']}: {c['claim']} (margin {c['margin']:+.1f} SE) -- {c['detail']}")
    if args.markdown:
        pathlib.Path(args.markdown).write_text(C.to_markdown(summary, claims, label=args.label))
    return summary, claims


if __name__ == "__main__":
    main(sys.argv[1:])
