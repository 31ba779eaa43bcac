"""Tests of gradreg_tf.attacks.pgd: L∞ PGD with restarts, cross-entropy or margin loss.

``pgd`` is checked against two references written here from its documented semantics: a plain
eager TensorFlow loop (whole batch every step, no freezing, no tf.function) and a float64
numpy loop on a linear model whose margin gradient is ``W[:, j*] - W[:, y]``; and for its
invariants (eps ball, bounds, eps=0 identity, more steps/restarts never help the model).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradreg_tf import gradients
from gradreg_tf.attacks import fgsm, pgd, predict_labels
from gradreg_tf.attacks.pgd import default_step_size

SHAPE = (4, 4, 1)
K = 3


def linear_model(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    w = (scale * rng.normal(size=(16, K))).astype(np.float32)
    b = (0.1 * rng.normal(size=K)).astype(np.float32)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(K)])
    model.layers[-1].set_weights([w, b])
    return model, w.astype(np.float64), b.astype(np.float64)


def mlp(seed=0, hidden=12):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                             keras.layers.Dense(hidden, activation="relu"),
                             keras.layers.Dense(K)])


def rand_images(n=30, seed=1, dtype=np.float32):
    return np.random.default_rng(seed).uniform(0, 1, size=(n,) + SHAPE).astype(dtype)


def noise(seed, restart, shape, eps):
    """The documented random start: default_rng((seed, restart)).uniform(-eps, eps)."""
    return np.random.default_rng((seed, restart)).uniform(-eps, eps, size=shape)


# ----------------------------------------------------------------------------- references
def eager_reference(model, x, eps, *, labels, targeted, loss, steps, step, restarts,
                    random_start=True, seed=0, lower=0.0, upper=1.0):
    """PGD as documented, written plainly: every example takes every step of every restart."""
    n = len(x)
    best_x, best_obj = x.copy(), np.full(n, -np.inf, np.float32)
    done = np.zeros(n, bool)
    lo, hi = np.maximum(x - np.float32(eps), lower), np.minimum(x + np.float32(eps), upper)
    sign = -1.0 if targeted else 1.0
    for r in range(restarts):
        xc = x.copy()
        if random_start:
            xc = np.clip(x + noise(seed, r, x.shape, eps).astype(np.float32), lower, upper)
        for t in range(steps + 1):
            xt = tf.constant(xc)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                z = model(xt, training=False)
                lab = tf.constant(labels, tf.int32)
                if loss == "ce":
                    obj = sign * tf.nn.sparse_softmax_cross_entropy_with_logits(lab, z)
                else:
                    zy = tf.gather(z, lab, batch_dims=1)
                    others = tf.where(tf.one_hot(lab, K) > 0, -np.inf, z)
                    obj = sign * (tf.reduce_max(others, axis=1) - zy)
                total = tf.reduce_sum(obj)
            grad = tape.gradient(total, xt).numpy()
            obj = obj.numpy()
            pred = np.argmax(z.numpy(), axis=1)
            success = (pred == labels) if targeted else (pred != labels)
            for i in np.flatnonzero(~done):
                if success[i] or obj[i] > best_obj[i]:
                    best_x[i], best_obj[i] = xc[i], obj[i]
                done[i] |= success[i]
            if t == steps:
                break
            xc = np.clip(xc + np.float32(step) * np.sign(grad), lo, hi)
    return best_x


def numpy_linear_margin(w, b, x, eps, *, labels, steps, step, restarts, seed=0):
    """float64 PGD on the margin of a linear model (closed-form gradient), untargeted."""
    n = len(x)
    flat0 = x.reshape(n, -1).astype(np.float64)
    out, success = flat0.copy(), np.zeros(n, bool)
    for i in range(n):
        y, best = labels[i], -np.inf
        for r in range(restarts):
            start = np.clip(flat0[i] + noise(seed, r, x.shape, eps).reshape(n, -1)[i], 0, 1)
            v = start
            for t in range(steps + 1):
                z = v @ w + b
                others = np.where(np.arange(K) == y, -np.inf, z)
                j = int(np.argmax(others))
                m = z[j] - z[y]
                if m > 0 or m > best:
                    out[i], best = v, m
                if m > 0:
                    success[i] = True
                    break
                if t < steps:
                    v = np.clip(np.clip(v + step * np.sign(w[:, j] - w[:, y]),
                                        flat0[i] - eps, flat0[i] + eps), 0, 1)
            if success[i]:
                break
    return out.reshape(x.shape), success


# ----------------------------------------------------------------------------- agreement
@pytest.mark.parametrize("loss", ["ce", "margin"])
@pytest.mark.parametrize("targeted", [False, True])
def test_matches_eager_reference(loss, targeted):
    model = mlp(seed=3)
    x = rand_images(40, seed=3)
    pred = predict_labels(model, x)
    labels = (pred + 1) % K if targeted else pred
    kwargs = dict(steps=6, restarts=3, seed=5)
    eps, step = 0.15, 0.04
    out = pgd(model, x, eps, bounds=(0, 1), loss=loss, step_size=step, batch_size=16,
              **({"y_target": labels} if targeted else {"y": labels}), **kwargs).numpy()
    ref = eager_reference(model, x, eps, labels=labels, targeted=targeted, loss=loss, step=step,
                          **kwargs)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    # a non-trivial case: some examples succeed, some do not
    hit = predict_labels(model, out) == labels
    success = hit if targeted else ~hit
    assert 0 < np.mean(success) < 1


def test_margin_pgd_matches_numpy_on_a_linear_model():
    model, w, b = linear_model(seed=4)
    x = rand_images(30, seed=4)
    y = predict_labels(model, x)
    eps, step = 0.1, 0.03
    out = pgd(model, x, eps, bounds=(0, 1), y=y, loss="margin", steps=8, step_size=step,
              restarts=2, seed=1).numpy()
    ref, success = numpy_linear_margin(w, b, x, eps, labels=y, steps=8, step=step, restarts=2,
                                       seed=1)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_array_equal(predict_labels(model, out) != y, success)
    assert 0 < np.mean(success) < 1


def test_default_step_size_and_documented_default():
    assert default_step_size(0.3, 40) == pytest.approx(0.01875)
    model = mlp(seed=2)
    x = rand_images(10, seed=2)
    a = pgd(model, x, 0.2, bounds=(0, 1), steps=5).numpy()
    b = pgd(model, x, 0.2, bounds=(0, 1), steps=5, step_size=2.5 * 0.2 / 5).numpy()
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("loss", ["ce", "margin"])
@pytest.mark.parametrize("eps, bounds", [(0.05, (0, 1)), (0.3, (0, 1)), (0.4, (-0.5, 0.5))])
def test_stays_in_the_eps_ball_and_the_bounds(loss, eps, bounds):
    model = mlp(seed=1)
    x = rand_images(25, seed=6) * (bounds[1] - bounds[0]) + bounds[0]
    out = pgd(model, x, eps, bounds=bounds, loss=loss, steps=10, step_size=eps / 2,
              restarts=2).numpy()
    assert out.min() >= bounds[0] and out.max() <= bounds[1]
    assert np.max(np.abs(out - x)) <= eps + 1e-6
    assert np.max(np.abs(out - x)) > 0.9 * eps  # it does use the ball


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_eps_zero_is_the_identity(loss):
    model = mlp(seed=1)
    x = rand_images(12, seed=7)
    np.testing.assert_array_equal(pgd(model, x, 0.0, bounds=(0, 1), loss=loss).numpy(), x)
    np.testing.assert_array_equal(
        pgd(model, x, 0.0, bounds=(0, 1), loss=loss, step_size=0.1, restarts=3,
            y_target=np.zeros(12, int)).numpy(), x)


def _successes(model, x, y, **kwargs):
    return predict_labels(model, pgd(model, x, 0.08, bounds=(0, 1), y=y, **kwargs)) != y


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_more_steps_or_restarts_never_help_the_model(loss):
    model = mlp(seed=8)
    x = rand_images(60, seed=8)
    y = predict_labels(model, x)
    steps = [_successes(model, x, y, loss=loss, steps=s, step_size=0.02, seed=3)
             for s in (1, 3, 10)]
    restarts = [_successes(model, x, y, loss=loss, steps=3, step_size=0.02, restarts=r, seed=3)
                for r in (1, 2, 5)]
    for runs in (steps, restarts):
        for fewer, more in zip(runs, runs[1:]):
            assert np.all(more[fewer])  # every success stays a success
        assert np.sum(runs[-1]) > np.sum(runs[0])  # and more effort finds new ones here


def test_restarts_keep_the_first_success_and_add_only_new_ones():
    model = mlp(seed=9)
    x = rand_images(40, seed=9)
    y = predict_labels(model, x)
    one = pgd(model, x, 0.06, bounds=(0, 1), y=y, steps=3, restarts=1, seed=2).numpy()
    three = pgd(model, x, 0.06, bounds=(0, 1), y=y, steps=3, restarts=3, seed=2).numpy()
    first = predict_labels(model, one) != y
    np.testing.assert_array_equal(three[first], one[first])


def test_batch_size_does_not_change_the_result():
    model = mlp(seed=10)
    x = rand_images(23, seed=10)
    a = pgd(model, x, 0.1, bounds=(0, 1), steps=5, restarts=2, batch_size=4).numpy()
    b = pgd(model, x, 0.1, bounds=(0, 1), steps=5, restarts=2).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_pgd_beats_fgsm_and_margin_sees_through_a_saturated_softmax():
    model, _, _ = linear_model(scale=500.0)  # softmax saturated: the CE gradient is exactly 0
    x = rand_images(20, seed=11)
    y = predict_labels(model, x)
    grad, _, _ = gradients.loss_gradient(model, tf.constant(x), tf.constant(y, tf.int32))
    flat = np.all(grad.numpy().reshape(20, -1) == 0, axis=1)
    assert np.mean(flat) > 0.5
    ce = pgd(model, x, 0.2, bounds=(0, 1), y=y, loss="ce", random_start=False).numpy()
    np.testing.assert_array_equal(ce[flat], x[flat])  # a fixed point from the first step
    mg = pgd(model, x, 0.2, bounds=(0, 1), y=y, loss="margin", random_start=False)
    assert np.mean(predict_labels(model, mg) == y) < 0.2
    small = mlp(seed=12)
    xs = rand_images(60, seed=12)
    ys = predict_labels(small, xs)
    acc_fgsm = np.mean(predict_labels(small, fgsm(small, xs, 0.1, bounds=(0, 1), y=ys)) == ys)
    acc_pgd = np.mean(predict_labels(small, pgd(small, xs, 0.1, bounds=(0, 1), y=ys)) == ys)
    assert acc_pgd < acc_fgsm


def test_conv_batch_norm_model_when_every_example_is_frozen_early():
    # all examples broken or stalled before the last step: no forward pass on an empty batch
    # (oneDNN's batch norm rejects one)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(), keras.layers.ReLU(),
        keras.layers.Conv2D(6, 3, padding="same"), keras.layers.BatchNormalization(),
        keras.layers.Flatten(), keras.layers.Dense(K)])
    x = np.random.default_rng(16).uniform(0, 1, (10, 8, 8, 1)).astype(np.float32)
    y = predict_labels(model, x)
    out = pgd(model, x, 1.0, bounds=(0, 1), y=y, steps=3, step_size=0.5)
    assert np.all(predict_labels(model, out) != y)


def test_none_labels_use_predictions_and_dtype_is_kept():
    model = mlp(seed=13)
    x = rand_images(9, seed=13, dtype=np.float64)
    a = pgd(model, x, 0.1, bounds=(0, 1), steps=4)
    assert a.dtype == tf.float64
    b = pgd(model, x, 0.1, bounds=(0, 1), steps=4, y=predict_labels(model, x))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_one_trace_per_loss_and_eager_agrees():
    model = mlp(seed=14)
    for n, eps, targeted in [(5, 0.1, False), (7, 0.2, True), (3, 0.0, False)]:
        kw = {"y_target": np.zeros(n, int)} if targeted else {}
        pgd(model, rand_images(n, seed=n), eps, bounds=(0, 1), steps=3, **kw)
        pgd(model, rand_images(n, seed=n), eps, bounds=(0, 1), steps=2, loss="margin", **kw)
    counts = {k[0]: f.experimental_get_tracing_count()
              for k, f in gradients._CACHE[model].items()}
    assert counts["pgd_ce"] == 1 and counts["pgd_margin"] == 1, counts
    x = rand_images(8, seed=15)
    graph = pgd(model, x, 0.15, bounds=(0, 1), steps=4, restarts=2).numpy()
    tf.config.run_functions_eagerly(True)
    try:
        eager = pgd(model, x, 0.15, bounds=(0, 1), steps=4, restarts=2).numpy()
    finally:
        tf.config.run_functions_eagerly(False)
    np.testing.assert_array_equal(graph, eager)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": -0.1}, "eps must be a finite number >= 0"),
        ({"eps": float("inf")}, "eps"),
        ({"bounds": (1, 0)}, "lower < upper"),
        ({"x_scale": 2.0}, "outside bounds"),
        ({"steps": 0}, "steps must be an integer >= 1, received 0"),
        ({"restarts": 0}, "restarts must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"step_size": -1.0}, "step_size must be a finite number >= 0"),
        ({"restarts": 2, "random_start": False}, "restarts > 1 needs random_start"),
        ({"seed": -1}, "seed must be an integer >= 0, received -1"),
        ({"loss": "hinge"}, r"loss must be one of \['ce', 'margin'\], received 'hinge'"),
        ({"y": [0] * 5, "y_target": [1] * 5}, "received both"),
        ({"y": [0, 1, 3, 0, 1]}, r"y must be in \[0, 2\]"),
        ({"y_target": [0, 1]}, "2 labels but the batch has 5"),
        ({"x_slice": True}, r"shape \(batch, 4, 4, 1\)"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs, match):
    model = mlp()
    kwargs = dict(kwargs)
    x = rand_images(5) * kwargs.pop("x_scale", 1.0)
    if kwargs.pop("x_slice", False):
        x = x[:, :3]
    args = {"eps": kwargs.pop("eps", 0.1), "bounds": kwargs.pop("bounds", (0, 1))}
    with pytest.raises(ValueError, match=match):
        pgd(model, x, args["eps"], bounds=args["bounds"], **kwargs)


def test_bad_types_raise_type_error():
    model = mlp()
    with pytest.raises(TypeError, match="floating dtype"):
        pgd(model, (rand_images(3) * 255).astype(np.uint8), 0.1, bounds=(0, 255))
    with pytest.raises(TypeError, match="integer labels"):
        pgd(model, rand_images(3), 0.1, bounds=(0, 1), y=[0.5, 1, 2])
    with pytest.raises(TypeError, match="random_start must be True or False"):
        pgd(model, rand_images(3), 0.1, bounds=(0, 1), random_start="yes")
    with pytest.raises(TypeError):
        pgd(model, rand_images(3), 0.1, bounds=(0, 1), clip_min=0)  # unknown keyword
