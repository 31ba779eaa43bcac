"""L∞ projected gradient descent (PGD) with random restarts, batched.

Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to
Adversarial Attacks" (ICLR 2018), §2-3: from a random start in the eps ball, repeat

    x <- clip(clip(x + step_size * sign(∇x objective), x0 - eps, x0 + eps), bounds)

(one gradient per step, like FGSM; ``x0`` is the clean input). This attack is beyond the paper
of Ross & Doshi-Velez (2018), which used FGSM, TGSM and JSMA; it is the standard white-box
evaluation since (Carlini et al. 2019, "On Evaluating Adversarial Robustness").

Semantics of :func:`pgd`:

* objective per example: the loss of :mod:`gradreg_tf.gradients` (``"ce"`` cross-entropy or
  ``"margin"``, the Carlini-Wagner ``max_{j≠y} z_j - z_y``) of the label, maximised when
  untargeted, its negative (``-CE(t)``, ``z_t - max_{j≠t} z_j``) maximised when targeted;
* scaling: the per-example objectives are **summed**, so each example's gradient is its own
  (no ``1/batch`` factor, unlike the paper's FGSM, whose chunk mean underflows to exactly zero
  for saturated models); ``sign(0) = 0`` still leaves a pixel with an exactly-zero float32
  gradient in place;
* every iterate ``x_0 .. x_steps`` of every restart is a candidate; per example the result is
  the **first successful** candidate (untargeted: argmax ≠ y; targeted: argmax = t) in the
  order restart 0 step 0, 1, ..., restart 1, ..., and if none succeeds, the candidate with the
  highest objective (the worst case). A successful example is frozen: later steps and restarts
  skip it, and so does an example whose iterate stops moving (a fixed point of the update: its
  gradient is zero or every pixel sits against the ball or the bounds), which saves gradients
  without changing the result;
* restart ``r`` starts at ``clip(x + u, bounds)`` with
  ``u = numpy.random.default_rng((seed, r)).uniform(-eps, eps, x.shape)`` (``random_start``);
  so for a fixed ``seed`` and ``step_size``, raising ``steps`` or ``restarts`` only adds
  candidates and can never turn a success into a failure.

Cost: at most ``restarts * steps`` gradients and ``restarts`` extra forward passes per example;
frozen examples cost nothing.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gradreg_tf import _checks
from gradreg_tf import gradients as G
from gradreg_tf.attacks.gradient_sign import predict_labels
from gradreg_tf.types import ModelFn, TensorLike

__all__ = ["DEFAULT_STEP_FACTOR", "default_step_size", "pgd"]

DEFAULT_STEP_FACTOR = 2.5
"""``step_size = 2.5 * eps / steps`` by default: the iterates can cross the ball 1.25 times
(the rule of Madry et al.'s ``robustness`` library; 0.01 for eps=0.3 and 40 steps is theirs)."""


def default_step_size(eps: float, steps: int) -> float:
    """``DEFAULT_STEP_FACTOR * eps / steps``, the step :func:`pgd` takes by default."""
    return DEFAULT_STEP_FACTOR * float(eps) / int(steps)


def _builder(loss: G.Loss):
    def build(get_model, spec):
        scalar = tf.TensorSpec((), spec.dtype)
        vector = tf.TensorSpec((None,), tf.float32)

        @tf.function(
            input_signature=[spec, spec, tf.TensorSpec((None,), tf.int32),
                             tf.TensorSpec((), tf.bool), spec, vector, scalar, scalar, scalar,
                             scalar, tf.TensorSpec((), tf.int32)],
            reduce_retracing=True,
        )
        def pgd_run(x, x_start, labels, targeted, best_x, best_obj, eps, step, lower, upper,
                    n_steps):
            direction = tf.where(targeted, -1.0, 1.0)
            lo = tf.maximum(x - eps, lower)
            hi = tf.minimum(x + eps, upper)
            feature_axes = tf.range(1, tf.rank(x))

            def score(xa, la, with_gradient):
                """Per-example objective, its input gradient (or None) and success."""
                x32 = tf.cast(xa, tf.float32)
                with tf.GradientTape() as tape:
                    tape.watch(x32)
                    logits = tf.cast(G.call_logits(get_model(), x32), tf.float32)
                    obj = direction * G.per_example_loss(logits, la, loss)
                    total = tf.reduce_sum(obj)
                grad = tape.gradient(total, x32) if with_gradient else None
                pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
                return obj, grad, tf.where(targeted, tf.equal(pred, la), tf.not_equal(pred, la))

            def evaluate(x_cur, best_x, best_obj, done, idx, with_gradient):
                xa = tf.gather(x_cur, idx)
                obj, grad, success = score(xa, tf.gather(labels, idx), with_gradient)
                take = success | (obj > tf.gather(best_obj, idx))
                rows = tf.boolean_mask(idx, take)[:, None]
                best_x = tf.tensor_scatter_nd_update(best_x, rows, tf.boolean_mask(xa, take))
                best_obj = tf.tensor_scatter_nd_update(best_obj, rows, tf.boolean_mask(obj, take))
                done = tf.tensor_scatter_nd_update(done, idx[:, None], success)
                return xa, grad, success, best_x, best_obj, done

            def some(x_cur, best_x, best_obj, done, active):
                """One step on the active examples only (gathered, then scattered back)."""
                idx = tf.where(active)[:, 0]
                xa, grad, success, best_x, best_obj, done = evaluate(
                    x_cur, best_x, best_obj, done, idx, True)
                moved = xa + step * tf.cast(tf.sign(grad), xa.dtype)
                moved = tf.clip_by_value(moved, tf.gather(lo, idx), tf.gather(hi, idx))
                still = tf.reduce_all(tf.equal(moved, xa), axis=feature_axes)
                x_cur = tf.tensor_scatter_nd_update(x_cur, idx[:, None], moved)
                active = tf.tensor_scatter_nd_update(active, idx[:, None], ~success & ~still)
                return x_cur, best_x, best_obj, done, active

            def every(x_cur, best_x, best_obj, done, active):
                """The same step when every example is active, without gathers or scatters."""
                obj, grad, success = score(x_cur, labels, True)
                take = success | (obj > best_obj)
                rows = tf.reshape(take, tf.concat([tf.shape(take), tf.ones_like(feature_axes)], 0))
                best_x = tf.where(rows, x_cur, best_x)
                best_obj = tf.where(take, obj, best_obj)
                moved = x_cur + step * tf.cast(tf.sign(grad), x_cur.dtype)
                moved = tf.clip_by_value(moved, lo, hi)
                still = tf.reduce_all(tf.equal(moved, x_cur), axis=feature_axes)
                return moved, best_x, best_obj, success, ~success & ~still

            def body(i, x_cur, best_x, best_obj, done, active):
                state = (x_cur, best_x, best_obj, done, active)
                stepped = tf.cond(tf.reduce_all(active), lambda: every(*state),
                                  lambda: some(*state))
                for new, old in zip(stepped, state):
                    new.set_shape(old.shape)
                return (i + 1, *stepped)

            n = tf.shape(x)[0]
            done = tf.zeros((n,), tf.bool)
            active = tf.ones((n,), tf.bool)
            _, x_cur, best_x, best_obj, done, active = tf.while_loop(
                lambda i, *state: (i < n_steps) & tf.reduce_any(state[-1]), body,
                (tf.constant(0), x_start, best_x, best_obj, done, active))
            # the last iterate of the examples still moving: a forward pass, no gradient (and
            # none at all when nothing moves: some kernels reject an empty batch)
            idx = tf.where(active)[:, 0]

            def last():
                return evaluate(x_cur, best_x, best_obj, done, idx, False)[3:]

            return tf.cond(tf.size(idx) > 0, last, lambda: (best_x, best_obj, done))

        return pgd_run

    return build


_BUILDERS = {loss: _builder(loss) for loss in G.Loss}


def _start(x: np.ndarray, eps: float, bounds, seed: int, restart: int) -> np.ndarray:
    """``clip(x + U(-eps, eps), bounds)`` with the noise of ``default_rng((seed, restart))``
    (so a restart's start does not depend on how many restarts are run)."""
    noise = np.random.default_rng((seed, restart)).uniform(-eps, eps, size=x.shape)
    return np.clip(x + noise.astype(x.dtype), bounds.lower, bounds.upper).astype(x.dtype)


def pgd(model: ModelFn, x: TensorLike, eps: float, *, bounds, y: TensorLike | None = None,
        y_target: TensorLike | None = None, steps: int = 40, step_size: float | None = None,
        restarts: int = 1, random_start: bool = True, loss: str = "ce", seed: int = 0,
        batch_size: int = 1000) -> tf.Tensor:
    """L∞ projected gradient descent (Madry et al., ICLR 2018), untargeted or targeted.

    ``steps`` signed-gradient steps of ``step_size`` from a random start in the eps ball,
    each projected onto the ball around ``x`` and clipped to ``bounds``, ``restarts`` times;
    per example the first successful iterate, else the one with the highest objective (module
    docstring). The loss is the per-example cross-entropy or Carlini-Wagner margin of the
    logits of ``model(x, training=False)``, taken in float32.

    Scaling: the per-example objectives are summed, so each example's gradient is its own
    (the paper's FGSM divides by the chunk size instead; :func:`fgsm`). The result does not
    depend on ``batch_size`` (up to float rounding of batched kernels).

    Args:
        model: a Keras model (called with ``training=False``) or a callable returning logits.
        x: input batch within ``bounds``, any float dtype, any size.
        eps: L∞ radius in the units of ``x``; ``eps=0`` returns ``x``.
        bounds: ``(lower, upper)`` pixel range; every iterate is clipped to it.
        y: true labels for the untargeted attack; ``None`` uses the model's argmax predictions.
        y_target: target classes for the targeted attack (then ``y`` must be ``None``).
        steps: gradient steps per restart (>= 1; default 40, Madry et al.'s MNIST setting).
        step_size: L∞ size of each step; ``None`` means ``2.5 * eps / steps``
            (:func:`default_step_size`).
        restarts: number of runs from independent random starts (>= 1; > 1 needs
            ``random_start``).
        random_start: start from ``clip(x + U(-eps, eps))`` (True) or from ``x``.
        loss: ``"ce"`` (cross-entropy) or ``"margin"`` (Carlini-Wagner logit margin).
        seed: seed of the random starts (restart ``r`` uses ``default_rng((seed, r))``).
        batch_size: examples per chunk of the traced loop.

    Returns:
        ``tf.Tensor`` of adversarial examples, same shape and float dtype as ``x``, with
        ``|x_adv - x| <= eps`` and values within ``bounds``.

    Raises:
        ValueError: negative or non-finite ``eps``/``step_size``, reversed bounds, ``x`` outside
            ``bounds``, wrong rank/shape for the model, labels out of range or of the wrong
            length, both ``y`` and ``y_target``, ``steps``/``restarts``/``batch_size`` < 1,
            ``restarts`` > 1 without ``random_start``, negative ``seed``, unknown ``loss``.
        TypeError: integer ``x``, non-integer labels, unknown keyword arguments.
    """
    bounds = _checks.as_bounds(bounds)
    eps = _checks.check_eps(eps)
    loss = G.as_loss(loss)
    steps = G.check_positive_int(steps, name="steps")
    restarts = G.check_positive_int(restarts, name="restarts")
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    seed = _checks.check_seed(seed)
    step = default_step_size(eps, steps) if step_size is None else _checks.check_eps(
        step_size, name="step_size")
    if not isinstance(random_start, (bool, np.bool_)):
        raise TypeError(f"random_start must be True or False, received {random_start!r}.")
    if restarts > 1 and not random_start:
        raise ValueError(f"restarts > 1 needs random_start=True (without it every restart is the "
                         f"same run), received restarts={restarts}.")
    if y is not None and y_target is not None:
        raise ValueError("pass y (untargeted) or y_target (targeted), received both.")
    arr = G.check_model_input(model, x, bounds=bounds)
    k = G.n_classes(model, arr)
    targeted = y_target is not None
    if targeted:
        labels = _checks.check_labels(y_target, n_classes=k, n_examples=len(arr), name="y_target")
    elif y is not None:
        labels = _checks.check_labels(y, n_classes=k, n_examples=len(arr))
    else:
        labels = predict_labels(model, arr, batch_size=batch_size)

    dt = arr.dtype
    fn = G.compiled(model, f"pgd_{loss.value}", arr.shape[1:], dt, _BUILDERS[loss])
    scalars = [tf.constant(v, dt) for v in (eps, step, bounds.lower, bounds.upper)]
    best_x = arr.copy()
    best_obj = np.full(len(arr), -np.inf, np.float32)
    done = np.zeros(len(arr), bool)
    for restart in range(restarts):
        todo = np.flatnonzero(~done)
        if todo.size == 0:
            break
        start = (_start(arr, eps, bounds, seed, restart) if random_start else arr)[todo]
        for part in G.chunks(todo.size, batch_size):
            rows = todo[part]
            out = fn(tf.convert_to_tensor(arr[rows]), tf.convert_to_tensor(start[part]),
                     tf.constant(labels[rows], tf.int32), tf.constant(targeted),
                     tf.convert_to_tensor(best_x[rows]), tf.constant(best_obj[rows]), *scalars,
                     tf.constant(steps, tf.int32))
            best_x[rows], best_obj[rows], done[rows] = (t.numpy() for t in out)
    return G.as_output(best_x, arr)

