"""Subprocess helper for the kill/resume test: trains a small recipe with checkpoints.

usage: _resume_run.py CKPT OUT.npz [slow]
With ``slow`` each batch sleeps 0.3 s so the parent can kill the process mid-run.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.experimental.enable_op_determinism()

from gradreg_tf import recipes, training  # noqa: E402

ckpt, out = sys.argv[1], sys.argv[2]
slow = len(sys.argv) > 3
rng = np.random.default_rng(0)
x = rng.uniform(size=(384, 28, 28, 1)).astype("float32")
y = rng.integers(0, 10, size=384)
x[np.arange(384), y, 3:9, 0] = 1.0  # learnable
recipe = recipes.Recipe(dataset="mnist", model="doubleback", penalty="double_backprop",
                        penalty_weight=1000.0, n_batches=36, batch_size=64)
if slow:
    orig = training._Monitor.on_train_batch_end

    def slow_end(self, batch, logs=None):
        orig(self, batch, logs)
        time.sleep(0.3)

    training._Monitor.on_train_batch_end = slow_end
model, curves, _ = training.train_recipe(recipe, x, y, seed=3, checkpoint_path=ckpt,
                                      checkpoint_every=5, log_every=6, progress=False)
np.savez(out, *model.get_weights(), batches=len(curves))
print("done", flush=True)
