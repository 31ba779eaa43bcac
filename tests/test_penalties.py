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
