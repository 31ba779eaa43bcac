"""``python -m study_support.serve_study STUDY_DIR DB``: serves a study with the default server
options on 127.0.0.1 (any free port), prints the base URL on one line, and runs until SIGTERM.

The server half of :mod:`study_support.capacity`, in a process of its own as a deployment runs
``serve``; it imports the server only (no TensorFlow).
"""
from __future__ import annotations

import pathlib
import sys

from gradreg_study import design, server


def main(argv) -> None:
    study_dir, db = map(pathlib.Path, argv)
    app = server.create_app(study_dir, db_path=db, protocol=design.Protocol())
    server.serve(app, port=0, on_ready=lambda url: print(url, flush=True))


if __name__ == "__main__":
    main(sys.argv[1:])
