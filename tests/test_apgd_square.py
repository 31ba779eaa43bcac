"""Tests of gradreg_tf.attacks.apgd and gradreg_tf.attacks.square.

Strength is checked against an independent reference written here in NumPy, not against ART:
ART would be an optional test dependency (skipped where missing, so the test could silently not
run) and its APGD is a re-implementation of the same code we follow. The reference attacks a
small softmax-linear model ``z = flatten(x) @ W + b`` whose input gradient is analytic, so the
reference shares no code with the library (no TensorFlow, no gradient tape): APGD is transcribed
from the structure of the authors' AutoAttack code (``check_oscillation`` over a sliding window,
step halving and return to the best point), the Square Attack from the authors' per-image loop.
Our attacks must leave an accuracy no higher than the reference's plus 2 points (300 examples:
one standard error of a random-start difference is about 1-2 points). The bench
(``bench/attacks.py``) compares both against ART on the shipped MNIST models.
"""

import importlib

import keras
import numpy as np
import pytest

from gradreg_tf.attacks import apgd, predict_labels, square
from gradreg_tf.attacks.apgd import checkpoints
from gradreg_tf.attacks.square import p_schedule

SHAPE = (6, 6, 1)
K = 5
N = 300
BOUNDS = (0.0, 1.0)


@pytest.fixture(scope="module")
def linear():
    """A softmax-linear model on 6x6 images fitted to a random linear rule (~90% accurate)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (N,) + SHAPE).astype(np.float32)
    w_true = rng.normal(size=(36, K))
    y = np.argmax(x.reshape(N, -1) @ w_true, axis=1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(K)])
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=40, batch_size=50, verbose=0)
    w, b = (np.asarray(v, np.float64) for v in model.layers[-1].get_weights())
    return model, x, y, w, b


# ------------------------------------------------------------------ NumPy references
def _logits(w, b, x):
    return x.reshape(len(x), -1).astype(np.float64) @ w + b


def _dlr_and_grad(w, b, x, y):
    """AutoAttack's DLR loss -(z_y - max_{i≠y} z_i) / (z_π1 - z_π3 + 1e-12) and its gradient."""
    z = _logits(w, b, x)
    n = len(x)
    order = np.argsort(-z, axis=1)
    other = z.copy()
    other[np.arange(n), y] = -np.inf
    j = np.argmax(other, axis=1)
    num = z[np.arange(n), y] - z[np.arange(n), j]
    den = z[np.arange(n), order[:, 0]] - z[np.arange(n), order[:, 2]] + 1e-12
    loss = -num / den
    # d loss / d z: -(e_y - e_j) / den + num / den^2 (e_π1 - e_π3)
    dz = np.zeros_like(z)
    dz[np.arange(n), y] -= 1 / den
    dz[np.arange(n), j] += 1 / den
    dz[np.arange(n), order[:, 0]] += num / den ** 2
    dz[np.arange(n), order[:, 2]] -= num / den ** 2
    return loss, (dz @ w.T).reshape(x.shape)


def reference_apgd_dlr(w, b, x, y, eps, n_iter=100, seed=0):
    """APGD-DLR after the structure of AutoAttack's ``APGDAttack.attack_single_run``."""
    rng = np.random.default_rng(seed + 1000)
    n = len(x)
    shape1 = (-1, 1, 1, 1)
    n_iter_2, n_iter_min, size_decr = (max(int(p * n_iter), 1) for p in (0.22, 0.06, 0.03))
    t = rng.uniform(-1, 1, x.shape)
    x_adv = np.clip(x + eps * t / np.abs(t).reshape(n, -1).max(1).reshape(shape1), 0, 1)
    x_best_adv = x_adv.copy()
    loss_steps = np.zeros((n_iter, n))
    loss, grad = _dlr_and_grad(w, b, x_adv, y)
    acc = np.argmax(_logits(w, b, x_adv), 1) == y
    grad_best, loss_best = grad.copy(), loss.copy()
    x_best = x_adv.copy()
    step = 2 * eps * np.ones((n, 1, 1, 1))
    x_adv_old = x_adv.copy()
    k = n_iter_2
    counter3 = 0
    loss_best_last_check = loss_best.copy()
    reduced_last_check = np.zeros(n, bool)
    for i in range(n_iter):
        grad2 = x_adv - x_adv_old
        x_adv_old = x_adv.copy()
        a = 0.75 if i > 0 else 1.0
        x1 = np.clip(np.clip(x_adv + step * np.sign(grad), x - eps, x + eps), 0, 1)
        x1 = np.clip(np.clip(x_adv + (x1 - x_adv) * a + grad2 * (1 - a), x - eps, x + eps), 0, 1)
        x_adv = x1
        loss, grad = _dlr_and_grad(w, b, x_adv, y)
        pred = np.argmax(_logits(w, b, x_adv), 1) == y
        x_best_adv[~pred] = x_adv[~pred]
        acc &= pred
        loss_steps[i] = loss
        better = loss > loss_best
        x_best[better], grad_best[better], loss_best[better] = (
            x_adv[better], grad[better], loss[better])
        counter3 += 1
        if counter3 == k:
            increases = np.zeros(n)
            for c in range(k):
                if i - c - 1 >= 0:
                    increases += loss_steps[i - c] > loss_steps[i - c - 1]
            osc = increases <= k * 0.75
            no_impr = ~reduced_last_check & (loss_best_last_check >= loss_best)
            osc |= no_impr
            reduced_last_check = osc.copy()
            loss_best_last_check = loss_best.copy()
            step[osc] /= 2.0
            x_adv[osc], grad[osc] = x_best[osc], grad_best[osc]
            counter3 = 0
            k = max(k - size_decr, n_iter_min)
    return x_best_adv, acc


