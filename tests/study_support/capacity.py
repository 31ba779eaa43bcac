"""The 200-participant capacity run of the study server, server and participants in processes
of their own.

``python -m study_support.capacity OUT_DIR [--participants 200] [--bound 120]`` builds a toy study
with the real 56-trial protocol in ``OUT_DIR``, starts the server with the default server options
(waitress on 127.0.0.1) in a child process (:mod:`study_support.serve_study`), as a deployment
runs ``serve``, and runs that many whole sessions at once against it from this process (one
thread and connection each); then it stops the server and writes ``OUT_DIR/report.json``: the load
report's text, hanging participants, client errors, the longest wait, the statuses, the server's
CPU time, and every answer sent, so the caller can compare them with the database
(``OUT_DIR/db.sqlite3``).

Why separate processes: the participants' 200 client threads and the server's threads in one
Python process share one interpreter lock, so the clients' own work slowed the server; a real
server never shares its process with its participants' browsers.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys

from gradreg_study import design, server, simulation
from study_support import load

N_CLASSES = 10
_TESTS = pathlib.Path(__file__).resolve().parents[1]


def run(out: pathlib.Path, *, participants: int = 200, bound: float = 120.0,
        timeout: float | None = None) -> dict:
    """Runs this module in a fresh process (``python -m study_support.capacity``) and returns its
    report; the one way the load test and ``bench/study_load.py`` start a capacity run.

    Args:
        out: an empty folder for the toy study, the database and ``report.json``.
        participants: participants at once.
        bound: seconds before a participant still running counts as hanging.
        timeout: seconds before the whole run is killed (None: no limit).

    Returns:
        The parsed ``report.json`` (see :func:`main`).

    Raises:
        RuntimeError: the run exited with an error (its stderr's tail in the message).
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(_TESTS), str(_TESTS.parent), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "study_support.capacity", str(out),
                           "--participants", str(participants), "--bound", str(bound)],
                          env=env, cwd=_TESTS.parent, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"the capacity run exited with {done.returncode}:\n"
                           f"{done.stderr[-3000:]}")
    return json.loads((pathlib.Path(out) / "report.json").read_text())


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=pathlib.Path)
    p.add_argument("--participants", type=int, default=200)
    p.add_argument("--bound", type=float, default=120.0, help="seconds before a participant "
                   "still running counts as hanging (and a client's request timeout)")
    args = p.parse_args(argv)
    study = simulation.toy_study(args.out / "study", n_items=50)
    protocol = design.Protocol()  # 50 trials + 6 attention checks
    db = args.out / "db.sqlite3"
    stimuli = server.context(server.create_app(study.root, db_path=db, protocol=protocol)
                             ).store.stimuli()
    cpu_before = _children_cpu_s()
    child = subprocess.Popen([sys.executable, "-m", "study_support.serve_study",
                              str(study.root), str(db)], stdout=subprocess.PIPE, text=True,
                             env=os.environ)
    try:
        url = child.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the server process did not start (printed {url!r}, "
                               f"exit code {child.poll()})")
        report = load.load_test(url, stimuli, n_classes=N_CLASSES,
                                n_participants=args.participants, retry_share=0.0,
                                fetch_images=False, deadline=args.bound, timeout=args.bound)
    finally:
        child.terminate()
        child.wait(timeout=60)
    server_cpu_s = _children_cpu_s() - cpu_before  # start-up included
    result = {
        "text": report.text() + f"; server CPU {server_cpu_s:.1f} s "
                f"({1000 * server_cpu_s / max(report.n_requests, 1):.2f} ms per request)",
        "hanging": report.hanging, "errors": report.errors[:10],
        "n_errors": len(report.errors), "seconds": report.seconds,
        "server_cpu_s": server_cpu_s,
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
