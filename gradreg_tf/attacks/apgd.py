"""L∞ Auto-PGD (APGD): step-size schedule, momentum, best-point restarts; CE, DLR, targeted DLR.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks" (ICML 2020), Algorithm 1 and §3-4, the white-box half of AutoAttack.
Beyond the paper of Ross & Doshi-Velez (2018). Per example, from ``x0`` drawn uniformly in the
eps ball (AutoAttack's start: ``x + eps * t / max|t|``, ``t ~ U(-1, 1)``):

    z      = P(x_k + eta * sign(∇f(x_k)))
    x_k+1  = P(x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_k-1))     alpha = 0.75 (1 at k = 0)

with ``P`` the projection onto the eps ball and ``bounds``, ``eta = 2 eps`` at first, and at the
checkpoints ``w_j = ceil(p_j N)`` (``p_0 = 0``, ``p_1 = 0.22``,
``p_j+1 = p_j + max(p_j - p_j-1 - 0.03, 0.06)``) the step is halved and the iterate restarted
from the best point so far ``x_max`` when (1) the objective rose in fewer than
``rho = 0.75`` of the steps since the last checkpoint, or (2) the step was not halved at the last
checkpoint and the best objective has not improved since.

Objectives ``f`` (per example, maximised; ``z`` the logits, ``π`` their descending order):

* ``"ce"``: softmax cross-entropy of the label ``y``;
* ``"dlr"``: ``-(z_y - max_{i≠y} z_i) / (z_π1 - z_π3 + 1e-12)`` (needs K >= 3 classes), invariant
  to shifts and scales of the logits, so a saturated softmax cannot hide the gradient;
* ``"dlr_targeted"`` (APGD-T): ``-(z_y - z_t) / (z_π1 - (z_π3 + z_π4) / 2 + 1e-12)`` (K >= 4) for
  each target ``t`` among the ``n_targets`` classes other than ``y`` with the highest clean
  logits, one run per target on the examples no earlier target broke (AutoAttack's APGD-T).

Success is always untargeted (argmax ≠ y, as AutoAttack counts robust accuracy). Per example
the result is the **first misclassified iterate** (order: target, restart, step), else the
iterate with the highest objective over all runs. Examples are frozen once misclassified or
stalled (a zero gradient at the best point without momentum: they can never move again), so
later steps, restarts and targets cost nothing for them.

Cost: at most ``steps * restarts * (n_targets if targeted else 1)`` gradients per example plus
one forward pass per run; the bookkeeping is O(n · d) numpy per step.
"""

from __future__ import annotations

import enum
import math

import numpy as np
import tensorflow as tf

from gradreg_tf import _checks
from gradreg_tf import gradients as G
from gradreg_tf.attacks.gradient_sign import predict_labels
from gradreg_tf.types import ModelFn, TensorLike

__all__ = ["APGDLoss", "MOMENTUM", "RHO", "apgd", "checkpoints"]

MOMENTUM = 0.75
"""``alpha`` of Croce & Hein (2020), Algorithm 1 (weight of the new step vs the previous one)."""

RHO = 0.75
"""Condition 1 of the checkpoints: halve the step if the objective rose in < rho of the steps."""


class APGDLoss(str, enum.Enum):
    """The objectives of :func:`apgd` (module docstring)."""

    CE = "ce"
    DLR = "dlr"
    DLR_TARGETED = "dlr_targeted"


def checkpoints(steps: int) -> tuple[int, ...]:
    """The checkpoint iterations ``w_j = ceil(p_j * steps)`` (j >= 1) of Croce & Hein (2020), §3.2.

    ``p_0 = 0``, ``p_1 = 0.22``, ``p_j+1 = p_j + max(p_j - p_j-1 - 0.03, 0.06)``; only the
    ``w_j <= steps`` are returned (ascending, without duplicates).
    """
    steps = G.check_positive_int(steps, name="steps")
    p_prev, p = 0.0, 0.22
    out = []
    while p <= 1.0:
        w = math.ceil(p * steps - 1e-9)
        if 1 <= w <= steps and (not out or w > out[-1]):
            out.append(w)
        p_prev, p = p, p + max(p - p_prev - 0.03, 0.06)
    return tuple(out)