def reference_square(w, b, x, y, eps, n_iters=1000, p_init=0.3, seed=0):
    """The authors' ``square_attack_linf`` (per-image loop), NHWC."""
    rng = np.random.default_rng(seed + 2000)
    n, h, wd, c = x.shape

    def margin(xs, ys):
        z = _logits(w, b, xs)
        own = z[np.arange(len(xs)), ys]
        z[np.arange(len(xs)), ys] = -np.inf
        return own - z.max(1)

    x_best = np.clip(x + eps * rng.choice([-1, 1], size=(n, 1, wd, c)), 0, 1)
    m_min = margin(x_best, y)
    for i_iter in range(n_iters - 1):
        idx = np.flatnonzero(m_min > 0)
        if idx.size == 0:
            break
        x_curr, x_best_curr = x[idx], x_best[idx]
        deltas = x_best_curr - x_curr
        p = p_schedule(p_init, i_iter, n_iters)
        s = min(max(int(round(np.sqrt(p * h * wd))), 1), h - 1)
        for j in range(idx.size):
            ch, cw = rng.integers(0, h - s), rng.integers(0, wd - s)
            win = (j, slice(ch, ch + s), slice(cw, cw + s))
            while np.all(np.abs(np.clip(x_curr[win] + deltas[win], 0, 1) - x_best_curr[win])
                         < 1e-7):
                deltas[win] = rng.choice([-eps, eps], size=(1, 1, c))
        x_new = np.clip(x_curr + deltas, 0, 1)
        m = margin(x_new, y[idx])
        better = m < m_min[idx]
        m_min[idx[better]] = m[better]
        x_best[idx[better]] = x_new[better]
    return x_best, m_min > 0


# ------------------------------------------------------------------ strength vs reference
@pytest.mark.parametrize("eps", [0.03, 0.06])
def test_apgd_dlr_at_least_as_strong_as_the_numpy_reference(linear, eps):
    model, x, y, w, b = linear
    _, ref_robust = reference_apgd_dlr(w, b, x, y, eps)
    ours = apgd(model, x, eps, bounds=BOUNDS, y=y, loss="dlr").numpy()
    acc = np.mean(predict_labels(model, ours) == y)
    assert 0.2 < np.mean(ref_robust) < 0.85, np.mean(ref_robust)  # a regime where steps matter
    assert acc <= np.mean(ref_robust) + 0.02, (acc, np.mean(ref_robust))


def test_apgd_targeted_and_ce_not_weaker_than_the_reference_dlr(linear):
    model, x, y, w, b = linear
    _, ref_robust = reference_apgd_dlr(w, b, x, y, 0.05)
    for loss in ("ce", "dlr_targeted"):
        ours = apgd(model, x, 0.05, bounds=BOUNDS, y=y, loss=loss, n_targets=3).numpy()
        acc = np.mean(predict_labels(model, ours) == y)
        assert acc <= np.mean(ref_robust) + 0.02, (loss, acc, np.mean(ref_robust))


def test_square_at_least_as_strong_as_the_numpy_reference(linear):
    model, x, y, w, b = linear
    eps = 0.06
    _, ref_robust = reference_square(w, b, x[:150], y[:150], eps, n_iters=300)
    ours = square(model, x[:150], eps, bounds=BOUNDS, y=y[:150], queries=300, p_init=0.3).numpy()
    acc = np.mean(predict_labels(model, ours) == y[:150])
    assert np.mean(ref_robust) < np.mean(predict_labels(model, x[:150]) == y[:150]) - 0.1
    assert acc <= np.mean(ref_robust) + 0.02, (acc, np.mean(ref_robust))


# ------------------------------------------------------------------ bounds, ball, seeds
@pytest.mark.parametrize("attack", ["ce", "dlr", "dlr_targeted", "square"])
def test_bounds_and_eps_ball_respected_and_seedable(linear, attack):
    model, x, y, *_ = linear
    eps = 0.3
    x = np.clip(x[:60] * 1.4 - 0.2, 0.0, 1.0).astype(np.float32)  # many pixels on the bounds

    def run(seed):
        if attack == "square":
            return square(model, x, eps, bounds=BOUNDS, y=y[:60], queries=50, seed=seed).numpy()
        return apgd(model, x, eps, bounds=BOUNDS, y=y[:60], loss=attack, steps=10, n_targets=2,
                    seed=seed).numpy()

    adv = run(3)
    assert adv.dtype == x.dtype and adv.shape == x.shape
    assert np.max(np.abs(adv - x)) <= eps + 1e-6
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    np.testing.assert_array_equal(adv, run(3))
    assert not np.array_equal(adv, run(4))


