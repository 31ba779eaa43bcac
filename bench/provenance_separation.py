"""How far the provenance replay moves on a foreign machine, and how far a broken step moves it.

    python bench/provenance_separation.py                       # every shipped recipe, all settings
    python bench/provenance_separation.py --models advtrain --settings threads2,broken

For each shipped MNIST recipe this replays the first 100 batches
(``python -m gradreg_tf.pretrained replay``) in a subprocess under

* benign settings that change the kernels' summation order as another machine would: intra-op
  threads 1, 2 and 4, and oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``), and
* broken training steps, planted in a temporary copy of the package (the checkout is never
  touched): the penalty under ``tf.stop_gradient`` (double backprop, "insensitive"), the
  adversarial term built from the true labels instead of the model's predictions and the
  adversarial term dropped (advtrain), the temperature ignored in training (distilled),

and prints both statistics of each replay against the shipped record: the weights' projection
deviation and the batch-100 training-curve deviation (:func:`gradreg_tf.pretrained.curve_deviation`).
The numbers of a full run are the table in the README's provenance section and the comment
on ``pretrained.REPLAY_TOLERANCES``. One replay takes 1-3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
GRADREG = "gradreg_tf/models/gradreg.py"

# (name, recipes it applies to, file, text, replacement): each text must occur exactly once
BROKEN_STEPS = (
    ("penalty_stop_gradient", ("doubleback", "insensitive"), GRADREG,
     "penalty = P.gradient_norm(inner.gradient(target, x), self.norm)",
     "penalty = tf.stop_gradient(P.gradient_norm(inner.gradient(target, x), self.norm))"),
    ("adversarial_true_labels", ("advtrain",), GRADREG,
     "logits, P.predicted_labels(logits), temperature=self.temperature)) / batch",
     "logits, y, temperature=self.temperature)) / batch"),
    ("adversarial_term_dropped", ("advtrain",), GRADREG,
     "loss = (loss + adv_loss) / 2", "loss = loss"),
    ("temperature_ignored", ("distilled",), GRADREG,
     "                ce = tf.reduce_sum(P.cross_entropy(logits, y, temperature=self.temperature)) / batch",
     "                ce = tf.reduce_sum(P.cross_entropy(logits, y, temperature=1.0)) / batch"),
)
BENIGN = {"threads1": (1, "default"), "threads2": (2, "default"), "threads4": (4, "default"),
          "onednn_off": (2, "0")}


def planted_copy(file: str, text: str, replacement: str, into: pathlib.Path) -> pathlib.Path:
    """A copy of the package under ``into`` with ``text`` replaced once in ``file``."""
    shutil.copytree(REPO / "gradreg_tf", into / "gradreg_tf",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = into / file
    source = target.read_text()
    if source.count(text) != 1:
        raise SystemExit(f"the planted step expects {text!r} exactly once in {file}, found "
                         f"{source.count(text)}: update BROKEN_STEPS to the current code.")
    target.write_text(source.replace(text, replacement))
    return into


def replay(model: str, *, threads: int, onednn: str, pythonpath: pathlib.Path) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(pythonpath), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if onednn != "default":
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    out = subprocess.run([sys.executable, "-m", "gradreg_tf.pretrained", "replay", "mnist", model,
                          "--threads", str(threads)], env=env, capture_output=True, text=True,
                         cwd=pythonpath)
    if out.returncode != 0:
        raise SystemExit(f"replay of {model} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    from gradreg_tf import recipes

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(recipes.PAPER_MODELS))
    p.add_argument("--settings", default="threads1,threads2,threads4,onednn_off,broken",
                   help="comma-separated from: " + ", ".join(BENIGN) + ", broken")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    models = args.models.split(",")
    settings = args.settings.split(",")
    unknown = [s for s in settings if s not in BENIGN and s != "broken"]
    if unknown or not set(models) <= set(recipes.PAPER_MODELS):
        p.error(f"unknown settings {unknown} or models {models}")
    rows = []
    for model in models:
        jobs = [(s, None) for s in settings if s in BENIGN]
        if "broken" in settings:
            jobs += [(step[0], step) for step in BROKEN_STEPS if model in step[1]]
        for setting, step in jobs:
            with tempfile.TemporaryDirectory() as tmp:
                if step is None:
                    threads, onednn = BENIGN[setting]
                    path = REPO
                else:
                    threads, onednn = 2, "default"
                    path = planted_copy(step[2], step[3], step[4], pathlib.Path(tmp))
                for r in replay(model, threads=threads, onednn=onednn, pythonpath=path):
                    row = {"model": model, "setting": setting, "run": r["name"],
                           "kind": "benign" if step is None else "broken",
                           "projection_deviation": r["deviation"],
                           "curve_deviation": r["curve_deviation"], "bitwise": r["bitwise"]}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
