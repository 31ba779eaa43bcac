"""Throughput of the study server under a crowd: N participants at once, each answering the real
56-trial protocol as fast as the server lets them.

    python bench/study_load.py                      # 200 participants, the default server options
    python bench/study_load.py --participants 100 --repeats 3

Server (waitress, the default 16 threads and 500 connections, 127.0.0.1) and participants run in
processes of their own (``tests/study_support/capacity.py``, which ``tests/test_study_load.py``
also runs for its correctness checks). Prints, per run, the wall time, requests per second,
latency p50/p95/max and the server's CPU time per request (start-up included), and the machine's
cores and load average, since the numbers depend on both. Needs the ``study`` extra.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from study_support import capacity  # noqa: E402


def run_once(participants: int, bound: float) -> dict:
    """One capacity run in a fresh folder; returns its report (``study_support.capacity``)."""
    with tempfile.TemporaryDirectory(prefix="gradreg-study-load-") as tmp:
        try:
            return capacity.run(pathlib.Path(tmp), participants=participants, bound=bound)
        except RuntimeError as err:
            raise SystemExit(str(err)) from None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--participants", type=int, default=200)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--bound", type=float, default=600.0,
                   help="seconds before a participant still running counts as hanging")
    args = p.parse_args(argv)
    if args.participants < 1 or args.repeats < 1:
        p.error(f"--participants and --repeats must be >= 1, received {args.participants}, "
                f"{args.repeats}")
    for i in range(args.repeats):
        r = run_once(args.participants, args.bound)
        n = sum(r["statuses"].values())
        print(f"run {i + 1}: {n} requests in {r['seconds']:.1f} s = {n / r['seconds']:.0f}/s, "
              f"{r['hanging']} hanging, {r['n_errors']} errors; {r['text']}", flush=True)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{os.cpu_count()} CPU cores, load average {load} at the end")


if __name__ == "__main__":
    main()