def test_apgd_freezes_stalled_examples_exactly(linear, monkeypatch):
    """A saturated softmax (logits x 1e4, like defensive distillation at T = 1) has exactly zero
    cross-entropy gradients: APGD freezes those examples at the start (a fraction of the gradient
    evaluations) and returns exactly what it returns without the freeze."""
    model, x, y, *_ = linear
    module = importlib.import_module("gradreg_tf.attacks.apgd")

    def saturated(t):
        return model(t, training=False) * 1e4

    rows = []
    evaluate = module._Run._eval

    def counting(run, xs, idx):
        rows.append(len(idx))
        return evaluate(run, xs, idx)

    monkeypatch.setattr(module._Run, "_eval", counting)
    adv = apgd(saturated, x, 0.05, bounds=BOUNDS, y=y, loss="ce", steps=50).numpy()
    frozen = sum(rows)
    rows.clear()
    monkeypatch.setattr(module._Run, "_stalled", lambda run, g, xk, xn, idx: np.zeros(len(idx), bool))
    unfrozen_adv = apgd(saturated, x, 0.05, bounds=BOUNDS, y=y, loss="ce", steps=50).numpy()
    np.testing.assert_array_equal(adv, unfrozen_adv)
    assert frozen < sum(rows) / 5, (frozen, sum(rows))


def test_eps_zero_returns_the_input(linear):
    model, x, y, *_ = linear
    np.testing.assert_array_equal(apgd(model, x[:5], 0.0, bounds=BOUNDS, y=y[:5]).numpy(), x[:5])
    np.testing.assert_array_equal(square(model, x[:5], 0.0, bounds=BOUNDS, y=y[:5]).numpy(),
                                  x[:5])


def test_checkpoints_and_p_schedule_follow_the_papers():
    assert checkpoints(100) == (22, 41, 57, 70, 80, 87, 93, 99)  # AutoAttack's, 100 iterations
    assert p_schedule(0.8, 0, 10000) == 0.8
    assert p_schedule(0.8, 11, 10000) == 0.4
    assert p_schedule(0.8, 9999, 10000) == 0.8 / 512
    assert p_schedule(0.8, 51, 1000) == 0.8 / 2 ** 4  # 510 of 10,000


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-0.1), "eps"), (dict(eps=float("nan")), "eps"), (dict(loss="hinge"), "loss"),
    (dict(steps=0), "steps"), (dict(restarts=0), "restarts"), (dict(n_targets=0), "n_targets"),
    (dict(loss="dlr_targeted", n_targets=5), "n_targets"), (dict(momentum=0.0), "momentum"),
    (dict(rho=1.5), "rho"), (dict(seed=-1), "seed"), (dict(batch_size=0), "batch_size"),
    (dict(bounds=(1.0, 0.0)), "bound"), (dict(y=np.full(20, K)), "y"),
])
def test_apgd_rejects_bad_input(linear, kwargs, match):
    model, x, y, *_ = linear
    args = dict(eps=0.1, bounds=BOUNDS, y=y[:20]) | kwargs
    eps = args.pop("eps")
    with pytest.raises(ValueError, match=match):
        apgd(model, x[:20], eps, **args)


def test_apgd_rejects_too_few_classes_and_integer_input():
    two = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="classes"):
        apgd(two, np.zeros((2, 3), np.float32), 0.1, bounds=BOUNDS, loss="dlr")
    with pytest.raises(TypeError):
        apgd(two, np.zeros((2, 3), np.int32), 0.1, bounds=BOUNDS)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-0.1), "eps"), (dict(queries=0), "queries"), (dict(p_init=0.0), "p_init"),
    (dict(p_init=2.0), "p_init"), (dict(seed=-1), "seed"), (dict(batch_size=0), "batch_size"),
    (dict(y=np.full(20, -1)), "y"),
])
def test_square_rejects_bad_input(linear, kwargs, match):
    model, x, y, *_ = linear
    args = dict(eps=0.1, bounds=BOUNDS, y=y[:20]) | kwargs
    eps = args.pop("eps")
    with pytest.raises(ValueError, match=match):
        square(model, x[:20], eps, **args)


def test_square_needs_images():
    flat = keras.Sequential([keras.Input((6,)), keras.layers.Dense(K)])
    with pytest.raises(ValueError, match="height, width, channels"):
        square(flat, np.zeros((2, 6), np.float32), 0.1, bounds=BOUNDS)
    with pytest.raises(ValueError, match="outside|within|bounds"):
        square(flat, np.full((2, 6), 2.0, np.float32), 0.1, bounds=BOUNDS)
