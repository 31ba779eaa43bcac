"""Tests of gradreg_tf.attacks: FGSM, (iterated) TGSM and the pairwise JSMA.

Models are tiny Keras models with known weights: a linear softmax model, for which
``∇x mean CE = (softmax(Wx + b) - onehot(y)) Wᵀ / B`` gives exact FGSM/TGSM directions, and a
small ReLU MLP with dyadic weights, for which every float32 operation of the JSMA is exact so a
plain numpy loop over pixel pairs must agree with ``jsma`` bit for bit.
"""

import gzip
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradreg_tf import gradients
from gradreg_tf.attacks import (JSMAResult, fgsm, fgsm_signs, jsma, predict_labels,
                                random_sign_noise, tgsm)
from gradreg_tf.attacks.jsma import best_pairs
from gradreg_tf.eval import grids

SHAPE = (4, 4, 1)
N_FEATURES = 16
K = 3


# ----------------------------------------------------------------------------- models
def linear_model(seed=0, scale=1.0, zero_pixels=()):
    rng = np.random.default_rng(seed)
    w = (scale * rng.normal(size=(N_FEATURES, K))).astype(np.float32)
    w[list(zero_pixels)] = 0.0
    b = (0.1 * rng.normal(size=K)).astype(np.float32)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(K)])
    model.layers[-1].set_weights([w, b])
    return model, w.astype(np.float64), b.astype(np.float64)


