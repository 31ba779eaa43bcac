"""Training one recipe: resumable checkpoints, a progress bar, the original's monitoring curves.

:func:`train_recipe` runs the original schedule (sequential, never reshuffled batches, short
last batch per epoch; SETUP.md §4) through ``GradRegClassifier.fit`` on a prefetching
``tf.data`` pipeline. Every ``checkpoint_every`` batches the whole model (weights,
optimizer state and the dropout RNG state) is written atomically to a ``.keras``
checkpoint; a killed run restarts from it and, on CPU with deterministic ops, ends with
the same weights as an uninterrupted run. A non-finite loss stops training with
:class:`NonFiniteLossError`.

Every ``log_every`` batches (100, as the original) a curve row records the mean loss,
cross-entropy, penalty and batch accuracy since the previous row, clean accuracy on the
first 512 test images, and accuracy on FGSM ε=0.2 examples of those images made from a
*reference* normal model's input gradients (the original's cached normal-model
perturbation, train_models.py:56-84).
"""

from __future__ import annotations

import csv
import math
import os
import pathlib
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from gradreg_tf import cache as _cache
from gradreg_tf.models import GradRegClassifier, NonFiniteLossError, keras_compat, mnist_cnn, svhn_cnn
from gradreg_tf.provenance import PROVENANCE_BATCHES, weights_fingerprint
from gradreg_tf.recipes import Recipe

CURVE_FIELDS = ("batch", "loss", "cross_entropy", "penalty", "batch_accuracy", "test_accuracy",
                "fgsm_accuracy")


_DETERMINISM = {"enabled": os.environ.get("TF_DETERMINISTIC_OPS", "") in ("1", "true", "True")}


def enable_determinism() -> None:
    """Turns on TensorFlow's op determinism for this process (it cannot be turned off again).

    Same seed + same data + determinism on => bitwise-identical weights on the same machine
    (measured: ``tests/test_provenance.py``); the shipped pretrained models were trained so.
    """
    tf.config.experimental.enable_op_determinism()
    _DETERMINISM["enabled"] = True


def op_determinism_enabled() -> bool:
    """Whether :func:`enable_determinism` (or ``TF_DETERMINISTIC_OPS=1``) is in effect."""
    return _DETERMINISM["enabled"]


def build_model(recipe: Recipe, *, input_shape, bounds) -> GradRegClassifier:
    """The (uncompiled) :class:`GradRegClassifier` of a recipe on its dataset's network."""
    network = svhn_cnn(input_shape) if recipe.dataset == "svhn" else mnist_cnn(input_shape)
    return GradRegClassifier(
        network, penalty=recipe.penalty, penalty_weight=recipe.penalty_weight,
        temperature=recipe.temperature, adversarial_eps=recipe.adversarial_eps,
        bounds=bounds if recipe.adversarial_eps > 0 else None,
        name=f"{recipe.dataset}_{recipe.model}".replace("-", "_").replace(".", "_"),
    )


def compile_model(model: GradRegClassifier, recipe: Recipe) -> GradRegClassifier:
    """Compiles with the recipe's Adam and creates its slot variables now.

    Creating the optimizer's variables before ``fit`` (instead of inside the first traced
    step) lets ``tf.function`` trace the training step once instead of twice.
    """
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate, epsilon=recipe.adam_epsilon))
    model.optimizer.build(model.trainable_variables)
    return model


