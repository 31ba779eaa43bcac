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

The training and test steps and the config are here; the input checks are in
:mod:`gradreg_tf.models.input_checks`, the one private Keras hook in
:mod:`gradreg_tf.models.keras_compat`, the non-finite guard in :mod:`gradreg_tf.models.callbacks`.

Input rules, the same for numpy arrays and ``tf.data`` (checked before or while the step
is traced, never by casting): images must be floating point (integer images are refused,
not cast to 0-255 floats), sample and class weights are refused, the network must return
logits of at least 2 classes (a final softmax is refused), and ``fit`` stops with
:class:`NonFiniteLossError` at the first batch whose loss or penalty is NaN or infinite.
The hyper-parameters are read as constants when the step is traced, so they cannot be
changed after construction; :meth:`GradRegClassifier.replace` builds a new model instead.
Mixed and half precision are refused (the second derivatives and λ up to 1e5 need float32).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gradreg_tf import _checks
from gradreg_tf import penalties as P
from gradreg_tf.models import input_checks as checks
from gradreg_tf.models import keras_compat as compat
from gradreg_tf.models.callbacks import NonFiniteGuard, NonFiniteLossError

__all__ = ["GradRegClassifier", "HYPERPARAMETERS", "NonFiniteLossError"]

HYPERPARAMETERS = ("network", "penalty", "penalty_weight", "norm", "temperature",
                   "adversarial_eps", "bounds", "adversarial_penalty")
"""Constructor arguments fixed for a model's lifetime (see :meth:`GradRegClassifier.replace`)."""