def _objective(loss: APGDLoss, logits: tf.Tensor, labels: tf.Tensor,
               targets: tf.Tensor) -> tf.Tensor:
    """Per-example objective (maximised) of ``logits`` (float32, traceable)."""
    if loss is APGDLoss.CE:
        return G.xent(logits, labels)
    k = tf.shape(logits)[-1]
    z_sorted = tf.sort(logits, axis=-1, direction="DESCENDING")
    own = tf.one_hot(labels, k, on_value=True, off_value=False)
    z_y = tf.reduce_max(tf.where(own, logits, -np.inf), axis=-1)
    if loss is APGDLoss.DLR:
        z_other = tf.reduce_max(tf.where(own, -np.inf, logits), axis=-1)
        return -(z_y - z_other) / (z_sorted[:, 0] - z_sorted[:, 2] + 1e-12)
    z_t = tf.gather(logits, targets, axis=1, batch_dims=1)
    return -(z_y - z_t) / (z_sorted[:, 0] - 0.5 * (z_sorted[:, 2] + z_sorted[:, 3]) + 1e-12)


def _builder(loss: APGDLoss):
    def build(get_model, spec):
        labels_spec = tf.TensorSpec((None,), tf.int32)

        @tf.function(input_signature=[spec, labels_spec, labels_spec], reduce_retracing=True)
        def apgd_gradient(x, labels, targets):
            x32 = tf.cast(x, tf.float32)
            with tf.GradientTape() as tape:
                tape.watch(x32)
                logits = tf.cast(G.call_logits(get_model(), x32), tf.float32)
                values = _objective(loss, logits, labels, targets)
                total = tf.reduce_sum(values)
            grad = tape.gradient(total, x32)
            return grad, values, tf.argmax(logits, axis=-1, output_type=tf.int32)

        return apgd_gradient

    return build


_BUILDERS = {loss: _builder(loss) for loss in APGDLoss}


class _Run:
    """One APGD run (one restart, one target) over a chunk, numpy bookkeeping around the
    compiled gradient (the gradient dominates the cost)."""

    def __init__(self, fn, x, start, labels, targets, eps, bounds, steps, momentum, rho):
        self.fn, self.labels, self.targets = fn, labels, targets
        self.lo = np.maximum(x - eps, bounds.lower).astype(x.dtype)
        self.hi = np.minimum(x + eps, bounds.upper).astype(x.dtype)
        self.steps, self.momentum, self.rho = steps, momentum, rho
        self.x = np.clip(start, self.lo, self.hi).astype(x.dtype)
        self.eps = eps
        self.shape1 = (-1,) + (1,) * (x.ndim - 1)

    def _eval(self, xs, idx):
        grad, values, pred = self.fn(tf.convert_to_tensor(xs), tf.constant(self.labels[idx]),
                                     tf.constant(self.targets[idx]))
        return grad.numpy(), values.numpy(), pred.numpy()

    def _stalled(self, g, xk, xn, idx):
        """Examples that can never move again (exact, so freezing them changes no result): a
        zero gradient, no momentum (``x_k = x_k-1``) and ``x_k`` the best point, so neither a step
        nor a checkpoint's restart from the best point (whose gradient is this zero) changes it.
        Saturated softmax cross-entropy (defensive distillation) stalls at the start."""
        flat = (len(idx), -1)
        zero = ~np.any(g.reshape(flat) != 0, axis=1)
        if not zero.any():
            return zero
        rows = idx[zero]
        same = (np.all((xn[zero] == xk[zero]).reshape(rows.size, -1), axis=1)
                & np.all((xn[zero] == self.best_x[rows]).reshape(rows.size, -1), axis=1))
        zero[zero] = same
        return zero

    def run(self):
        """Returns ``(success, adv, best_x, best_f)`` (adv = first misclassified iterate)."""
        n = len(self.x)
        every = np.arange(n)
        x = self.x
        grad, f, pred = self._eval(x, every)
        success = pred != self.labels
        adv = x.copy()
        best_x, best_f, best_grad = x.copy(), f.copy(), grad.copy()
        self.best_x = best_x
        active = ~success
        eta = np.full(n, 2.0 * self.eps, np.float32)
        x_prev = x.copy()
        f_cur = f.copy()
        increases = np.zeros(n, np.int64)
        f_best_last = best_f.copy()
        reduced_last = np.zeros(n, bool)
        marks = checkpoints(self.steps)
        last_mark = 0
        for k in range(self.steps):
            idx = np.flatnonzero(active)
            if idx.size == 0:
                break
            a = self.momentum if k > 0 else 1.0
            xk = x[idx]
            step = eta[idx].reshape(self.shape1).astype(x.dtype)
            z = np.clip(xk + step * np.sign(grad[idx]).astype(x.dtype), self.lo[idx],
                        self.hi[idx])
            xn = xk + a * (z - xk) + (1.0 - a) * (xk - x_prev[idx])
            xn = np.clip(xn, self.lo[idx], self.hi[idx]).astype(x.dtype)
            x_prev[idx] = xk
            x[idx] = xn
            g, fk, pk = self._eval(xn, idx)
            grad[idx] = g
            increases[idx] += fk > f_cur[idx]
            f_cur[idx] = fk
            better = fk > best_f[idx]
            rows = idx[better]
            best_x[rows], best_f[rows], best_grad[rows] = xn[better], fk[better], g[better]
            hit = pk != self.labels[idx]
            adv[idx[hit]] = xn[hit]
            success[idx[hit]] = True
            active[idx[hit]] = False
            active[idx[self._stalled(g, xk, xn, idx)]] = False
            if k + 1 in marks:
                span = k + 1 - last_mark
                cond1 = increases < self.rho * span
                cond2 = ~reduced_last & (best_f <= f_best_last)
                halve = (cond1 | cond2) & active
                eta[halve] /= 2.0
                x[halve] = best_x[halve]
                x_prev[halve] = best_x[halve]
                grad[halve] = best_grad[halve]
                f_cur[halve] = best_f[halve]
                reduced_last = halve
                f_best_last = best_f.copy()
                increases[:] = 0
                last_mark = k + 1
        return success, adv, best_x, best_f