def linear_xent_grad(w, b, x, y):
    """∇x of the batch-mean softmax cross-entropy of a linear model, float64."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    z = flat @ w + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return ((p - np.eye(K)[y]) @ w.T / len(x)).reshape(x.shape)


def dyadic_mlp(seed, hidden=6):
    """ReLU MLP whose weights are multiples of 1/4 in [-1, 1]: float32 arithmetic is exact."""
    rng = np.random.default_rng(seed)
    q = lambda *s: rng.integers(-4, 5, size=s).astype(np.float32) / 4  # noqa: E731
    w1, b1, w2, b2 = q(N_FEATURES, hidden), q(hidden), q(hidden, K), q(K)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(K)])
    model.layers[1].set_weights([w1, b1])
    model.layers[2].set_weights([w2, b2])
    return model, [a.astype(np.float64) for a in (w1, b1, w2, b2)]


def dyadic_images(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 5, size=(n,) + SHAPE) / 4).astype(np.float32)


def rand_images(n=7, seed=1, dtype=np.float32):
    return np.random.default_rng(seed).uniform(0, 1, size=(n,) + SHAPE).astype(dtype)


# ----------------------------------------------------------------------------- reference JSMA
def reference_jsma(params, x, target, *, theta, gamma, lower=0.0, upper=1.0):
    """Obviously-correct cleverhans-2.0 pairwise JSMA for one example (plain loops, float64).

    Deviations from cleverhans kept by ``jsma`` (documented there): stop when no admissible
    pair is left; a negative theta moves features down.
    """
    w1, b1, w2, b2 = params
    x = x.reshape(-1).astype(np.float64).copy()
    nf = len(x)
    increase = theta > 0

    def logits(v):
        return np.maximum(v @ w1 + b1, 0) @ w2 + b2

    def jacobian(v):  # (nf, K): d logit_k / d x_i
        active = (v @ w1 + b1) > 0
        return (w1 * active) @ w2

    domain = {i for i in range(nf) if (x[i] < upper if increase else x[i] > lower)}
    max_iters = math.floor(nf * gamma / 2)
    iteration = 0
    current = int(np.argmax(logits(x)))
    while current != target and iteration < max_iters:
        jac = jacobian(x)
        grads_target = jac[:, target]
        grads_other = sum(jac[:, k] for k in range(jac.shape[1]) if k != target)
        best, pair = 0.0, None
        for p in range(nf):
            for q in range(p + 1, nf):
                if p not in domain or q not in domain:
                    continue
                alpha = grads_target[p] + grads_target[q]
                beta = grads_other[p] + grads_other[q]
                admissible = (alpha > 0 and beta < 0) if increase else (alpha < 0 and beta > 0)
                if admissible and -alpha * beta > best:
                    best, pair = -alpha * beta, (p, q)
        if pair is None:
            break
        for i in pair:
            x[i] = min(upper, x[i] + theta) if increase else max(lower, x[i] - abs(theta))
        domain -= set(pair)
        current = int(np.argmax(logits(x)))
        iteration += 1
    return x, current == target


# ----------------------------------------------------------------------------- FGSM / TGSM
@pytest.mark.parametrize("attack", ["fgsm", "tgsm"])
def test_eps_zero_returns_x(attack):
    model, _, _ = linear_model()
    x = rand_images()
    fn = fgsm if attack == "fgsm" else tgsm
    np.testing.assert_array_equal(fn(model, x, 0.0, bounds=(0, 1)).numpy(), x)


def test_fgsm_matches_closed_form_linear_model():
    model, w, b = linear_model()
    x = rand_images(9)
    y = np.arange(9) % K
    g = linear_xent_grad(w, b, x, y)
    out = fgsm(model, x, 0.1, bounds=(0, 1), y=y).numpy()
    expected = np.clip(x + np.float32(0.1) * np.sign(g).astype(np.float32), 0, 1)
    sure = np.abs(g) > 1e-6  # float32 vs float64 sign can only differ next to zero
    np.testing.assert_array_equal(out[sure], expected[sure])
    assert out.dtype == np.float32


def test_fgsm_gradient_is_of_the_batch_mean():
    model, w, b = linear_model()
    x = rand_images(5)
    y = np.array([0, 1, 2, 0, 1])
    grad, _ = gradients.xent_gradient(model, tf.constant(x), tf.constant(y, tf.int32))
    np.testing.assert_allclose(grad.numpy(), linear_xent_grad(w, b, x, y), rtol=1e-4, atol=1e-8)


def test_fgsm_none_labels_use_predictions():
    model, _, _ = linear_model()
    x = rand_images(8)
    pred = predict_labels(model, x)
    np.testing.assert_array_equal(fgsm(model, x, 0.2, bounds=(0, 1)).numpy(),
                                  fgsm(model, x, 0.2, bounds=(0, 1), y=pred).numpy())


def test_zero_gradient_pixels_stay_put():
    model, _, _ = linear_model(zero_pixels=(0, 5, 7))
    x = rand_images(6)
    out = fgsm(model, x, 0.3, bounds=(0, 1), y=np.zeros(6, int)).numpy().reshape(6, -1)
    flat = x.reshape(6, -1)
    np.testing.assert_array_equal(out[:, [0, 5, 7]], flat[:, [0, 5, 7]])
    assert np.all(out[:, 1] != flat[:, 1])


def test_saturated_softmax_gives_exactly_zero_gradient_and_no_move():
    # The distilled model's situation (SETUP.md §5): the true class has probability 1.0 in
    # float32, so softmax - onehot is exactly 0 and FGSM leaves the examples unchanged.
    model, w, b = linear_model(scale=500.0)
    x = rand_images(6)
    y = predict_labels(model, x)
    np.testing.assert_array_equal(fgsm(model, x, 0.3, bounds=(0, 1), y=y).numpy(), x)


def test_batch_size_changes_only_the_scale():
    model, _, _ = linear_model()
    x = rand_images(7)
    y = np.arange(7) % K
    a = fgsm(model, x, 0.1, bounds=(0, 1), y=y, batch_size=3).numpy()
    b = fgsm(model, x, 0.1, bounds=(0, 1), y=y).numpy()
    np.testing.assert_array_equal(a, b)


def test_fgsm_default_loss_is_the_papers_cross_entropy():
    model, w, b = linear_model(seed=21)
    x = rand_images(9, seed=21)
    y = np.arange(9) % K
    default = fgsm(model, x, 0.1, bounds=(0, 1), y=y).numpy()
    np.testing.assert_array_equal(default, fgsm(model, x, 0.1, bounds=(0, 1), y=y,
                                                loss="ce").numpy())
    assert ("sign_steps", SHAPE, "float32") in gradients._CACHE[model]


def linear_margin_grad(w, b, x, y):
    """∇x of max_{j≠y} z_j - z_y for a linear model: W[:, j*] - W[:, y], float64."""
    z = x.reshape(len(x), -1).astype(np.float64) @ w + b
    others = np.where(np.eye(K, dtype=bool)[y], -np.inf, z)
    j = np.argmax(others, axis=1)
    return (w[:, j] - w[:, y]).T.reshape(x.shape)


def test_margin_fgsm_matches_closed_form_linear_model():
    model, w, b = linear_model(seed=22)
    x = rand_images(12, seed=22)
    y = np.arange(12) % K
    out = fgsm(model, x, 0.1, bounds=(0, 1), y=y, loss="margin").numpy()
    g = linear_margin_grad(w, b, x, y)
    expected = np.clip(x + np.float32(0.1) * np.sign(g).astype(np.float32), 0, 1)
    np.testing.assert_array_equal(out, expected)
    pred = predict_labels(model, x)  # y=None: the first argmax is the label
    np.testing.assert_array_equal(fgsm(model, x, 0.1, bounds=(0, 1), loss="margin").numpy(),
                                  fgsm(model, x, 0.1, bounds=(0, 1), y=pred, loss="margin").numpy())


def test_margin_fgsm_moves_what_a_saturated_softmax_hides():
    model, w, b = linear_model(scale=500.0)
    x = rand_images(12, seed=23)
    y = predict_labels(model, x)
    hidden = np.all(fgsm_signs(model, x, bounds=(0, 1), y=y).reshape(12, -1) == 0, axis=1)
    assert np.mean(hidden) > 0.5  # the chunk-mean CE gradient is exactly zero for these
    np.testing.assert_array_equal(fgsm(model, x, 0.3, bounds=(0, 1), y=y).numpy()[hidden],
                                  x[hidden])
    out = fgsm(model, x, 0.3, bounds=(0, 1), y=y, loss="margin").numpy()[hidden]
    assert np.all(np.any((out != x[hidden]).reshape(len(out), -1), axis=1))
    assert np.mean(predict_labels(model, out) == y[hidden]) < 0.5


def test_margin_fgsm_gradient_is_per_example_so_batch_size_is_irrelevant():
    # weights near the smallest normal float32: a chunk mean (gradient / 11) would flush to 0
    model, _, _ = linear_model(scale=1e-37, seed=24)
    x = rand_images(11, seed=24)
    y = np.arange(11) % K
    a = fgsm(model, x, 0.2, bounds=(0, 1), y=y, loss="margin", batch_size=1).numpy()
    b = fgsm(model, x, 0.2, bounds=(0, 1), y=y, loss="margin", batch_size=1000).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.all(np.any((b != x).reshape(11, -1), axis=1))


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_fgsm_signs_give_fgsm_at_every_eps(loss):
    model, _, _ = linear_model(seed=25)
    x = rand_images(13, seed=25)
    y = np.arange(13) % K
    signs = fgsm_signs(model, x, bounds=(0, 1), y=y, loss=loss, batch_size=5)
    assert set(np.unique(signs)) <= {-1.0, 0.0, 1.0}
    for eps in (0.0, 0.1, 0.45):
        np.testing.assert_array_equal(
            np.clip(x + np.float32(eps) * signs, 0, 1),
            fgsm(model, x, eps, bounds=(0, 1), y=y, loss=loss, batch_size=5).numpy())


@pytest.mark.parametrize("eps", [0.05, 0.3, 0.9])
def test_fgsm_linf_and_bounds(eps):
    model, _, _ = linear_model()
    x = rand_images(10, seed=3) * 0.5 - 0.25  # bounds [-0.5, 0.5]
    out = fgsm(model, x, eps, bounds=(-0.5, 0.5)).numpy()
    assert out.min() >= -0.5 and out.max() <= 0.5
    assert np.max(np.abs(out - x)) <= eps + 1e-6


@pytest.mark.parametrize("steps", [1, 4])
def test_tgsm_linf_bounds_and_no_projection(steps):
    model, _, _ = linear_model()
    x = rand_images(10, seed=4) * 0.6 + 0.2
    out = tgsm(model, x, 0.05, bounds=(0, 1), steps=steps).numpy()
    assert out.min() >= 0 and out.max() <= 1
    dist = np.max(np.abs(out - x))
    assert dist <= steps * 0.05 + 1e-6
    if steps > 1:
        assert dist > 0.05 + 1e-6  # not projected back onto the eps ball


def test_tgsm_single_step_closed_form_and_default_target():
    model, w, b = linear_model()
    x = rand_images(9, seed=5)
    y = np.arange(9) % K
    target = (y + 1) % K
    g = linear_xent_grad(w, b, x, target)
    out = tgsm(model, x, 0.1, bounds=(0, 1), y=y).numpy()
    expected = np.clip(x - np.float32(0.1) * np.sign(g).astype(np.float32), 0, 1)
    sure = np.abs(g) > 1e-6
    np.testing.assert_array_equal(out[sure], expected[sure])
    np.testing.assert_array_equal(out, tgsm(model, x, 0.1, bounds=(0, 1), y_target=target).numpy())
    pred = predict_labels(model, x)
    default = tgsm(model, x, 0.1, bounds=(0, 1)).numpy()
    np.testing.assert_array_equal(
        default, tgsm(model, x, 0.1, bounds=(0, 1), y_target=(pred + 1) % K).numpy())


def test_iterated_tgsm_equals_repeated_single_steps():
    model, _, _ = linear_model()
    x = rand_images(6, seed=6)
    t = np.array([0, 1, 2, 2, 1, 0])
    out = x
    for _ in range(3):
        out = tgsm(model, out, 0.07, bounds=(0, 1), y_target=t).numpy()
    iterated = tgsm(model, x, 0.07, bounds=(0, 1), y_target=t, steps=3).numpy()
    np.testing.assert_array_equal(iterated, out)


def test_iterated_tgsm_reaches_target():
    model, _, _ = linear_model()
    x = rand_images(20, seed=7)
    t = (predict_labels(model, x) + 1) % K
    out = tgsm(model, x, 0.1, bounds=(0, 1), y_target=t, steps=10)
    assert np.mean(predict_labels(model, out) == t) > 0.9


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_other_float_dtypes_keep_their_dtype(dtype):
    model, _, _ = linear_model()
    x = rand_images(5, dtype=dtype)
    y = np.arange(5) % K
    out = fgsm(model, x, 0.25, bounds=(0, 1), y=y)
    assert out.dtype == tf.as_dtype(dtype)
    ref = fgsm(model, x.astype(np.float32), 0.25, bounds=(0, 1), y=y).numpy()
    # same signs: the perturbation direction agrees wherever the float32 result moved
    moved = np.sign(out.numpy().astype(np.float64) - x)
    assert np.mean(moved == np.sign(ref - x.astype(np.float32))) > 0.95
    assert tgsm(model, x, 0.1, bounds=(0, 1), steps=2).dtype == tf.as_dtype(dtype)


def test_tensor_input_and_any_batch_size():
    model, _, _ = linear_model()
    x = rand_images(1)
    out = fgsm(model, tf.constant(x), 0.1, bounds=(0, 1))
    assert out.shape == x.shape
    big = rand_images(2503, seed=9)
    assert fgsm(model, big, 0.1, bounds=(0, 1)).shape == big.shape


def test_no_retracing_across_eps_and_batch_sizes():
    model, _, _ = linear_model(seed=11)
    for eps, n in [(0.1, 5), (0.2, 7), (0.3, 3), (0.0, 9)]:
        fgsm(model, rand_images(n), eps, bounds=(0, 1))
        tgsm(model, rand_images(n), eps, bounds=(0, 1), steps=2)
    mlp, _ = dyadic_mlp(11)
    for n, gamma in [(3, 0.5), (5, 1.0), (2, 0.25)]:
        jsma(mlp, dyadic_images(n, n), y_target=np.zeros(n, int), bounds=(0, 1), gamma=gamma)
    counts = {k[0]: f.experimental_get_tracing_count() for k, f in gradients._CACHE[model].items()}
    assert counts["sign_steps"] == 1, counts
    counts = {k[0]: f.experimental_get_tracing_count() for k, f in gradients._CACHE[mlp].items()}
    assert counts["jsma_step"] == 1, counts


def test_eager_and_tf_function_agree():
    model, _, _ = linear_model(seed=12)
    mlp, _ = dyadic_mlp(3)
    x = rand_images(6, seed=12)
    xd = dyadic_images(6, 12)
    t = np.array([0, 1, 2, 0, 1, 2])

    def run():
        return (fgsm(model, x, 0.1, bounds=(0, 1)).numpy(),
                tgsm(model, x, 0.1, bounds=(0, 1), steps=3).numpy(),
                jsma(mlp, xd, y_target=t, bounds=(0, 1), gamma=1.0).x_adv.numpy())

    graph = run()
    tf.config.run_functions_eagerly(True)
    try:
        eager = run()
    finally:
        tf.config.run_functions_eagerly(False)
    for a, b in zip(graph, eager):
        np.testing.assert_array_equal(a, b)


def test_attacks_call_the_model_in_inference_mode():
    inp = keras.Input(SHAPE)
    h = keras.layers.Flatten()(inp)
    h = keras.layers.Dropout(0.9)(h)
    out = keras.layers.Dense(K)(h)
    model = keras.Model(inp, out)
    x = rand_images(6)
    a = fgsm(model, x, 0.1, bounds=(0, 1)).numpy()
    b = fgsm(model, x, 0.1, bounds=(0, 1)).numpy()
    np.testing.assert_array_equal(a, b)  # dropout off: deterministic


# ----------------------------------------------------------------------------- noise baseline
def test_random_sign_noise_is_eps_times_a_fixed_sign_pattern():
    x = rand_images(20, seed=30) * 0.5 + 0.25  # inside [0.25, 0.75]: no clipping at eps <= 0.25
    a = random_sign_noise(x, 0.1, bounds=(0, 1), seed=4).numpy()
    b = random_sign_noise(x, 0.25, bounds=(0, 1), seed=4).numpy()
    np.testing.assert_allclose(np.abs(a - x), 0.1, atol=1e-6)
    np.testing.assert_array_equal(np.sign(a - x), np.sign(b - x))  # same pattern at every eps
    assert 0.4 < np.mean(a > x) < 0.6
    c = random_sign_noise(x, 0.1, bounds=(0, 1), seed=5).numpy()
    assert np.mean(np.sign(c - x) == np.sign(a - x)) < 0.6
    np.testing.assert_array_equal(random_sign_noise(x, 0.0, bounds=(0, 1)).numpy(), x)
    clipped = random_sign_noise(x, 0.9, bounds=(0, 1)).numpy()
    assert clipped.min() == 0.0 and clipped.max() == 1.0
    assert random_sign_noise(x.astype(np.float64), 0.1, bounds=(0, 1)).dtype == tf.float64


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, x: fgsm(m, x, -0.1, bounds=(0, 1)), "eps must be a finite number >= 0"),
        (lambda m, x: tgsm(m, x, float("nan"), bounds=(0, 1)), "eps"),
        (lambda m, x: fgsm(m, x, 0.1, bounds=(1, 0)), "lower < upper"),
        (lambda m, x: fgsm(m, x * 2, 0.1, bounds=(0, 1)), "outside bounds"),
        (lambda m, x: fgsm(m, x, 0.1, bounds=(0, 1), y=[0, 1, 3, 0, 1]), r"must be in \[0, 2\]"),
        (lambda m, x: fgsm(m, x, 0.1, bounds=(0, 1), y=[0, 1]), "2 labels but the batch has 5"),
        (lambda m, x: fgsm(m, x[0], 0.1, bounds=(0, 1)), "rank 4"),
        (lambda m, x: fgsm(m, x[:, :3], 0.1, bounds=(0, 1)), r"shape \(batch, 4, 4, 1\)"),
        (lambda m, x: fgsm(m, x, 0.1, bounds=(0, 1), batch_size=0), "batch_size"),
        (lambda m, x: fgsm(m, x, 0.1, bounds=(0, 1), loss="cw"),
         r"loss must be one of \['ce', 'margin'\], received 'cw'"),
        (lambda m, x: fgsm_signs(m, x, bounds=(0, 1), loss=None), "loss must be one of"),
        (lambda m, x: random_sign_noise(x, -1, bounds=(0, 1)), "eps must be a finite number"),
        (lambda m, x: random_sign_noise(x, 0.1, bounds=(0, 0.5)), "outside bounds"),
        (lambda m, x: random_sign_noise(x, 0.1, bounds=(0, 1), seed=-2), "seed must be"),
        (lambda m, x: tgsm(m, x, 0.1, bounds=(0, 1), steps=0), "steps"),
        (lambda m, x: tgsm(m, x, 0.1, bounds=(0, 1), y=[0] * 5, y_target=[1] * 5), "received both"),
        (lambda m, x: tgsm(m, x, 0.1, bounds=(0, 1), y_target=[-1] * 5), "y_target must be in"),
        (lambda m, x: jsma(m, x, y_target=[9] * 5, bounds=(0, 1)), "y_target must be in"),
        (lambda m, x: jsma(m, x, y_target=[0] * 5, bounds=(0, 1), gamma=0), "gamma"),
        (lambda m, x: jsma(m, x, y_target=[0] * 5, bounds=(0, 1), theta=0), "theta"),
        (lambda m, x: jsma(m, x, y_target=[0] * 5, bounds=(0, 0.5)), "outside bounds"),
    ],
)
def test_bad_inputs_raise_value_error(call, match):
    model, _, _ = linear_model()
    with pytest.raises(ValueError, match=match):
        call(model, rand_images(5))


def test_bad_types_raise_type_error():
    model, _, _ = linear_model()
    with pytest.raises(TypeError, match="floating dtype"):
        fgsm(model, (rand_images(3) * 255).astype(np.uint8), 0.1, bounds=(0, 255))
    with pytest.raises(TypeError, match="integer labels"):
        fgsm(model, rand_images(3), 0.1, bounds=(0, 1), y=[0.5, 1, 2])
    with pytest.raises(TypeError):
        fgsm(model, rand_images(3), 0.1, bounds=(0, 1), clip_min=0)  # unknown keyword


def _not_logits(kind):
    if kind == "one_logit":
        return keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(1)])
    if kind == "softmax":
        return keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                                 keras.layers.Dense(K, activation="softmax")])
    # a plain callable whose width the static shape cannot tell
    return lambda x: tf.nn.softmax(tf.reshape(x, (-1, N_FEATURES))[:, :K])


NOT_LOGITS_CALLS = {
    "fgsm": lambda m, x: fgsm(m, x, 0.1, bounds=(0, 1)),
    "fgsm_margin": lambda m, x: fgsm(m, x, 0.1, bounds=(0, 1), loss="margin"),
    "fgsm_signs": lambda m, x: fgsm_signs(m, x, bounds=(0, 1)),
    "tgsm": lambda m, x: tgsm(m, x, 0.1, bounds=(0, 1)),
    "tgsm_target": lambda m, x: tgsm(m, x, 0.1, bounds=(0, 1), y_target=[0] * len(x)),
    "jsma": lambda m, x: jsma(m, x, y_target=[0] * len(x), bounds=(0, 1)),
    "pgd": lambda m, x: __import__("gradreg_tf.attacks", fromlist=["pgd"]).pgd(
        m, x, 0.1, bounds=(0, 1), steps=2),
    "accuracy": lambda m, x: grids.accuracy(m, x, [0] * len(x)),
    "gradient_signs": lambda m, x: grids.gradient_signs(m, x, [0] * len(x), bounds=(0, 1)),
}


@pytest.mark.parametrize("kind", ["one_logit", "softmax", "callable_softmax"])
@pytest.mark.parametrize("name", sorted(NOT_LOGITS_CALLS))
def test_models_not_returning_logits_are_refused(name, kind):
    """A single logit makes FGSM/TGSM return x unchanged and JSMA report success; a final
    softmax makes the attacks climb a much flatter function. Both would be silent."""
    with pytest.raises(ValueError, match="at least 2 classes|looks like probabilities"):
        NOT_LOGITS_CALLS[name](_not_logits(kind), rand_images(5))


# ----------------------------------------------------------------------------- JSMA
def test_best_pairs_matches_brute_force_for_any_block_size():
    rng = np.random.default_rng(0)
    for trial in range(6):
        n = int(rng.integers(5, 120))
        m = 4
        if trial % 2:  # small integers: many exact ties
            a = rng.integers(-3, 4, size=(m, n)).astype(np.float32)
            b = rng.integers(-3, 4, size=(m, n)).astype(np.float32)
        else:
            a = rng.normal(size=(m, n)).astype(np.float32)
            b = (-0.8 * a + 0.5 * rng.normal(size=(m, n))).astype(np.float32)
        dom = rng.uniform(size=(m, n)) < 0.8
        expected = []
        for i in range(m):
            ts = a[i][:, None] + a[i][None, :]
            os_ = b[i][:, None] + b[i][None, :]
            ok = (ts > 0) & (os_ < 0) & dom[i][:, None] & dom[i][None, :] & ~np.eye(n, dtype=bool)
            score = np.where(ok, -(ts * os_), np.float32(0))
            score = np.triu(score, 1)
            best = np.argmax(score)  # first maximum in row-major order = smallest (p, q)
            expected.append((best // n, best % n, score.max() > 0))
        for rows in (1, 3, 64):
            p, q, found = best_pairs(a, b, dom, max_block_rows=rows)
            for i, (ep, eq, ef) in enumerate(expected):
                assert bool(found[i]) == ef
                if ef:
                    assert (int(p[i]), int(q[i])) == (ep, eq), (trial, rows, i)


@pytest.mark.parametrize("seed, theta, gamma", [(0, 1.0, 1.0), (1, 1.0, 0.5), (2, 0.5, 1.0),
                                                (3, -1.0, 1.0), (4, -0.5, 0.75)])
def test_jsma_agrees_exactly_with_numpy_reference(seed, theta, gamma):
    model, params = dyadic_mlp(seed)
    x = dyadic_images(12, seed)
    t = np.random.default_rng(seed).integers(0, K, size=12)
    result = jsma(model, x, y_target=t, bounds=(0, 1), theta=theta, gamma=gamma, batch_size=5)
    assert isinstance(result, JSMAResult)
    for i in range(len(x)):
        ref_x, ref_success = reference_jsma(params, x[i], int(t[i]), theta=theta, gamma=gamma)
        np.testing.assert_array_equal(result.x_adv.numpy()[i].reshape(-1), ref_x.astype(np.float32))
        assert bool(result.success[i]) == ref_success
        assert int(result.n_changed[i]) == int(np.sum(ref_x != x[i].reshape(-1)))


def test_jsma_budget_bounds_and_batch_size_independence():
    model, _ = dyadic_mlp(5)
    x = dyadic_images(10, 5)
    t = np.arange(10) % K
    for gamma in (0.25, 0.5):
        r = jsma(model, x, y_target=t, bounds=(0, 1), gamma=gamma)
        budget = 2 * math.floor(N_FEATURES * gamma / 2)
        assert np.all(r.n_changed.numpy() <= budget)
        assert r.x_adv.numpy().min() >= 0 and r.x_adv.numpy().max() <= 1
        r1 = jsma(model, x, y_target=t, bounds=(0, 1), gamma=gamma, batch_size=1)
        np.testing.assert_array_equal(r.x_adv.numpy(), r1.x_adv.numpy())
        pred = predict_labels(model, r.x_adv)
        np.testing.assert_array_equal(r.success.numpy(), pred == t)


def test_jsma_float64_input_gives_the_float32_result_in_float64():
    model, _ = dyadic_mlp(7)
    x = dyadic_images(6, 7)
    t = np.arange(6) % K
    r32 = jsma(model, x, y_target=t, bounds=(0, 1))
    r64 = jsma(model, x.astype(np.float64), y_target=t, bounds=(0, 1))
    assert r64.x_adv.dtype == tf.float64
    np.testing.assert_array_equal(r64.x_adv.numpy(), r32.x_adv.numpy().astype(np.float64))


def test_jsma_other_bounds():
    model, _, _ = linear_model(seed=8)
    x = rand_images(8, seed=8) - 0.5
    r = jsma(model, x, y_target=np.arange(8) % K, bounds=(-0.5, 0.5), gamma=0.5)
    assert r.x_adv.numpy().min() >= -0.5 and r.x_adv.numpy().max() <= 0.5
    moved = r.x_adv.numpy() != x
    np.testing.assert_array_equal(r.x_adv.numpy()[moved], 0.5)  # theta=1 saturates
    assert np.all(r.n_changed.numpy() <= 8)


def test_jsma_target_already_predicted_is_unchanged():
    model, _ = dyadic_mlp(6)
    x = dyadic_images(5, 6)
    r = jsma(model, x, y_target=predict_labels(model, x), bounds=(0, 1))
    assert np.all(r.success.numpy()) and np.all(r.n_changed.numpy() == 0)
    np.testing.assert_array_equal(r.x_adv.numpy(), x)


def _read_idx(path, n):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return arr[:n]


def test_jsma_reaches_target_on_small_trained_mnist_model(data_dir):
    images = _read_idx(data_dir / "mnist" / "train-images-idx3-ubyte.gz", 3000)
    labels = _read_idx(data_dir / "mnist" / "train-labels-idx1-ubyte.gz", 3000).astype(np.int64)
    x = (images.astype(np.float32) / 255.0)[..., None]
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:2900], labels[:2900], batch_size=64, epochs=3, verbose=0)
    xt, yt = x[2900:2930], labels[2900:2930]
    target = (yt + 1) % 10
    r = jsma(model, xt, y_target=target, bounds=(0, 1), gamma=0.25)
    assert np.mean(r.success.numpy()) >= 0.8
    assert np.all(r.n_changed.numpy() <= 2 * math.floor(784 * 0.25 / 2))
    np.testing.assert_array_equal(predict_labels(model, r.x_adv)[r.success.numpy()],
                                  target[r.success.numpy()])
    # white-box FGSM also hurts this model
    adv = fgsm(model, xt, 0.2, bounds=(0, 1), y=yt)
    assert np.mean(predict_labels(model, adv) == yt) < np.mean(predict_labels(model, xt) == yt)