def _replica_sums(*values):
    """Sums scalars over replicas in ONE all-reduce (identity outside ``tf.distribute``)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return values
    dtype = values[0].dtype
    summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                            tf.stack([tf.cast(v, dtype) for v in values]))
    return tuple(tf.unstack(summed))


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

    The arguments are fixed for the model's lifetime (assigning one raises
    ``AttributeError``); :meth:`replace` builds a model with other values on the same network.

    Raises:
        ValueError: on an unknown penalty or norm, λ outside ``[0, 1e9]`` (see
            :data:`gradreg_tf.penalties.MAX_PENALTY_WEIGHT`), T <= 0, ε < 0, ε > 0 without
            bounds, a network with fewer than 2 outputs or ending in softmax, or a
            mixed-precision dtype policy.
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
        compat.check_trainer_attributes(self)
        checks.check_precision(self, network)
        _checks.check_logits_model(network)
        if checks.ends_in_softmax(network):
            raise ValueError(
                f"network {network.name!r} ends in a softmax: GradRegClassifier needs a network "
                "returning logits (the training loss applies the softmax); remove the final "
                "softmax activation or layer."
            )
        self.penalty_weight = P.check_penalty_weight(penalty_weight)
        self.adversarial_eps = _checks.check_eps(adversarial_eps, name="adversarial_eps")
        temperature = _checks.check_temperature(temperature)
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
        self._outputs_checked = False
        if network.built:  # functional networks are; lets .keras files restore optimizer state
            self.built = True
        self._frozen = True

    def __setattr__(self, name, value):
        if name in HYPERPARAMETERS and getattr(self, "_frozen", False):
            raise AttributeError(
                f"GradRegClassifier.{name} cannot be changed after construction: the training "
                "step reads it as a constant when it is first traced, so a new value would be "
                f"silently ignored. Build a new model instead: model.replace({name}=...)."
            )
        super().__setattr__(name, value)

    def replace(self, **changes) -> "GradRegClassifier":
        """A new, uncompiled model with some constructor arguments changed.

        The counterpart of ``dataclasses.replace`` for the fixed :data:`HYPERPARAMETERS`.

        The new model wraps the **same** network object, so it starts from (and trains)
        the current weights; compile it before ``fit`` (the optimizer state is not copied).

        Args:
            **changes: any of :data:`HYPERPARAMETERS` (e.g. ``penalty_weight=1e3``).

        Returns:
            A new :class:`GradRegClassifier`.

        Raises:
            TypeError: on a name that is not a constructor argument.
            ValueError: on a bad value (as the constructor).
        """
        unknown = sorted(set(changes) - set(HYPERPARAMETERS))
        if unknown:
            raise TypeError(f"replace() accepts {', '.join(HYPERPARAMETERS)}; received "
                            f"{', '.join(unknown)}.")
        return type(self)(**{**{k: getattr(self, k) for k in HYPERPARAMETERS}, **changes})

    def build(self, input_shape):
        if not self.network.built:
            self.network.build(input_shape)
        self.built = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):  # keras_compat.HOOK
        # Keras 3's TensorFlow trainer starts fit/evaluate under a tf.distribute strategy
        # by reducing a first input batch with strategy.reduce("MEAN", ..., axis=None),
        # which raises under MultiWorkerMirroredStrategy (keras-team/keras#20585,
        # tensorflow/tensorflow#72388). The batch only serves to build layers, compiled
        # losses and compiled metrics; a built GradRegClassifier has none of those left
        # to build, so it skips the batch and builds only the optimizer.
        if (self._distribute_strategy is not None and self.built
                and all(layer.built for layer in compat.sublayers(self))
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
    @staticmethod
    def _unpack(data):
        """``(x, y)`` of a batch, refusing sample weights, missing labels and integer images.

        Runs in Python while the step is traced; only soft labels add an op to the graph
        (:func:`gradreg_tf.models.input_checks.checked_labels`).
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("GradRegClassifier does not support sample weights (or class "
                             "weights), received some.")
        if y is None:
            raise ValueError("GradRegClassifier needs labels: batches of (x, y), received x only.")
        x = tf.convert_to_tensor(x)
        if not x.dtype.is_floating:
            raise TypeError(
                f"x must have a floating dtype (e.g. float32), received a batch of dtype "
                f"{x.dtype.name}. Integer images are not cast (that would train on 0-255 "
                "pixels): scale them as the dataset's preprocessing does (gradreg_tf.data.load)."
            )
        return x, checks.checked_labels(y)

    def train_step(self, data):
        x, y = self._unpack(data)
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
        if compat.in_multi_worker_mode(self.distribute_strategy):
            # Keras 3 averages step outputs over workers with strategy.reduce("MEAN", v,
            # axis=0), which needs an axis (keras-team/keras#20585); the values are already
            # equal on every replica (all-reduced above), so a length-1 axis changes nothing.
            results = {k: tf.reshape(v, [1]) for k, v in results.items()}
        return results

    def test_step(self, data):
        x, y = self._unpack(data)
        batch = tf.cast(P.global_batch_size(tf.shape(x)[0]), x.dtype)
        logits = self.network(x, training=False)
        ce = tf.reduce_sum(P.cross_entropy(logits, y)) / batch
        return self._update_trackers(ce, ce, tf.zeros((), logits.dtype), logits, y, batch)

    # ------------------------------------------------------------------ validation
    def _check_outputs(self, x) -> int | None:
        """Runs the network once on a few inputs: logits of >= 2 classes, not probabilities."""
        probe = checks.probe_batch(self.network, x)
        if probe is None:
            return None
        n_classes = _checks.check_logits_model(self.network, probe)
        self._outputs_checked = True
        return n_classes

    def _check_xy(self, x, y, kwargs):
        for key in ("sample_weight", "class_weight"):
            if kwargs.get(key) is not None:
                raise ValueError(f"GradRegClassifier does not support {key.replace('_', ' ')}s, "
                                 f"received {key}.")
        arrays = not (isinstance(x, tf.data.Dataset) or callable(getattr(x, "__next__", None))
                      or (hasattr(x, "__getitem__") and not hasattr(x, "shape")))
        if not arrays or y is None:  # tf.data, generators, PyDataset: checked batch by batch
            if not self._outputs_checked:
                self._check_outputs(x)
            return x, y
        expected = checks.static_input_shape(self.network)
        x_arr = _checks.check_images(x, rank=len(expected) if expected else range(2, 6))
        shape = x_arr.shape[1:]
        if expected and any(e is not None and e != s for e, s in zip(expected[1:], shape)):
            raise ValueError(
                f"x must have shape (batch, {', '.join(map(str, expected[1:]))}) for this "
                f"network, received {x_arr.shape}."
            )
        n_classes = self._check_outputs(x_arr)
        y_arr = np.asarray(y)
        soft = y_arr.ndim == 2 and y_arr.shape[1] == n_classes
        if soft and np.issubdtype(y_arr.dtype, np.floating):
            y_arr = _checks.check_soft_labels(y_arr, n_classes=n_classes, n_examples=len(x_arr))
            return x_arr, y_arr.astype(x_arr.dtype)
        return x_arr, _checks.check_labels(y_arr, n_classes=n_classes, n_examples=len(x_arr))

    def _describe(self) -> str:
        return (f"penalty={self.penalty}, penalty_weight={self.penalty_weight:g}, "
                f"adversarial_eps={self.adversarial_eps:g}, temperature={self.temperature:g}")

    def fit(self, x=None, y=None, **kwargs):
        """``keras.Model.fit`` after checking the inputs, stopping on a non-finite loss.

        Arrays are checked whole (shape, dtype, NaN, label range); every input path is
        checked for integer images and weights while the step is traced, and the network's
        output (logits of >= 2 classes, not probabilities) on its first few inputs.

        Labels from ``tf.data`` are checked batch by batch: float labels of rank 1 and
        integer labels of rank 2 while the step is traced, soft labels (probability rows) as it
        runs, integer labels out of range by TensorFlow (on CPU; on GPU they give a NaN loss).

        Raises:
            ValueError: on a wrong shape, non-finite values, labels outside ``[0, K)``,
                soft labels that are not probability rows, sample/class weights, or a network
                returning probabilities.
            TypeError: on integer images or float labels of rank 1.
            NonFiniteLossError: at the first batch whose loss or penalty is NaN or infinite.
        """
        x, y = self._check_xy(x, y, kwargs)
        callbacks = kwargs.pop("callbacks", None)
        guard = NonFiniteGuard(self._describe)
        if isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks.callbacks.append(guard)
        else:
            callbacks = [*(callbacks or ()), guard]
        with checks.label_errors_as_value_error():
            return super().fit(x, y, callbacks=callbacks, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        """``keras.Model.evaluate`` after the same input checks as :meth:`fit`."""
        x, y = self._check_xy(x, y, kwargs)
        with checks.label_errors_as_value_error():
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
