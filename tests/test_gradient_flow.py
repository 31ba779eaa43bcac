"""The training objective's gradient reaches the weights: one optimizer step through ``fit``
against an independent closed-form reference.

For a linear softmax network ``z = W·flatten(x) + b`` the input gradient of the batch-mean
cross-entropy is known in closed form, ``∇_{x_n} mean CE = Wᵀ(softmax(z_n) − e_{y_n}) / B``
(certainty: ``Wᵀ(softmax(z_n) − 1/K) / B``). The reference writes the paper's loss with that
closed form (no double backprop) and differentiates it once with respect to W and b; one SGD step
of ``GradRegClassifier.fit`` (learning rate 1) must move the weights by exactly minus that
gradient. A training step whose penalty gradient does not reach the weights (e.g. the classic
``λ·tf.stop_gradient(penalty)``) keeps the logged loss and penalty but fails here, on both input
paths (numpy arrays and ``tf.data``). Each case first checks that the penalty's share of the
gradient is far above the tolerance, so the comparison can tell the two apart.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradreg_tf import GradRegClassifier

B, K, SIDE = 16, 10, 4


def _network():
    net = keras.Sequential([keras.Input((SIDE, SIDE, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(K)])
    rng = np.random.default_rng(1)
    net.set_weights([rng.normal(0, 0.5, (SIDE * SIDE, K)).astype("float32"),
                     rng.normal(0, 0.1, K).astype("float32")])
    return net


def _batch():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.05, 0.95, (B, SIDE, SIDE, 1)).astype("float32")
    y = rng.integers(0, K, B)
    return x, y


def _closed_form_loss(w, b, x, y, *, penalty, lam, eps):
    """The paper's objective for the linear model, input gradients in closed form."""
    flat = tf.reshape(x, (len(x), -1))
    onehot = tf.one_hot(y, K, dtype=tf.float64)

    def ce_and_input_grad(inputs, target):
        z = inputs @ w + b
        p = tf.nn.softmax(z)
        ce = -tf.reduce_mean(tf.reduce_sum(onehot * tf.nn.log_softmax(z), -1))
        return ce, (p - target) @ tf.transpose(w) / B  # ∇x of the batch-mean CE(target)

    ce, g_true = ce_and_input_grad(flat, onehot)
    loss = ce
    if penalty is not None:
        target = onehot if penalty == "double_backprop" else tf.fill(onehot.shape, 1.0 / K)
        g = g_true if penalty == "double_backprop" else ce_and_input_grad(flat, tf.cast(target, tf.float64))[1]
        loss = ce + lam * tf.reduce_sum(g ** 2) / 2  # tf.nn.l2_loss
    if eps:
        z = flat @ w + b
        pred = tf.one_hot(tf.argmax(z, -1), K, dtype=tf.float64)  # the model's own labels
        _, g_pred = ce_and_input_grad(flat, pred)
        x_adv = tf.stop_gradient(tf.clip_by_value(flat + eps * tf.sign(g_pred), 0.0, 1.0))
        z_adv = x_adv @ w + b
        adv = -tf.reduce_mean(tf.reduce_sum(onehot * tf.nn.log_softmax(z_adv), -1))
        loss = (loss + adv) / 2
    return loss


def _reference_step(net, x, y, **objective):
    w, b = (tf.Variable(v.astype("float64")) for v in net.get_weights())
    xs = tf.constant(x.astype("float64"))
    with tf.GradientTape() as tape:
        loss = _closed_form_loss(w, b, xs, y, **objective)
    gw, gb = tape.gradient(loss, [w, b])
    with tf.GradientTape() as tape:
        ce_only = _closed_form_loss(w, b, xs, y, penalty=None, lam=0.0, eps=objective["eps"])
    cw, _ = tape.gradient(ce_only, [w, b])
    return gw.numpy(), gb.numpy(), float(np.max(np.abs(gw.numpy() - cw.numpy())))


CASES = {
    "double_backprop": dict(penalty="double_backprop", lam=300.0, eps=0.0),
    "certainty": dict(penalty="certainty", lam=300.0, eps=0.0),
    "double_backprop+advtrain": dict(penalty="double_backprop", lam=300.0, eps=0.1),
    "advtrain": dict(penalty=None, lam=0.0, eps=0.1),
}
ATOL = 2e-5


@pytest.mark.parametrize("path", ["numpy", "tf.data"])
@pytest.mark.parametrize("case", list(CASES))
def test_one_fit_step_moves_the_weights_by_the_reference_gradient(case, path):
    objective = CASES[case]
    x, y = _batch()
    net = _network()
    start = [v.copy() for v in net.get_weights()]
    gw, gb, penalty_share = _reference_step(net, x, y, **objective)
    if objective["penalty"] is not None:  # the penalty's part of the gradient is measurable
        assert penalty_share > 1000 * ATOL, penalty_share
    model = GradRegClassifier(net, penalty=objective["penalty"], penalty_weight=objective["lam"],
                              adversarial_eps=objective["eps"],
                              bounds=(0.0, 1.0) if objective["eps"] else None)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    if path == "numpy":
        model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    else:
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(B), epochs=1, shuffle=False,
                  verbose=0)
    w1, b1 = net.get_weights()
    np.testing.assert_allclose(start[0] - w1, gw, atol=ATOL, rtol=1e-4)
    np.testing.assert_allclose(start[1] - b1, gb, atol=ATOL, rtol=1e-4)