def _start(arr: np.ndarray, eps: float, seed: int, rank: int, restart: int) -> np.ndarray:
    """AutoAttack's random start ``x + eps * t / max|t|``, ``t ~ U(-1, 1)`` per example, drawn
    for the whole batch from ``default_rng((seed, rank, restart))`` (so an example's start does
    not depend on the chunking or on which examples are still attacked)."""
    t = np.random.default_rng((seed, rank, restart)).uniform(-1.0, 1.0, size=arr.shape)
    scale = np.max(np.abs(t), axis=tuple(range(1, arr.ndim)), keepdims=True)
    return (arr + eps * t / np.maximum(scale, 1e-12)).astype(arr.dtype)


def _targets(model, arr: np.ndarray, labels: np.ndarray, rank: int, batch_size: int):
    """Per example, the class other than ``labels`` with the ``rank``-th highest clean logit."""
    logits = np.concatenate([G.logits(model, tf.convert_to_tensor(arr[part])).numpy()
                             for part in G.chunks(len(arr), batch_size)])
    logits[np.arange(len(arr)), labels] = -np.inf
    order = np.argsort(-logits, axis=1, kind="stable")
    return order[:, rank - 1].astype(np.int32)


def apgd(model: ModelFn, x: TensorLike, eps: float, *, bounds, y: TensorLike | None = None,
         loss: str = "ce", steps: int = 100, restarts: int = 1, n_targets: int = 9,
         momentum: float = MOMENTUM, rho: float = RHO, seed: int = 0,
         batch_size: int = 1000) -> tf.Tensor:
    """L∞ APGD (Croce & Hein, ICML 2020): APGD-CE, APGD-DLR, or APGD-T (``"dlr_targeted"``).

    ``steps`` momentum steps with the step-size schedule and best-point restarts of the module
    docstring, from ``restarts`` random starts (and, targeted, for each of ``n_targets``
    target classes), on the examples still correctly classified. Per example the first
    misclassified iterate, else the iterate with the highest objective.

    Scaling: the per-example objectives are summed, so each example's gradient is its own;
    the result does not depend on ``batch_size`` (up to float rounding of batched kernels).
    Cost: at most ``steps * restarts * n_runs`` gradients per example (``n_runs = n_targets``
    targeted, else 1).

    Args:
        model: a Keras model (called with ``training=False``) or a callable returning logits.
        x: input batch within ``bounds``, any float dtype, any size.
        eps: L∞ radius in the units of ``x``; ``eps=0`` returns ``x``.
        bounds: ``(lower, upper)`` pixel range; every iterate is clipped to it.
        y: true labels; ``None`` uses the model's argmax predictions.
        loss: ``"ce"``, ``"dlr"`` (K >= 3) or ``"dlr_targeted"`` (K >= 4).
        steps: iterations per run (>= 1; AutoAttack: 100).
        restarts: random starts per run (>= 1).
        n_targets: targeted only: target classes tried, the highest clean logits first
            (1 .. K-1; AutoAttack: 9).
        momentum: ``alpha`` in (0, 1] (0.75 in the paper; 1 = no momentum).
        rho: checkpoint condition 1 in (0, 1] (0.75 in the paper).
        seed: seed of the random starts (run ``(target rank, restart)`` uses
            ``default_rng((seed, rank, restart))``; rank 0 untargeted).
        batch_size: examples per chunk.

    Returns:
        ``tf.Tensor`` of adversarial examples, same shape and float dtype as ``x``, with
        ``|x_adv - x| <= eps`` and values within ``bounds``.

    Raises:
        ValueError: negative or non-finite ``eps``, reversed bounds, ``x`` outside ``bounds``,
            wrong shape for the model, labels out of range or of the wrong length, unknown
            ``loss``, too few classes for the loss, ``steps``/``restarts``/``batch_size`` < 1,
            ``n_targets`` outside 1 .. K-1, ``momentum``/``rho`` outside (0, 1], negative
            ``seed``.
        TypeError: integer ``x``, non-integer labels.
    """
    bounds = _checks.as_bounds(bounds)
    eps = _checks.check_eps(eps)
    loss = _checks.as_choice(loss, APGDLoss, name="loss")
    steps, restarts, batch_size, n_targets = G.check_positive_ints(
        steps=steps, restarts=restarts, batch_size=batch_size, n_targets=n_targets)
    momentum = _checks.check_fraction(momentum, name="momentum")
    rho = _checks.check_fraction(rho, name="rho")
    seed = _checks.check_seed(seed)
    arr = G.check_model_input(model, x, bounds=bounds)
    k = G.n_classes(model, arr)
    need = {APGDLoss.CE: 2, APGDLoss.DLR: 3, APGDLoss.DLR_TARGETED: 4}[loss]
    if k < need:
        raise ValueError(f"loss {loss.value!r} needs a model with >= {need} classes, received "
                         f"a model with {k}.")
    targeted = loss is APGDLoss.DLR_TARGETED
    if targeted and n_targets > k - 1:
        raise ValueError(f"n_targets must be between 1 and {k - 1} (the classes other than y), "
                         f"received {n_targets}.")
    if y is not None:
        labels = _checks.check_labels(y, n_classes=k, n_examples=len(arr)).astype(np.int32)
    else:
        labels = predict_labels(model, arr, batch_size=batch_size).astype(np.int32)
    out = arr.copy()
    if eps == 0:
        return G.as_output(out, arr)

    fn = G.compiled(model, f"apgd_{loss.value}", arr.shape[1:], arr.dtype, _BUILDERS[loss])
    best_f = np.full(len(arr), -np.inf, np.float32)
    done = predict_labels(model, arr, batch_size=batch_size) != labels
    ranks = range(1, n_targets + 1) if targeted else (0,)
    for rank in ranks:
        targets = (_targets(model, arr, labels, rank, batch_size) if targeted
                   else np.zeros(len(arr), np.int32))
        for restart in range(restarts):
            todo = np.flatnonzero(~done)
            if todo.size == 0:
                break
            start = _start(arr, eps, seed, rank, restart)
            for part in G.chunks(todo.size, batch_size):
                rows = todo[part]
                run = _Run(fn, arr[rows], start[rows], labels[rows], targets[rows], eps, bounds,
                           steps, momentum, rho)
                success, adv, bx, bf = run.run()
                out[rows[success]] = adv[success]
                done[rows[success]] = True
                keep = ~success & (bf > best_f[rows])
                out[rows[keep]], best_f[rows[keep]] = bx[keep], bf[keep]
    return G.as_output(out, arr)
