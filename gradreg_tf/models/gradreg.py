"""``GradRegClassifier``: a Keras model that trains any logits network with the paper's objectives.

Objective (Ross & Doshi-Velez 2018, §3; the original ``neural_network.py`` and
``train_models.py``, SETUP.md §4), per training batch of B examples:

    clean = mean_n CE(y_n, softmax(f(x_n)/T)) + λ · penalty(x)
    loss  = clean                                  if adversarial_eps == 0
    loss  = (clean + mean_n CE(y_n, f(x_adv_n)/T)) / 2   otherwise (FGSM adversarial training)

* ``penalty="double_backprop"``: ``l2_loss(∇_x mean CE(y))``; ``"certainty"``:
  ``l2_loss(∇_x mean CE(1/K))`` (see :mod:`gradreg_tf.penalties` for the exact scaling,
  ``Σ_n ||∇_x CE_n||² / (2B²)``). The input gradient is taken in training mode
  (batch statistics, dropout) and differentiated again (double backprop): the inner
  ``tf.GradientTape`` watches x and its ``.gradient()`` is called inside the outer tape.
* ``adversarial_eps``: ``x_adv = stop_gradient(clip(x + ε·sign(∇_x mean CE(ŷ)), bounds))``
  with ŷ the model's **own predicted** labels (one-hot, ties split), as the original.
  The penalty is on the clean term only, as the original's "both defenses" model;
  ``adversarial_penalty=True`` (a variant) also adds it to the adversarial term.
* ``temperature`` T: distillation training (labels may be soft probabilities);
  predictions (``call``/``predict``) always use T = 1, as the original.

Under ``tf.distribute`` every mean is over the global batch, so the per-replica losses
sum to the single-device loss and Keras' summed gradients equal the single-device ones.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gradreg_tf import _checks
from gradreg_tf import penalties as P


def _replica_sums(*values):
    """Sums scalars over replicas in ONE all-reduce (identity outside ``tf.distribute``)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return values
    dtype = values[0].dtype
    summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                            tf.stack([tf.cast(v, dtype) for v in values]))
    return tuple(tf.unstack(summed))


