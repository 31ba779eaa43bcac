"""The 200-participant capacity run of the study server in a process of its own.

``python -m study_support.capacity OUT_DIR [--participants 200] [--bound 120]`` builds a toy study
with the real 56-trial protocol in ``OUT_DIR``, serves it with the default server options
(waitress on 127.0.0.1) and runs that many whole sessions at once against it (one thread and
connection each), then writes ``OUT_DIR/report.json``: the load report's text, hanging
participants, client errors, the longest wait, the statuses, and every answer sent, so the caller
can compare them with the database (``OUT_DIR/db.sqlite3``).

A process of its own, as a real deployment runs ``serve``: inside the test process the run was
slowed by whatever earlier tests left in that process (a full suite's heap of Python objects,
which the cyclic garbage collector walks while 216 threads wait for the GIL).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

from gradreg_study import design, server, simulation
from study_support import load

N_CLASSES = 10


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=pathlib.Path)
    p.add_argument("--participants", type=int, default=200)
    p.add_argument("--bound", type=float, default=120.0, help="seconds before a participant "
                   "still running counts as hanging (and a client's request timeout)")
    args = p.parse_args(argv)
    study = simulation.toy_study(args.out / "study", n_items=50)
    protocol = design.Protocol()  # 50 trials + 6 attention checks
    app = server.create_app(study.root, db_path=args.out / "db.sqlite3", protocol=protocol)
    store = server.context(app).store
    with server.running(app) as url:
        report = load.load_test(url, store.stimuli(), n_classes=N_CLASSES,
                                n_participants=args.participants, retry_share=0.0,
                                fetch_images=False, deadline=args.bound, timeout=args.bound)
    result = {
        "text": report.text(), "hanging": report.hanging, "errors": report.errors[:10],
        "n_errors": len(report.errors), "seconds": report.seconds,
        "max_latency_ms": float(report.latencies_ms.max()) if len(report.latencies_ms) else None,
        "statuses": {str(k): v for k, v in report.statuses.items()},
        "n_trials": protocol.n_total, "threads": server.DEFAULT_THREADS,
        "connection_limit": server.DEFAULT_CONNECTION_LIMIT,
        "answers": {pid: [[s, int(c)] for s, c in got] for pid, got in report.answers.items()},
    }
    (args.out / "report.json").write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
