"""The penalties against their closed form on a linear softmax model (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradreg_tf import penalties

K, D, B = 3, 8, 5


def _linear(seed=0):
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input((2, 4, 1), dtype="float64"), keras.layers.Flatten(dtype="float64"),
                              keras.layers.Dense(K, dtype="float64")])
    w = rng.normal(size=(D, K))
    b = rng.normal(size=(K,))
    model.layers[-1].set_weights([w, b])
    x = rng.uniform(size=(B, 2, 4, 1))
    y = rng.integers(0, K, size=B)
    return model, w, b, x, y


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_double_backprop_closed_form():
    model, w, b, x, y = _linear()
    p = _softmax(x.reshape(B, D) @ w + b)
    grads = (p - np.eye(K)[y]) @ w.T / B  # ∇x of the batch-mean CE, per example
    expected = np.sum(grads**2) / 2
    got = penalties.double_backprop(model, x, y).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(penalties.double_backprop(model, x, y, norm="l1").numpy(),
                               np.abs(grads).sum(), rtol=1e-6)


def test_certainty_sensitivity_closed_form():
    model, w, b, x, _ = _linear(1)
    p = _softmax(x.reshape(B, D) @ w + b)
    grads = (p - 1.0 / K) @ w.T / B
    np.testing.assert_allclose(penalties.certainty_sensitivity(model, x).numpy(),
                               np.sum(grads**2) / 2, rtol=1e-6)


def test_temperature_scales_logits():
    model, w, b, x, y = _linear(2)
    T = 4.0
    p = _softmax((x.reshape(B, D) @ w + b) / T)
    grads = (p - np.eye(K)[y]) @ w.T / (B * T)
    np.testing.assert_allclose(penalties.double_backprop(model, x, y, temperature=T).numpy(),
                               np.sum(grads**2) / 2, rtol=1e-6)


@pytest.mark.parametrize("fn", ["double_backprop", "certainty"])
def test_parameter_gradient_matches_finite_differences(fn):
    model, w, b, x, y = _linear(3)
    kernel = model.layers[-1].kernel

    def value():
        if fn == "double_backprop":
            return penalties.double_backprop(model, x, y)
        return penalties.certainty_sensitivity(model, x)

    with tf.GradientTape() as tape:
        v = value()
    analytic = tape.gradient(v, kernel).numpy()
    numeric = np.zeros_like(w)
    h = 1e-6
    for i in range(D):
        for j in range(K):
            for sign in (1, -1):
                w2 = w.copy()
                w2[i, j] += sign * h
                kernel.assign(w2)
                numeric[i, j] += sign * value().numpy() / (2 * h)
    kernel.assign(w)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-10)


def test_bad_inputs_raise():
    model, w, b, x, y = _linear()
    with pytest.raises(ValueError, match="norm"):
        penalties.double_backprop(model, x, y, norm="l3")
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        penalties.double_backprop(model, x, y + 5)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        penalties.certainty_sensitivity(model, bad)
    with pytest.raises(TypeError, match="floating"):
        penalties.certainty_sensitivity(model, (x * 255).astype(np.uint8))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_raises(temperature):
    """temperature=0 gave NaN and a negative temperature was accepted."""
    model, w, b, x, y = _linear()
    message = rf"temperature must be a finite number > 0, received {temperature}"
    with pytest.raises(ValueError, match=message):
        penalties.double_backprop(model, x, y, temperature=temperature)
    with pytest.raises(ValueError, match="temperature"):
        penalties.certainty_sensitivity(model, x, temperature=temperature)
    logits = tf.constant(np.ones((2, K)))
    with pytest.raises(ValueError, match="temperature"):
        penalties.cross_entropy(logits, tf.constant([0, 1]), temperature=temperature)
    with pytest.raises(ValueError, match="temperature"):
        penalties.uniform_cross_entropy(logits, temperature=temperature)


def test_soft_labels_must_be_probability_rows():
    """Soft labels summing to 3 or holding NaN were accepted."""
    model, w, b, x, y = _linear()
    soft = np.full((B, K), 1.0 / K)
    np.testing.assert_allclose(penalties.double_backprop(model, x, soft).numpy(),
                               penalties.double_backprop(model, x, tf.constant(soft)).numpy())
    with pytest.raises(ValueError, match=r"row sums in \[3, 3\]"):
        penalties.double_backprop(model, x, soft * 3)
    nan = soft.copy()
    nan[1, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        penalties.double_backprop(model, x, nan)
    negative = soft.copy()
    negative[0] = [1.5, -0.5, 0.0]
    with pytest.raises(ValueError, match=r"entries in \[-0.5"):
        penalties.double_backprop(model, x, negative)
    with pytest.raises(ValueError, match=rf"shape \(batch, {K}\).*\({B}, 2\)"):
        penalties.double_backprop(model, x, soft[:, :2])
    with pytest.raises(ValueError, match=f"2 rows but the batch has {B}"):
        penalties.double_backprop(model, x, soft[:2])


def test_penalty_weight_limit():
    assert penalties.check_penalty_weight(10**5) == 1e5
    with pytest.raises(ValueError, match=r"at most 1e\+09.*received 1e\+38"):
        penalties.check_penalty_weight(1e38)
    with pytest.raises(ValueError, match="finite"):
        penalties.check_penalty_weight(float("nan"))
