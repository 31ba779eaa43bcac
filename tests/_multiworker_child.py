"""Child process of tests/test_distributed.py: trains a small GradRegClassifier and reports.

    python _multiworker_child.py single   CASE OUT.npz   # one device (the reference)
    python _multiworker_child.py mirrored CASE OUT.npz   # MirroredStrategy on 2 logical CPUs
    python _multiworker_child.py worker   CASE OUT.npz   # MultiWorkerMirroredStrategy (TF_CONFIG)

Writes the final weights to OUT.npz and prints one JSON line (replicas, per-epoch loss and
penalty from ``fit``'s history). The network has no batch norm or dropout: those see
per-replica batches by design, so exact equality with one device only holds without them.
A fresh process is needed because logical devices and ``TF_CONFIG`` must be set before
TensorFlow initializes.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# name -> (GradRegClassifier kwargs, number of examples, soft labels?)
CASES = {
    # double backprop + FGSM adversarial training; 71 examples in batches of 32: the last
    # batch of 7 splits 4/3 over two replicas (uneven per-replica batches)
    "combined": (dict(penalty="double_backprop", penalty_weight=50.0, adversarial_eps=0.1,
                      bounds=(0.0, 1.0)), 71, False),
    # the variant that also penalises the adversarial term, certainty penalty
    "adversarial_penalty": (dict(penalty="certainty", penalty_weight=30.0, adversarial_eps=0.1,
                                 bounds=(0.0, 1.0), adversarial_penalty=True), 64, False),
    # distillation: soft labels at temperature 5, double backprop
    "soft_labels": (dict(penalty="double_backprop", penalty_weight=50.0, temperature=5.0),
                    64, True),
    # the multi-worker case: double backprop, 88 examples -> batches 32, 32, 24
    "multiworker": (dict(penalty="double_backprop", penalty_weight=50.0), 88, False),
}
GLOBAL_BATCH = 32
N_CLASSES = 5


def data(case):
    _, n, soft = CASES[case]
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n, 6, 6, 1)).astype("float32")
    if soft:
        logits = rng.normal(size=(n, N_CLASSES))
        y = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype("float32")
    else:
        y = rng.integers(0, N_CLASSES, size=n)
    return x, y


def dataset(case):
    import tensorflow as tf

    x, y = data(case)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def build(case):
    import keras

    from gradreg_tf import GradRegClassifier

    keras.utils.set_random_seed(1)
    net = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, activation="tanh"),
                            keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                            keras.layers.Dense(N_CLASSES)])
    model = GradRegClassifier(net, **CASES[case][0])
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def train(case, strategy=None, epochs: int = 2) -> dict:
    """Trains ``epochs`` passes over the case's data; returns history and weights."""
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = build(case)
    history = model.fit(dataset(case), epochs=epochs, verbose=0, shuffle=False)
    return {"replicas": int(strategy.num_replicas_in_sync),
            "loss": [float(v) for v in history.history["loss"]],
            "penalty": [float(v) for v in history.history["penalty"]],
            "weights": [np.asarray(w) for w in model.get_weights()]}


def main(mode, case, out):
    import tensorflow as tf

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    elif mode == "worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif mode == "single":
        strategy = None
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result = train(case, strategy)
    np.savez(out, *result.pop("weights"))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
