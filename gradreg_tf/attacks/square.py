"""L∞ Square Attack: random search with square-shaped updates, gradient-free.

Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box adversarial
attack via random search" (ECCV 2020), Algorithm 1 and §3.1 (L∞). Beyond the paper of Ross &
Doshi-Velez (2018); it is the gradient-free member of AutoAttack and the check that a model's
robustness is not an artefact of its gradients (Carlini et al. 2019, §5.2).

Per example, minimising the margin ``m(x) = z_y - max_{j≠y} z_j`` of the logits:

* start: vertical stripes, ``x + eps * s`` with one random sign ``s`` per (column, channel),
  clipped to ``bounds`` (1 query);
* each iteration ``i`` (1 query): a random ``s x s`` window (``s = max(round(sqrt(p_i h w)), 1)``,
  at most ``h - 1``) of the current perturbation is set to ``±eps`` (one random sign per channel,
  redrawn until the window changes the clipped image); the candidate is kept if its margin is
  strictly lower;
* ``p_i`` follows the paper's schedule: ``p_init`` halved at iterations 10, 50, 200, 500, 1000,
  2000, 4000, 6000, 8000 of a 10,000-query run, rescaled to ``queries``
  (the authors' ``p_selection``);
* an example is frozen as soon as it is misclassified (argmax ≠ y).

The result is the perturbation with the lowest margin (the misclassified one, if found).

Cost: at most ``queries`` forward passes per example (no gradient), O(n · d) numpy per
iteration.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gradreg_tf import _checks
from gradreg_tf import gradients as G
from gradreg_tf.attacks.gradient_sign import predict_labels
from gradreg_tf.types import ModelFn, TensorLike

__all__ = ["DEFAULT_P_INIT", "check_p_init", "p_schedule", "square"]

DEFAULT_P_INIT = 0.05
"""The paper's initial fraction of pixels changed per query for L∞ (§4; AutoAttack uses 0.8)."""

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(p_init: float, iteration: int, queries: int) -> float:
    """The fraction ``p`` of pixels of the square at ``iteration`` of a ``queries`` budget.

    The authors' schedule: ``iteration`` rescaled to a 10,000-query run, ``p_init`` halved
    after each of 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 (so ``p_init / 512`` at the end).
    """
    it = int(iteration / queries * 10000)
    halvings = sum(1 for h in _HALVINGS if it > h)
    return p_init / 2 ** halvings


def _build_margin(get_model, spec):
    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32)], reduce_retracing=True)
    def square_margin(x, labels):
        logits = tf.cast(G.call_logits(get_model(), tf.cast(x, tf.float32)), tf.float32)
        own = tf.one_hot(labels, tf.shape(logits)[-1], on_value=True, off_value=False)
        z_y = tf.reduce_max(tf.where(own, logits, -np.inf), axis=-1)
        z_other = tf.reduce_max(tf.where(own, -np.inf, logits), axis=-1)
        pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return z_y - z_other, pred

    return square_margin


def _margins(fn, x: np.ndarray, labels: np.ndarray, batch_size: int):
    margins, preds = [], []
    for part in G.chunks(len(x), batch_size):
        m, p = fn(tf.convert_to_tensor(x[part]), tf.constant(labels[part]))
        margins.append(m.numpy())
        preds.append(p.numpy())
    return np.concatenate(margins), np.concatenate(preds)


def check_p_init(p_init) -> float:
    """Checks the Square Attack's ``p_init``: a number in (0, 1].

    Raises:
        ValueError: anything else (named in the message).
    """
    return _checks.check_fraction(p_init, name="p_init")