def batches(x, y, *, batch_size: int, epochs: int, skip: int = 0) -> tf.data.Dataset:
    """The original's minibatches: sequential slices, a short last batch, ``epochs`` times."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).repeat(epochs)
    return ds.skip(skip).prefetch(tf.data.AUTOTUNE)


class _Monitor(keras.callbacks.Callback):
    """Progress bar, NaN guard, curve rows and periodic checkpoints in one pass per batch."""

    def __init__(self, *, recipe, total, done, curves, log_every, checkpoint_every, checkpoint,
                 probe: Optional[Callable], writer, progress, stop_after, fingerprint_at=None,
                 fingerprint=None):
        super().__init__()
        self.fingerprint_at, self.fingerprint = fingerprint_at, fingerprint
        self.recipe, self.total, self.done = recipe, total, done
        self.curves, self.log_every = curves, log_every
        self.checkpoint_every, self.checkpoint = checkpoint_every, checkpoint
        self.probe, self.writer, self.stop_after = probe, writer, stop_after
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            import sys

            tty = sys.stderr.isatty()
            self.bar = tqdm(total=total, initial=done, desc=recipe.label(), unit="batch",
                            dynamic_ncols=True, mininterval=0.5 if tty else 30.0)

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if not all(math.isfinite(logs.get(k, 0.0)) for k in ("loss", "penalty")):
            raise NonFiniteLossError(
                f"non-finite loss at batch {self.done} of {self.recipe.label()} "
                f"(penalty={self.recipe.penalty}, λ={self.recipe.penalty_weight:g}, "
                f"ε={self.recipe.adversarial_eps:g}): loss={logs.get('loss')}, "
                f"penalty={logs.get('penalty')}. λ is probably too large for this schedule; "
                "nothing was written to the cache."
            )
        if self.fingerprint_at is not None and self.done == self.fingerprint_at:
            self.fingerprint = {"batch": self.done, **weights_fingerprint(self.model)}
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{logs.get('loss', 0):.4g}",
                                 penalty=f"{logs.get('penalty', 0):.3g}",
                                 acc=f"{logs.get('accuracy', 0):.3f}", refresh=False)
        if self.done % self.log_every == 0 or self.done == self.total:
            row = {"batch": self.done, "loss": logs.get("loss"),
                   "cross_entropy": logs.get("cross_entropy"), "penalty": logs.get("penalty"),
                   "batch_accuracy": logs.get("accuracy")}
            if self.probe is not None:
                row.update(self.probe(self.model))
            self.curves.append(row)
            if self.writer is not None:
                with self.writer.as_default(step=self.done):
                    for k, v in row.items():
                        if k != "batch" and v is not None:
                            tf.summary.scalar(k, v)
            self.model.reset_metrics()  # the next row averages the next log_every batches
        if self.checkpoint is not None and (self.done % self.checkpoint_every == 0) \
                and self.done < self.total:
            self.checkpoint(self.model, self.curves)
        if self.stop_after is not None and self.done >= self.stop_after:
            self.model.stop_training = True

    def close(self):
        if self.bar is not None:
            self.bar.close()


def make_probe(x_test, y_test, x_fgsm=None) -> Callable:
    """Curve probe: clean accuracy on ``x_test`` and accuracy on the reference FGSM images."""
    x_test = tf.constant(x_test)
    x_fgsm = None if x_fgsm is None else tf.constant(x_fgsm)
    y_test = np.asarray(y_test)

    def probe(model):
        out = {"test_accuracy": float(np.mean(
            np.argmax(model(x_test, training=False), -1) == y_test))}
        if x_fgsm is not None:
            out["fgsm_accuracy"] = float(np.mean(
                np.argmax(model(x_fgsm, training=False), -1) == y_test))
        return out

    return probe


def train_recipe(recipe: Recipe, x_train, y_train, *, seed: int = 0, n_batches: int | None = None,
                 bounds=None, checkpoint_path: str | os.PathLike | None = None,
                 checkpoint_every: int = 500, log_every: int = 100, probe: Callable | None = None,
                 tensorboard_dir: str | os.PathLike | None = None, progress: bool = True,
                 strategy: tf.distribute.Strategy | None = None, stop_after: int | None = None,
                 fingerprint_at: int | None = PROVENANCE_BATCHES):
    """Trains one recipe, resuming from ``checkpoint_path`` when it holds a checkpoint.

    Args:
        recipe: what to train (see :mod:`gradreg_tf.recipes`).
        x_train: float32 NHWC training images.
        y_train: integer labels, or soft labels ``(N, K)`` (distillation).
        seed: seeds weight initialisation and dropout (``keras.utils.set_random_seed``).
        n_batches: nominal batches (default ``recipe.n_batches``).
        bounds: pixel range for adversarial training (default: the training set's min/max,
            as the original).
        checkpoint_path: ``.keras`` file for periodic checkpoints (None: no checkpoints).
        checkpoint_every: batches between checkpoints.
        log_every: batches between curve rows.
        probe: ``model -> dict`` of extra curve columns (see :func:`make_probe`).
        tensorboard_dir: write the curve rows as TensorBoard scalars there.
        progress: show a tqdm progress bar.
        strategy: a ``tf.distribute`` strategy to build and train under.
        stop_after: stop after this many batches (leaves the checkpoint; used by tests).
        fingerprint_at: record :func:`gradreg_tf.provenance.weights_fingerprint` of the
            weights after this many batches (None: do not); kept across a resume.

    Returns:
        ``(model, curves, fingerprint)``: the trained :class:`GradRegClassifier`, the list of
        curve rows, and ``{"batch", "sha256", "projections"}`` at ``fingerprint_at`` (None if
        the run did not get there or ``fingerprint_at`` is None).

    Raises:
        NonFiniteLossError: when the loss becomes NaN or infinite.
    """
    n_train = len(x_train)
    total = recipe.total_batches(n_train, n_batches)
    epochs = recipe.epochs(n_train, n_batches)
    if bounds is None:
        bounds = (float(np.min(x_train)), float(np.max(x_train)))
    strategy = strategy or tf.distribute.get_strategy()
    ckpt = None if checkpoint_path is None else pathlib.Path(checkpoint_path)
    curves_file = None if ckpt is None else ckpt.with_suffix(".curves.json")
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        if ckpt is not None and ckpt.exists():
            model = keras.models.load_model(ckpt)
            done = int(model.optimizer.iterations.numpy())
            state = _read_json(curves_file, {"curves": [], "rng": {}})
            curves = [r for r in state["curves"] if r["batch"] <= done]
            set_rng_state(model, state["rng"].get(str(done), {}))
            fingerprint = state.get("fingerprint")
            if fingerprint is not None and fingerprint["batch"] > done:
                fingerprint = None
        else:
            model = compile_model(build_model(recipe, input_shape=x_train.shape[1:], bounds=bounds),
                                  recipe)
            done, curves, fingerprint = 0, [], None

    rng_by_batch = {}

    def checkpoint(m, rows):
        # .keras files do not hold the dropout RNG state: the sidecar keeps it for this and
        # the previous checkpoint and is written first, so a kill between the two writes
        # still finds the state of whichever checkpoint is on disk.
        step = str(int(m.optimizer.iterations.numpy()))
        keep = dict(list(rng_by_batch.items())[-1:])
        rng_by_batch.clear()
        rng_by_batch.update(keep)
        rng_by_batch[step] = rng_state(m)
        _cache.write_json(curves_file, {"curves": rows, "rng": rng_by_batch,
                                        "fingerprint": monitor.fingerprint})
        _cache.atomic_write(ckpt, m.save)

    writer = None if tensorboard_dir is None else tf.summary.create_file_writer(str(tensorboard_dir))
    monitor = _Monitor(recipe=recipe, total=total, done=done, curves=curves, log_every=log_every,
                       checkpoint_every=checkpoint_every,
                       checkpoint=None if ckpt is None else checkpoint, probe=probe,
                       writer=writer, progress=progress, stop_after=stop_after,
                       fingerprint_at=fingerprint_at, fingerprint=fingerprint)
    try:
        if done < total:
            data = batches(x_train, y_train, batch_size=recipe.batch_size, epochs=epochs, skip=done)
            model.fit(data, epochs=1, steps_per_epoch=total - done, verbose=0, shuffle=False,
                      callbacks=[monitor])
    finally:
        monitor.close()
        if writer is not None:
            writer.flush()
    if stop_after is not None and monitor.done < total and ckpt is not None:
        checkpoint(model, curves)
    return model, curves, monitor.fingerprint


def _seed_generators(model):
    for layer in list(keras_compat.sublayers(model.network))[1:]:
        gen = getattr(layer, "seed_generator", None)
        if isinstance(gen, keras.random.SeedGenerator):
            yield layer.name, gen


def rng_state(model) -> dict:
    """The dropout layers' RNG states (not part of a ``.keras`` file), by layer name."""
    return {name: gen.state.numpy().tolist() for name, gen in _seed_generators(model)}


def set_rng_state(model, state: dict) -> None:
    """Restores :func:`rng_state` output (resume gives the same dropout masks)."""
    for name, gen in _seed_generators(model):
        if name in state:
            gen.state.assign(np.asarray(state[name], dtype=gen.state.dtype))


def _read_json(path, default):
    import json

    if path is None or not pathlib.Path(path).exists():
        return default
    with open(path) as f:
        return json.load(f)


def write_curves(path: str | os.PathLike, curves) -> pathlib.Path:
    """Writes curve rows as CSV (columns :data:`CURVE_FIELDS`) atomically."""

    def _write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CURVE_FIELDS, extrasaction="ignore")
            w.writeheader()
            for row in curves:
                w.writerow(row)

    return _cache.atomic_write(path, _write)