def _multi_worker(strategy) -> bool:
    """True under a MultiWorkerMirroredStrategy that spans several workers."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


@keras.saving.register_keras_serializable(package="gradreg_tf")
class GradRegClassifier(keras.Model):
    """Trains a logits network with input-gradient regularization through ``model.fit``.

    Args:
        network: a Keras model mapping images to logits (e.g. :func:`gradreg_tf.models.mnist_cnn`).
        penalty: ``None``, ``"double_backprop"`` or ``"certainty"``.
        penalty_weight: λ (>= 0), in the original's scaling (see module docstring).
        norm: ``"l2"`` (``tf.nn.l2_loss``, the paper) or ``"l1"``.
        temperature: softmax temperature T of the training cross-entropy (> 0).
        adversarial_eps: FGSM adversarial-training ε (0 disables it).
        bounds: ``(lower, upper)`` pixel range that adversarial examples are clipped to;
            required when ``adversarial_eps > 0``.
        adversarial_penalty: also apply the penalty to the adversarial term (a variant;
            the original applies it to the clean term only).
        **kwargs: passed to ``keras.Model`` (e.g. ``name``).

    Raises:
        ValueError: on an unknown penalty or norm, λ < 0, T <= 0, ε < 0, or ε > 0 without bounds.
        TypeError: if ``network`` is not a Keras model.

    Example:

    ```python
    model = GradRegClassifier(mnist_cnn(), penalty="double_backprop", penalty_weight=56234.13)
    model.compile(optimizer=keras.optimizers.Adam(2e-4, epsilon=1e-4))
    model.fit(x_train, y_train, batch_size=256)
    ```
    """

    def __init__(self, network, *, penalty=None, penalty_weight: float = 0.0, norm: str = "l2",
                 temperature: float = 1.0, adversarial_eps: float = 0.0, bounds=None,
                 adversarial_penalty: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(network, keras.Model):
            raise TypeError(
                f"network must be a keras.Model returning logits, received {type(network).__name__}."
            )
        if penalty is not None and penalty not in P.PENALTIES:
            raise ValueError(
                f"penalty must be None or one of {P.PENALTIES}, received {penalty!r}."
            )
        if norm not in P.NORMS:
            raise ValueError(f"norm must be one of {P.NORMS}, received {norm!r}.")
        self.penalty_weight = _checks.check_eps(penalty_weight, name="penalty_weight")
        self.adversarial_eps = _checks.check_eps(adversarial_eps, name="adversarial_eps")
        temperature = float(temperature)
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be a finite number > 0, received {temperature!r}.")
        if self.adversarial_eps > 0 and bounds is None:
            raise ValueError(
                "adversarial_eps > 0 needs bounds=(lower, upper) to clip adversarial examples to, "
                "received bounds=None."
            )
        self.network = network
        self.penalty = penalty
        self.norm = norm
        self.temperature = temperature
        self.bounds = None if bounds is None else tuple(_checks.as_bounds(bounds))
        self.adversarial_penalty = bool(adversarial_penalty)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.cross_entropy_tracker = keras.metrics.Mean(name="cross_entropy")
        self.penalty_tracker = keras.metrics.Mean(name="penalty")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        if network.built:  # functional networks are; lets .keras files restore optimizer state
            self.built = True

    def build(self, input_shape):
        if not self.network.built:
            self.network.build(input_shape)
        self.built = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3's TensorFlow trainer starts fit/evaluate under a tf.distribute strategy
        # by reducing a first input batch with strategy.reduce("MEAN", ..., axis=None),
        # which raises under MultiWorkerMirroredStrategy (keras-team/keras#20585,
        # tensorflow/tensorflow#72388). The batch only serves to build layers, compiled
        # losses and compiled metrics; a built GradRegClassifier has none of those left
        # to build, so it skips the batch and builds only the optimizer.
        if (self._distribute_strategy is not None and self.built
                and all(layer.built for layer in self._flatten_layers())
                and getattr(self, "_compile_loss", None) is None
                and getattr(self, "_compile_metrics", None) is None):
            with self.distribute_strategy.scope():
                if self.optimizer is not None and not self.optimizer.built:
                    self.optimizer.build(self.trainable_variables)
                self._post_build()
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # ------------------------------------------------------------------ forward
    def call(self, x, training=False):
        """Logits of the wrapped network at temperature 1."""
        return self.network(x, training=training)

    @property
    def uses_penalty(self) -> bool:
        return self.penalty is not None and self.penalty_weight > 0

    @property
    def metrics(self):
        return [self.loss_tracker, self.cross_entropy_tracker, self.penalty_tracker,
                self.accuracy_tracker]

    # ------------------------------------------------------------------ steps
    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("GradRegClassifier does not support sample weights, received some.")
        x = tf.convert_to_tensor(x)
        if not x.dtype.is_floating:
            x = tf.cast(x, self.network.compute_dtype)
        batch = tf.cast(P.global_batch_size(tf.shape(x)[0]), x.dtype)
        with_penalty = self.uses_penalty
        adversarial = self.adversarial_eps > 0
        with tf.GradientTape() as tape:
            with tf.GradientTape(persistent=with_penalty and adversarial) as inner:
                inner.watch(x)
                logits = self.network(x, training=True)
                ce = tf.reduce_sum(P.cross_entropy(logits, y, temperature=self.temperature)) / batch
                target = ce
                if with_penalty and self.penalty == "certainty":
                    target = tf.reduce_sum(
                        P.uniform_cross_entropy(logits, temperature=self.temperature)) / batch
                if adversarial:
                    pred_ce = tf.reduce_sum(P.cross_entropy(
                        logits, P.predicted_labels(logits), temperature=self.temperature)) / batch
            penalty = tf.zeros((), logits.dtype)
            if with_penalty:
                penalty = P.gradient_norm(inner.gradient(target, x), self.norm)
            loss = ce + self.penalty_weight * penalty
            if adversarial:
                with tape.stop_recording():
                    x_adv = self._perturb(x, inner.gradient(pred_ce, x))
                adv_loss = self._adversarial_loss(x_adv, y, batch)
                loss = (loss + adv_loss) / 2
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_trackers(loss, ce, penalty, logits, y, batch)

    def _perturb(self, x, grad):
        lower, upper = self.bounds
        x_adv = tf.clip_by_value(x + self.adversarial_eps * tf.sign(grad), lower, upper)
        return tf.stop_gradient(x_adv)

    def _adversarial_loss(self, x_adv, y, batch):
        if not (self.adversarial_penalty and self.uses_penalty):
            logits = self.network(x_adv, training=True)
            return tf.reduce_sum(P.cross_entropy(logits, y, temperature=self.temperature)) / batch
        with tf.GradientTape() as inner:
            inner.watch(x_adv)
            logits = self.network(x_adv, training=True)
            ce = tf.reduce_sum(P.cross_entropy(logits, y, temperature=self.temperature)) / batch
            target = ce
            if self.penalty == "certainty":
                target = tf.reduce_sum(
                    P.uniform_cross_entropy(logits, temperature=self.temperature)) / batch
        return ce + self.penalty_weight * P.gradient_norm(inner.gradient(target, x_adv), self.norm)

    def _update_trackers(self, loss, ce, penalty, logits, y, batch):
        labels = y if y.shape.rank == 1 else tf.argmax(y, axis=-1)
        correct = tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(logits, axis=-1), tf.cast(labels, tf.int64)), logits.dtype))
        # one collective for the four metrics instead of four (each is a round trip between
        # workers under MultiWorkerMirroredStrategy)
        loss, ce, penalty, correct = _replica_sums(loss, ce, penalty, correct)
        self.loss_tracker.update_state(loss)
        self.cross_entropy_tracker.update_state(ce)
        self.penalty_tracker.update_state(penalty)
        self.accuracy_tracker.update_state(correct / batch)
        results = {m.name: m.result() for m in self.metrics}
        if _multi_worker(self.distribute_strategy):
            # Keras 3 averages step outputs over workers with strategy.reduce("MEAN", v,
            # axis=0), which needs an axis (keras-team/keras#20585); the values are already
            # equal on every replica (all-reduced above), so a length-1 axis changes nothing.
            results = {k: tf.reshape(v, [1]) for k, v in results.items()}
        return results

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.convert_to_tensor(x)
        if not x.dtype.is_floating:
            x = tf.cast(x, self.network.compute_dtype)
        batch = tf.cast(P.global_batch_size(tf.shape(x)[0]), x.dtype)
        logits = self.network(x, training=False)
        ce = tf.reduce_sum(P.cross_entropy(logits, y)) / batch
        return self._update_trackers(ce, ce, tf.zeros((), logits.dtype), logits, y, batch)

    # ------------------------------------------------------------------ validation
    def _check_xy(self, x, y):
        if y is None or isinstance(x, (tf.data.Dataset,)) or callable(getattr(x, "__next__", None)):
            return x, y
        if hasattr(x, "__getitem__") and not hasattr(x, "shape"):
            return x, y  # PyDataset / Sequence
        x_arr = _checks.check_images(x, rank=len(self.network.input_shape))
        expected = tuple(self.network.input_shape[1:])
        if tuple(x_arr.shape[1:]) != tuple(d if d is not None else s
                                           for d, s in zip(expected, x_arr.shape[1:])):
            raise ValueError(
                f"x must have shape (batch, {', '.join(map(str, expected))}) for this network, "
                f"received {x_arr.shape}."
            )
        n_classes = int(self.network.output_shape[-1])
        y_arr = np.asarray(y)
        if y_arr.ndim == 2 and y_arr.shape[1] == n_classes and np.issubdtype(y_arr.dtype, np.floating):
            if not np.all(np.isfinite(y_arr)) or np.any(y_arr < 0) or not np.allclose(y_arr.sum(1), 1, atol=1e-3):
                raise ValueError("soft labels y must be finite probability rows summing to 1.")
            if len(y_arr) != len(x_arr):
                raise ValueError(f"y has {len(y_arr)} rows but x has {len(x_arr)} examples.")
            return x_arr, y_arr.astype(x_arr.dtype)
        return x_arr, _checks.check_labels(y_arr, n_classes=n_classes, n_examples=len(x_arr))

    def fit(self, x=None, y=None, **kwargs):
        """``keras.Model.fit`` after checking array inputs (shape, dtype, NaN, label range).

        Raises:
            ValueError: on a wrong shape, non-finite values or labels outside ``[0, K)``.
            TypeError: on integer images.
        """
        x, y = self._check_xy(x, y)
        return super().fit(x, y, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        """``keras.Model.evaluate`` after the same input checks as :meth:`fit`."""
        x, y = self._check_xy(x, y)
        return super().evaluate(x, y, **kwargs)

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {
            **super().get_config(),
            "network": keras.saving.serialize_keras_object(self.network),
            "penalty": self.penalty,
            "penalty_weight": self.penalty_weight,
            "norm": self.norm,
            "temperature": self.temperature,
            "adversarial_eps": self.adversarial_eps,
            "bounds": None if self.bounds is None else list(self.bounds),
            "adversarial_penalty": self.adversarial_penalty,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(
            config["network"], custom_objects=custom_objects)
        return cls(**config)
