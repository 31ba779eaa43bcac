"""Architectures, LCN, and the GradRegClassifier training step, serialization and distribution."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradreg_tf as g
from gradreg_tf.models import (
    GradRegClassifier,
    LocalContrastNormalization,
    PerImageLocalContrastNormalization,
    gaussian_kernel,
    mnist_cnn,
    svhn_cnn,
)


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_mnist_cnn_matches_original_architecture():
    net = mnist_cnn()
    assert net.output_shape == (None, 10)
    assert _layer_types(net) == [
        "InputLayer", "Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D",
        "Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D", "Flatten",
        "Dense", "BatchNormalization", "ReLU", "Dropout", "Dense"]
    convs = [l for l in net.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
    assert [l.use_bias for l in convs] == [False, False, False, True]
    assert convs[0].kernel.shape == (5, 5, 1, 32) and convs[1].kernel.shape == (5, 5, 32, 64)
    assert convs[2].kernel.shape == (3136, 1024)
    assert all(l.padding == "same" for l in convs[:2])
    for bn in (l for l in net.layers if isinstance(l, keras.layers.BatchNormalization)):
        assert (bn.momentum, bn.epsilon, bn.scale, bn.center) == (0.9, 1e-3, False, True)
    assert net.get_layer("dropout").rate == 0.5
    assert net.count_params() == 3_276_874


def test_svhn_cnn_has_lcn_and_4096_flatten():
    net = svhn_cnn()
    assert isinstance(net.layers[1], LocalContrastNormalization)
    assert not isinstance(net.layers[1], PerImageLocalContrastNormalization)
    assert net.get_layer("fc1").kernel.shape == (4096, 1024)
    assert isinstance(svhn_cnn(per_image_lcn=True).layers[1], PerImageLocalContrastNormalization)


def _lcn_reference(x, per_image):
    """numpy/scipy reference of the original lecun_lcn.py."""
    from scipy.signal import correlate2d

    g = gaussian_kernel()[:, :, 0, 0].astype(np.float64)
    blur = lambda im: correlate2d(im, g, mode="same", boundary="fill")  # noqa: E731
    centered = np.stack([im - blur(im) for im in x[..., 0]])
    denom = np.sqrt(np.stack([blur(c**2) for c in centered]))
    mean = denom.mean(axis=(1, 2), keepdims=True) if per_image else denom.mean()
    return (centered / np.maximum(np.maximum(mean, denom), 1e-4))[..., None]


@pytest.mark.parametrize("layer_cls", [LocalContrastNormalization, PerImageLocalContrastNormalization])
def test_lcn_matches_reference(layer_cls):
    x = np.random.default_rng(0).normal(size=(3, 12, 12, 1))
    x[1] *= 5  # different contrast per image: batch and per-image means differ
    got = layer_cls()(tf.constant(x, tf.float32)).numpy()
    np.testing.assert_allclose(got, _lcn_reference(x, layer_cls.per_image), rtol=1e-4, atol=1e-5)


def test_gaussian_kernel_is_normalised_and_centred():
    g_ = gaussian_kernel()[:, :, 0, 0]
    assert g_.shape == (7, 7) and abs(g_.sum() - 1) < 1e-6 and g_.argmax() == 24


def _tiny_net(dropout=False, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, use_bias=False),
              keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, scale=False),
              keras.layers.ReLU(), keras.layers.Flatten(), keras.layers.Dense(3)]
    if dropout:
        layers.insert(-1, keras.layers.Dropout(0.5))
    return keras.Sequential(layers)


def _blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.uniform(0, 0.3, size=(n, 8, 8, 1))
    for c in range(3):
        x[y == c, 2 * c:2 * c + 3, :, 0] += 0.6
    return np.clip(x, 0, 1).astype("float32"), y


@pytest.mark.parametrize("penalty", [None, "double_backprop"])
def test_zero_weight_equals_plain_keras_step(penalty):
    x, y = _blobs()
    plain = _tiny_net()
    ours = GradRegClassifier(_tiny_net(), penalty=penalty, penalty_weight=0.0)
    ours.network.set_weights(plain.get_weights())
    plain.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ours.compile(optimizer=keras.optimizers.SGD(0.05))
    plain.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    ours.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(plain.get_weights(), ours.network.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("penalty", ["double_backprop", "certainty"])
def test_penalty_falls_when_trained(penalty):
    """Training lowers the logged penalty, and ends far below the same model trained with λ=0."""
    x, y = _blobs(256)
    value = {"double_backprop": lambda m: float(g.penalties.double_backprop(m, x, y)),
             "certainty": lambda m: float(g.penalties.certainty_sensitivity(m, x))}[penalty]
    final = {}
    before = value(GradRegClassifier(_tiny_net()))
    for weight in (0.0, 100.0):
        model = GradRegClassifier(_tiny_net(), penalty=penalty, penalty_weight=weight)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        hist = model.fit(x, y, batch_size=64, epochs=15, verbose=0)
        assert hist.history["accuracy"][-1] > 0.9
        final[weight] = value(model)
    if penalty == "double_backprop":
        # an unregularized model on separable blobs also ends with vanishing gradients
        # (CE -> 0), so the reference here is the start of training
        assert hist.history["penalty"][-1] < 0.5 * hist.history["penalty"][0]
        assert final[100.0] < before
    else:
        # at initialisation p ≈ 1/K and the certainty penalty is ~0; the reference is λ=0
        assert final[100.0] < 0.5 * final[0.0]


def test_penalty_metric_is_the_papers_scaling():
    """The logged penalty of one step equals penalties.double_backprop in training mode."""
    x, y = _blobs(64)
    model = GradRegClassifier(_tiny_net(), penalty="double_backprop", penalty_weight=1e-9)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    expected = float(g.penalties.double_backprop(model, x, y, training=True))
    hist = model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    np.testing.assert_allclose(hist.history["penalty"][0], expected, rtol=1e-4)


def test_adversarial_training_uses_predicted_label_fgsm():
    """With ε > 0 the loss is (clean + CE(x_adv)) / 2 and x_adv follows the predictions."""
    x, y = _blobs(32)
    net = _tiny_net()
    model = GradRegClassifier(net, adversarial_eps=0.1, bounds=(0.0, 1.0))
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    # expected value computed by hand, BN in training mode as in the step
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        logits = net(xt, training=True)
        pred = tf.one_hot(tf.argmax(logits, -1), 3)
        pred_ce = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(pred, logits))
    clean = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    x_adv = tf.clip_by_value(xt + 0.1 * tf.sign(tape.gradient(pred_ce, xt)), 0.0, 1.0)
    adv = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, net(x_adv, training=True)))
    expected = float((clean + adv) / 2)
    keras.utils.set_random_seed(0)
    for layer, w in zip(net.layers, [l.get_weights() for l in net.layers]):
        layer.set_weights(w)
    net2 = _tiny_net()
    model2 = GradRegClassifier(net2, adversarial_eps=0.1, bounds=(0.0, 1.0))
    model2.compile(optimizer=keras.optimizers.SGD(0.0))
    net2.set_weights(_tiny_net().get_weights())
    hist = model2.fit(x, y, batch_size=32, epochs=1, verbose=0)
    np.testing.assert_allclose(hist.history["loss"][0], expected, rtol=1e-4)


def test_soft_labels_and_temperature():
    x, y = _blobs(64)
    soft = np.full((64, 3), 0.1, "float32")
    soft[np.arange(64), y] = 0.8
    model = GradRegClassifier(_tiny_net(), temperature=50.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    hist = model.fit(x, soft, batch_size=32, epochs=3, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    # predictions use T=1 logits
    np.testing.assert_allclose(model.predict(x[:4], verbose=0), model.network(x[:4]).numpy(), rtol=1e-5)


def test_save_load_round_trip(tmp_path):
    x, y = _blobs(64)
    model = GradRegClassifier(_tiny_net(dropout=True), penalty="certainty", penalty_weight=3.5,
                              norm="l1", temperature=2.0, adversarial_eps=0.2, bounds=(0.0, 1.0),
                              adversarial_penalty=True, name="roundtrip")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, GradRegClassifier)
    for key in ("penalty", "penalty_weight", "norm", "temperature", "adversarial_eps", "bounds",
                "adversarial_penalty"):
        assert getattr(loaded, key) == getattr(model, key), key
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # the optimizer state comes back too (needed to resume training)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    loaded.fit(x, y, batch_size=32, epochs=1, verbose=0)


def test_svhn_network_round_trip(tmp_path):
    model = GradRegClassifier(svhn_cnn(per_image_lcn=True), penalty="double_backprop",
                              penalty_weight=10.0)
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 1)).astype("float32")
    model.save(tmp_path / "svhn.keras")
    loaded = keras.models.load_model(tmp_path / "svhn.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="penalty must be None or one of"):
        GradRegClassifier(_tiny_net(), penalty="gradnorm")
    with pytest.raises(ValueError, match="penalty_weight"):
        GradRegClassifier(_tiny_net(), penalty="certainty", penalty_weight=-1)
    with pytest.raises(ValueError, match="temperature"):
        GradRegClassifier(_tiny_net(), temperature=0)
    with pytest.raises(ValueError, match="bounds"):
        GradRegClassifier(_tiny_net(), adversarial_eps=0.3)
    with pytest.raises(ValueError, match="lower < upper"):
        GradRegClassifier(_tiny_net(), adversarial_eps=0.3, bounds=(1, 0))
    with pytest.raises(TypeError, match="keras.Model"):
        GradRegClassifier(lambda x: x)


def test_bad_fit_inputs():
    x, y = _blobs(32)
    model = GradRegClassifier(_tiny_net(), penalty="double_backprop", penalty_weight=1.0)
    model.compile(optimizer=keras.optimizers.Adam())
    with pytest.raises(ValueError, match=r"shape \(batch, 8, 8, 1\).*received \(32, 8, 7, 1\)"):
        model.fit(x[:, :, :7], y, verbose=0)
    with pytest.raises(TypeError, match="floating dtype"):
        model.fit((x * 255).astype("uint8"), y, verbose=0)
    bad = x.copy()
    bad[3, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 2\], received labels in \[5, 7\]"):
        model.fit(x, y + 5, verbose=0)
    with pytest.raises(ValueError, match="31 labels"):
        model.fit(x, y[:31], verbose=0)


@pytest.mark.parametrize("penalty,adv", [("double_backprop", 0.0), ("certainty", 0.1)])
def test_two_replicas_match_one_device(penalty, adv):
    """MirroredStrategy on 2 logical CPUs: same loss and weights as one device (global-batch scaling)."""
    script = pathlib.Path(__file__).with_name("_distributed_check.py")
    env = {**os.environ, "PYTHONPATH": str(script.parents[1])}  # this checkout, not an install
    out = subprocess.run([sys.executable, str(script), penalty, str(adv)], capture_output=True,
                         text=True, timeout=300, check=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    np.testing.assert_allclose(result["loss_mirrored"], result["loss_single"], rtol=1e-5)
    np.testing.assert_allclose(result["penalty_mirrored"], result["penalty_single"], rtol=1e-5)
    assert result["max_weight_diff"] < 1e-5