def square(model: ModelFn, x: TensorLike, eps: float, *, bounds, y: TensorLike | None = None,
           queries: int = 1000, p_init: float = DEFAULT_P_INIT, seed: int = 0,
           batch_size: int = 1000) -> tf.Tensor:
    """L∞ Square Attack (Andriushchenko et al., ECCV 2020), untargeted, margin loss.

    Random search over vertices of the eps ball with square updates (module docstring); needs
    only the model's logits, never its gradient, so masked gradients cannot stop it.

    Args:
        model: a Keras model (called with ``training=False``) or a callable returning logits.
        x: images ``(n, height, width, channels)`` within ``bounds``, any float dtype;
            ``height, width >= 2``.
        eps: L∞ radius in the units of ``x``; ``eps=0`` returns ``x``.
        bounds: ``(lower, upper)`` pixel range; the result is clipped to it.
        y: true labels; ``None`` uses the model's argmax predictions.
        queries: model evaluations per example, the start included (>= 1; the paper: 10,000).
        p_init: initial fraction of pixels per square in (0, 1] (the paper's L∞: 0.05).
        seed: seed of the stripes, windows and signs (``numpy.random.default_rng(seed)``).
        batch_size: examples per forward pass.

    Returns:
        ``tf.Tensor`` of adversarial examples, same shape and float dtype as ``x``, with
        ``|x_adv - x| <= eps`` and values within ``bounds``.

    Raises:
        ValueError: negative or non-finite ``eps``, reversed bounds, ``x`` outside ``bounds``,
            ``x`` not of rank 4 or with height/width < 2, wrong shape for the model, labels out
            of range or of the wrong length, ``queries``/``batch_size`` < 1, ``p_init`` outside
            (0, 1], negative ``seed``.
        TypeError: integer ``x``, non-integer labels.
    """
    bounds = _checks.as_bounds(bounds)
    eps = _checks.check_eps(eps)
    queries = G.check_positive_int(queries, name="queries")
    batch_size = G.check_positive_int(batch_size, name="batch_size")
    p_init = check_p_init(p_init)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, received {seed!r}.")
    arr = G.check_model_input(model, x, bounds=bounds)
    if arr.ndim != 4 or min(arr.shape[1:3]) < 2:
        raise ValueError(f"x must be images of shape (n, height, width, channels) with height "
                         f"and width >= 2, received shape {arr.shape}.")
    k = G.n_classes(model, arr)
    if y is not None:
        labels = _checks.check_labels(y, n_classes=k, n_examples=len(arr)).astype(np.int32)
    else:
        labels = predict_labels(model, arr, batch_size=batch_size).astype(np.int32)
    if eps == 0:
        return G.as_output(arr.copy(), arr)

    fn = G.compiled(model, "square_margin", arr.shape[1:], arr.dtype, _build_margin)
    rng = np.random.default_rng(seed)
    n, h, w, c = arr.shape
    dt = arr.dtype
    e = np.asarray(eps, dt)
    lower, upper = np.asarray(bounds.lower, dt), np.asarray(bounds.upper, dt)
    stripes = rng.choice(np.array([-1, 1], dt), size=(n, 1, w, c)) * e
    best = np.clip(arr + stripes, lower, upper)
    best_m, pred = _margins(fn, best, labels, batch_size)
    active = pred == labels
    rows_h = np.arange(h)[None, :, None, None]
    cols_w = np.arange(w)[None, None, :, None]
    for it in range(1, queries):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        s = int(round(np.sqrt(p_schedule(p_init, it, queries) * h * w)))
        s = min(max(s, 1), h - 1, w - 1)
        x0, cur = arr[idx], best[idx]
        delta = cur - x0
        top = rng.integers(0, h - s, size=idx.size)[:, None, None, None]
        left = rng.integers(0, w - s, size=idx.size)[:, None, None, None]
        window = ((rows_h >= top) & (rows_h < top + s) & (cols_w >= left) & (cols_w < left + s))
        pending = np.ones(idx.size, bool)
        new_delta = delta.copy()
        while pending.any():
            p_rows = np.flatnonzero(pending)
            signs = rng.choice(np.array([-1, 1], dt), size=(p_rows.size, 1, 1, c)) * e
            win = window[p_rows]
            new_delta[p_rows] = np.where(win, signs, delta[p_rows])
            cand = np.clip(x0[p_rows] + new_delta[p_rows], lower, upper)
            changed = np.any(win & (np.abs(cand - cur[p_rows]) >= 1e-7), axis=(1, 2, 3))
            pending[p_rows[changed]] = False
            # a window pinned against the bounds on every sign never changes: give up on it
            stuck = ~changed & np.all(~win | (cand == np.clip(x0[p_rows] - new_delta[p_rows],
                                                                 lower, upper)), axis=(1, 2, 3))
            pending[p_rows[stuck]] = False
        cand = np.clip(x0 + new_delta, lower, upper)
        m, pred = _margins(fn, cand, labels[idx], batch_size)
        better = m < best_m[idx]
        best[idx[better]] = cand[better]
        best_m[idx[better]] = m[better]
        active[idx[pred != labels[idx]]] = False
        # a misclassified candidate with a margin not below the best (ties of argmax) is kept too
        fooled = (pred != labels[idx]) & ~better
        best[idx[fooled]] = cand[fooled]
    return G.as_output(best, arr)
