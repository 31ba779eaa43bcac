"""Run in a subprocess: one training step on 2 logical CPU replicas vs one device.

Prints a JSON line with the max weight difference and both losses. A fresh process is
needed because logical devices must be configured before TensorFlow initializes.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from gradreg_tf import GradRegClassifier  # noqa: E402

penalty, adv = sys.argv[1], float(sys.argv[2])


def build():
    keras.utils.set_random_seed(1)
    # no batch norm / dropout: those see per-replica batches by design, so the exact
    # equivalence only holds for batch-independent layers.
    net = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, activation="tanh"),
                            keras.layers.Flatten(), keras.layers.Dense(5)])
    model = GradRegClassifier(net, penalty=None if penalty == "none" else penalty,
                              penalty_weight=50.0, adversarial_eps=adv,
                              bounds=(0.0, 1.0) if adv else None)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model


rng = np.random.default_rng(0)
x = rng.uniform(size=(32, 6, 6, 1)).astype("float32")
y = rng.integers(0, 5, size=32)

single = build()
h1 = single.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = build()
h2 = mirrored.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), mirrored.get_weights()))
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "max_weight_diff": diff,
                  "loss_single": h1.history["loss"][0], "loss_mirrored": h2.history["loss"][0],
                  "penalty_single": h1.history["penalty"][0],
                  "penalty_mirrored": h2.history["penalty"][0]}))
