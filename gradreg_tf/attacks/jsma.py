"""Pairwise Jacobian saliency map attack (JSMA), batched.

Papernot, McDaniel, Jha, Fredrikson, Celik & Swami, "The Limitations of Deep Learning in
Adversarial Settings" (EuroS&P 2016), in the pairwise form of cleverhans 2.0
(``attacks_tf.jsma`` / ``jsma_batch``, later ``jsma_symbolic``), which the original code of
Ross & Doshi-Velez (AAAI 2018, §Experiments; ``generate_jsma_examples``, SETUP.md §5) runs
with ``theta=1, gamma=0.25`` on the model's **logits**.

Per example and iteration (``increase = theta > 0``; for ``theta < 0`` flip every sign):

1. stop with success when ``argmax(logits) == target``;
2. ``alpha = ∂z_t/∂x`` and ``beta = ∂(Σ_{j≠t} z_j)/∂x`` (two backward passes, not the
   Jacobian);
3. among pairs ``p ≠ q`` of the search domain with ``alpha_p + alpha_q > 0`` and
   ``beta_p + beta_q < 0``, pick the one maximising ``-(alpha_p + alpha_q)(beta_p + beta_q)``
   (ties: the smallest ``(min(p, q), max(p, q))``, i.e. the first maximum of cleverhans'
   row-major ``argmax``);
4. move both features by ``theta``, clip to the bounds, remove them from the search domain.

The search domain starts as the features not already at the bound they move toward, and
there are at most ``floor(n_features * gamma / 2)`` iterations.

The pair search never materialises the ``n_features x n_features`` score matrix: every pair
through feature ``p`` scores at most ``U_p`` (a cheap upper bound, see ``_row_bounds``: with
``c = alpha - beta``, AM-GM gives ``((c_p + max c) / 2)^2``), so rows are scored in blocks in
decreasing order of ``U_p``, and an example stops searching once the best score found exceeds
the bound of every unscored row (on the paper's MNIST CNN: after the first block of 8 rows
for nearly every example). The result is the exact maximum with cleverhans' tie-breaking.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from gradreg_tf import _checks
from gradreg_tf import gradients as G
from gradreg_tf.types import ModelFn, TensorLike

__all__ = ["JSMAResult", "jsma"]

_MAX_BLOCK_ROWS = 8  # rows of the pair-score matrix scored at once per example
_BLOCK_ELEMENTS = 8_000_000  # cap on examples x rows x features per block (memory)


class JSMAResult(NamedTuple):
    """Result of :func:`jsma`.

    Attributes:
        x_adv: adversarial batch, same shape and float dtype as the input.
        success: bool ``(batch,)``, whether the model predicts the target on ``x_adv``.
        n_changed: int32 ``(batch,)``, number of features where ``x_adv != x``.
    """

    x_adv: tf.Tensor
    success: tf.Tensor
    n_changed: tf.Tensor


def best_pairs(alpha: tf.Tensor, beta: tf.Tensor, domain: tf.Tensor, *,
               max_block_rows: int = _MAX_BLOCK_ROWS) -> tuple[tf.Tensor, ...]:
    """The best admissible pair per row for increasing features (see module docstring).

    Args:
        alpha: ``(m, n)`` float32 target-logit gradients (sign-flipped when decreasing).
        beta: ``(m, n)`` float32 other-logits gradients (sign-flipped likewise).
        domain: ``(m, n)`` bool search domain.
        max_block_rows: rows of the score matrix scored per block (the result does not
            depend on it; exposed for tests).

    Returns:
        ``(p, q, found)``: int32 ``(m,)`` with ``p < q`` and bool ``(m,)``; where ``found`` is
        False no pair has a positive score and ``p, q`` are meaningless.
    """
    return _best_pairs(tf.convert_to_tensor(alpha, tf.float32),
                       tf.convert_to_tensor(beta, tf.float32),
                       tf.convert_to_tensor(domain, tf.bool),
                       tf.constant(max_block_rows, tf.int32))


@tf.function(
    input_signature=[tf.TensorSpec((None, None), tf.float32),
                     tf.TensorSpec((None, None), tf.float32),
                     tf.TensorSpec((None, None), tf.bool), tf.TensorSpec((), tf.int32)],
    reduce_retracing=True,
)
def _best_pairs(alpha, beta, domain, max_block_rows):
    m = tf.shape(alpha)[0]
    n = tf.shape(alpha)[1]
    n64 = tf.cast(n, tf.int64)
    bound = _row_bounds(alpha, beta, domain)
    order = tf.argsort(bound, axis=1, direction="DESCENDING", stable=True)
    sorted_bound = tf.concat([tf.gather(bound, order, batch_dims=1),
                              -tf.ones((m, 1), tf.float64)], axis=1)
    rows_per_block = tf.clip_by_value(
        _BLOCK_ELEMENTS // tf.maximum(m * n, 1), 1, max_block_rows)
    cols = tf.range(n)[None, None, :]
    no_key = tf.constant(np.iinfo(np.int64).max, tf.int64)

    def body(start, best_score, best_key, certified):
        # Only the examples whose maximum is not yet certified score their next block of rows.
        todo = tf.where(~certified)[:, 0]
        a_u = tf.gather(alpha, todo)
        b_u = tf.gather(beta, todo)
        d_u = tf.gather(domain, todo)
        rows = tf.gather(order, todo)[:, start:start + rows_per_block]  # (u, r)
        a_r = tf.gather(a_u, rows, batch_dims=1)
        b_r = tf.gather(b_u, rows, batch_dims=1)
        d_r = tf.gather(d_u, rows, batch_dims=1)
        target_sum = a_r[:, :, None] + a_u[:, None, :]
        other_sum = b_r[:, :, None] + b_u[:, None, :]
        rows3 = rows[:, :, None]
        ok = ((target_sum > 0) & (other_sum < 0) & d_r[:, :, None] & d_u[:, None, :]
              & tf.not_equal(rows3, cols))
        score = tf.where(ok, -(target_sum * other_sum), 0.0)
        blk_max = tf.reduce_max(score, axis=[1, 2])
        key = (tf.cast(tf.minimum(rows3, cols), tf.int64) * n64
               + tf.cast(tf.maximum(rows3, cols), tf.int64))
        is_max = tf.equal(score, blk_max[:, None, None]) & (score > 0)
        blk_key = tf.reduce_min(tf.where(is_max, key, no_key), axis=[1, 2])
        old_score = tf.gather(best_score, todo)
        old_key = tf.gather(best_key, todo)
        better = (blk_max > old_score) | (tf.equal(blk_max, old_score) & (blk_key < old_key))
        update = better & (blk_max > 0)
        new_score = tf.where(update, blk_max, old_score)
        new_key = tf.where(update, blk_key, old_key)
        stop = tf.minimum(start + rows_per_block, n)
        next_bound = tf.gather(sorted_bound, todo)[:, stop]
        done = (next_bound <= 0) | (tf.cast(new_score, tf.float64) > next_bound)
        at = todo[:, None]
        return (stop, tf.tensor_scatter_nd_update(best_score, at, new_score),
                tf.tensor_scatter_nd_update(best_key, at, new_key),
                tf.tensor_scatter_nd_update(certified, at, done))

    _, best_score, best_key, _ = tf.while_loop(
        lambda start, s, k, c: (start < n) & ~tf.reduce_all(c),
        body,
        (tf.constant(0), tf.zeros((m,), tf.float32), tf.fill((m,), no_key),
         tf.zeros((m,), tf.bool)),
    )
    found = best_score > 0
    safe_key = tf.where(found, best_key, 0)
    return tf.cast(safe_key // n64, tf.int32), tf.cast(safe_key % n64, tf.int32), found


def _row_bounds(alpha, beta, domain):
    """Float64 upper bounds ``U_p >= score(p, q)`` for every ``q`` in the domain (-1 off it).

    Two valid bounds, of which the smaller is kept:

    * ``max(0, alpha_p + A) * max(0, -(beta_p + B))`` with ``A = max alpha``, ``B = min beta``
      over the domain, computed in float32 exactly like the scores: rounding is monotone, so
      it bounds the float32 score of every pair through ``p``;
    * ``((c_p + C) / 2)^2`` with ``c = alpha - beta`` and ``C = max c`` over the domain (AM-GM:
      ``xy <= ((x + y) / 2)^2`` for the two positive factors ``x + y = c_p + c_q``), computed in
      float64 and inflated by ``1e-5`` relative plus an absolute ``1e-12 * (|c_p| + |C|)`` term
      so that float32 rounding of the score (at most 3 roundings of 2^-24) stays below it.
    """
    inf = tf.constant(np.inf, tf.float32)
    a_max = tf.reduce_max(tf.where(domain, alpha, -inf), axis=1, keepdims=True)
    b_min = tf.reduce_min(tf.where(domain, beta, inf), axis=1, keepdims=True)
    separate = tf.cast(tf.nn.relu(alpha + a_max) * tf.nn.relu(-(beta + b_min)), tf.float64)
    c = tf.cast(alpha, tf.float64) - tf.cast(beta, tf.float64)
    c_max = tf.reduce_max(tf.where(domain, c, -np.inf), axis=1, keepdims=True)
    c_max = tf.where(tf.math.is_finite(c_max), c_max, 0.0)  # empty domain: every row is off it
    slack = 1e-12 * (tf.abs(c) + tf.abs(c_max))
    joint = tf.square((tf.nn.relu(c + c_max) + slack) / 2) * (1 + 1e-5)
    return tf.where(domain, tf.minimum(separate, joint), -1.0)


def _build_step(get_model, spec):
    scalar = tf.TensorSpec((), spec.dtype)

    @tf.function(
        input_signature=[spec, tf.TensorSpec((None,), tf.int32),
                         tf.TensorSpec((None, None), tf.bool), tf.TensorSpec((), tf.float32),
                         scalar, scalar, scalar],
        reduce_retracing=True,
    )
    def step(x, target, domain, direction, delta, lower, upper):
        x32 = tf.cast(x, tf.float32)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x32)
            logits = tf.cast(G.call_logits(get_model(), x32), tf.float32)
            onehot = tf.one_hot(target, tf.shape(logits)[-1], dtype=tf.float32)
            z_target = tf.reduce_sum(logits * onehot)
            z_other = tf.reduce_sum(logits * (1.0 - onehot))
        m = tf.shape(x)[0]
        alpha = direction * tf.reshape(tape.gradient(z_target, x32), (m, -1))
        beta = direction * tf.reshape(tape.gradient(z_other, x32), (m, -1))
        del tape
        success = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), target)
        p, q, found = _best_pairs(alpha, beta, domain, tf.constant(_MAX_BLOCK_ROWS))
        n = tf.shape(alpha)[1]
        chosen = (tf.one_hot(p, n, on_value=True, off_value=False, dtype=tf.bool)
                  | tf.one_hot(q, n, on_value=True, off_value=False, dtype=tf.bool))
        chosen = chosen & (found & ~success)[:, None]
        flat = tf.reshape(x, (m, -1))
        moved = tf.clip_by_value(flat + delta, lower, upper)
        x_new = tf.reshape(tf.where(chosen, moved, flat), tf.shape(x))
        return x_new, domain & ~chosen, success, found

    return step


def jsma(model: ModelFn, x: TensorLike, *, y_target: TensorLike, bounds, theta: float = 1.0,
         gamma: float = 0.25, batch_size: int = 100) -> JSMAResult:
    """Pairwise Jacobian saliency map attack toward ``y_target`` on the model's logits.

    Papernot et al. (EuroS&P 2016), with the semantics of cleverhans 2.0 ``jsma_batch`` as
    run by the original code of Ross & Doshi-Velez (AAAI 2018, §Experiments; defaults
    ``theta=1, gamma=0.25``, SETUP.md §5); see the module docstring for the algorithm.
    Examples are processed ``batch_size`` at a time; an example leaves the batch as soon as
    the model predicts its target (success) or no admissible pair is left (failure), so the
    result does not depend on ``batch_size`` (the model must be per-example, e.g. batch norm
    in inference mode, which is how it is called: ``training=False``).

    Scaling: gradients are of the raw logits (no softmax, no averaging over the batch);
    ``theta`` is in the units of ``x`` and at most ``2 * floor(n_features * gamma / 2)``
    features change per example.

    Differences from cleverhans, all outside the original's use (theta=1 on [0,1] or
    [-0.5, 0.5] data, where a chosen feature always saturates): when no admissible pair is
    left, cleverhans moves feature 0 by ``2 * theta`` and goes on, here the example stops
    (failure); with ``theta < 0`` cleverhans moves features *up* by ``|theta|`` (it subtracts
    a negative theta), here they move down by ``|theta|``.

    Args:
        model: a Keras model (called with ``training=False``) or a callable returning logits.
        x: input batch within ``bounds``, any float dtype.
        y_target: integer target classes ``(batch,)``.
        bounds: ``(lower, upper)`` feature range; changed features are clipped to it.
        theta: change per selected feature; ``> 0`` increases features, ``< 0`` decreases.
        gamma: maximum fraction of features to change, in ``(0, 1]``.
        batch_size: examples attacked together (memory ~ ``batch_size * 8 * n_features``
            floats for the pair search, capped at 8M elements per block).

    Returns:
        :class:`JSMAResult` ``(x_adv, success, n_changed)``; ``x_adv`` has ``x``'s shape and
        dtype (features are changed in that dtype; the model sees float32).

    Raises:
        ValueError: reversed bounds, ``x`` outside ``bounds``, wrong rank/shape, targets out
            of range or of the wrong length, ``theta`` zero or not finite, ``gamma`` outside
            ``(0, 1]``, ``batch_size`` < 1.
        TypeError: integer ``x`` or non-integer targets.
    """
    bounds = _checks.as_bounds(bounds)
    try:
        theta = float(theta)
        gamma = float(gamma)
    except (TypeError, ValueError):
        raise ValueError(f"theta and gamma must be numbers, received theta={theta!r}, "
                         f"gamma={gamma!r}.") from None
    if not math.isfinite(theta) or theta == 0:
        raise ValueError(f"theta must be a finite non-zero number, received {theta!r}.")
    if not (math.isfinite(gamma) and 0 < gamma <= 1):
        raise ValueError(f"gamma must be in (0, 1], received {gamma!r}.")
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    arr = G.check_model_input(model, x, bounds=bounds)
    targets = _checks.check_labels(y_target, n_classes=G.n_classes(model, arr),
                                   n_examples=len(arr), name="y_target")
    x_adv = np.array(arr, copy=True)
    success = np.zeros(len(arr), bool)
    for part in G.chunks(len(arr), batch_size):
        x_adv[part], success[part] = _jsma_chunk(model, arr[part], targets[part], bounds,
                                                 theta, gamma)
    changed = np.sum((x_adv != arr).reshape(len(arr), -1), axis=1).astype(np.int32)
    return JSMAResult(G.as_output(x_adv, arr), tf.constant(success), tf.constant(changed))


def _jsma_chunk(model, x: np.ndarray, targets: np.ndarray, bounds, theta: float, gamma: float):
    n_features = int(np.prod(x.shape[1:]))
    max_iters = int(math.floor(n_features * gamma / 2))
    increase = theta > 0
    flat = x.reshape(len(x), -1)
    domain = (flat < bounds.upper) if increase else (flat > bounds.lower)
    step = G.compiled(model, "jsma_step", x.shape[1:], x.dtype, _build_step)
    dt = tf.as_dtype(x.dtype)
    consts = (tf.constant(1.0 if increase else -1.0, tf.float32),
              tf.constant(abs(theta) if increase else -abs(theta), dt),
              tf.constant(bounds.lower, dt), tf.constant(bounds.upper, dt))
    x_adv = np.array(x, copy=True)
    success = np.zeros(len(x), bool)
    active = np.arange(len(x))
    t32 = targets.astype(np.int32)
    for iteration in range(max_iters + 1):
        xa = tf.convert_to_tensor(x_adv[active])
        if iteration == max_iters:  # budget spent: only check the prediction
            pred = np.argmax(G.logits(model, xa).numpy(), axis=-1)
            success[active] = pred == t32[active]
            break
        x_new, dom_new, succ, found = step(xa, tf.constant(t32[active]),
                                           tf.constant(domain[active]), *consts)
        succ, found = succ.numpy(), found.numpy()
        success[active] = succ
        x_adv[active] = x_new.numpy()
        domain[active] = dom_new.numpy()
        active = active[~succ & found]
        if not len(active):
            break
    return x_adv, success
