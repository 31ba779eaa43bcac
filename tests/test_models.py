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


# ---------------------------------------------------------------- silent traps (one rule each)
def _compiled(net=None, **kwargs):
    model = GradRegClassifier(net if net is not None else _tiny_net(), **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    return model


def test_integer_images_are_rejected_on_every_input_path():
    """uint8 batches from tf.data were cast to float without scaling (trained on 0-255)."""
    x, y = _blobs(32)
    xi = (x * 255).astype("uint8")
    model = _compiled()
    with pytest.raises(TypeError, match="floating dtype"):
        model.fit(xi, y, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices((xi, y)).batch(16)
    with pytest.raises(TypeError, match=r"floating dtype.*uint8"):
        model.fit(ds, verbose=0)
    with pytest.raises(TypeError, match=r"floating dtype.*uint8"):
        model.evaluate(ds, verbose=0)
    with pytest.raises(TypeError, match=r"floating dtype.*uint8"):
        model.train_on_batch(xi[:16], y[:16])


def _soft(y, k=3):
    soft = np.full((len(y), k), 0.1, "float32")
    soft[np.arange(len(y)), y] = 0.8
    return soft


@pytest.mark.parametrize("defect", ["row_sum", "negative", "nan"])
def test_soft_labels_from_tf_data_are_checked_like_arrays(defect):
    """Soft labels were checked for arrays only: from tf.data, rows that are not
    probabilities trained silently."""
    x, y = _blobs(32)
    soft = _soft(y)
    if defect == "row_sum":
        soft[20] *= 2.0
    elif defect == "negative":
        soft[20, :2] = [-0.1, 0.3]
    else:
        soft[20, 0] = np.nan
    model = _compiled(temperature=5.0)
    with pytest.raises(ValueError, match="probability rows|must be probabilities"):  # arrays
        model.fit(x, soft, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices((x, soft)).batch(16)
    with pytest.raises(ValueError, match="probability rows.*tf.data"):
        model.fit(ds, verbose=0)
    with pytest.raises(ValueError, match="probability rows.*tf.data"):
        model.evaluate(ds, verbose=0)


def test_label_dtypes_and_ranks_from_tf_data():
    x, y = _blobs(32)
    model = _compiled(temperature=5.0)
    good = tf.data.Dataset.from_tensor_slices((x, _soft(y))).batch(16)
    assert np.isfinite(model.fit(good, verbose=0).history["loss"]).all()
    assert np.isfinite(model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
                                 verbose=0).history["loss"]).all()
    floats = tf.data.Dataset.from_tensor_slices((x, y.astype("float32") + 0.7)).batch(16)
    with pytest.raises(TypeError, match="float class labels would be truncated"):
        _compiled(temperature=5.0).fit(floats, verbose=0)  # static rank: refused while tracing
    # after the (batch, K) soft labels above Keras retraces with the rank relaxed
    with pytest.raises(ValueError, match=r"float probabilities of shape \(batch, classes\)"):
        model.fit(floats, verbose=0)
    column = tf.data.Dataset.from_tensor_slices((x, y[:, None])).batch(16)
    # after the (batch,) labels above Keras retraces with the rank relaxed: a runtime check
    with pytest.raises(ValueError, match=r"integer labels of shape \(batch,\).*another rank"):
        model.fit(column, verbose=0)
    with pytest.raises(ValueError, match=r"flatten integer labels to \(batch,\)"):
        _compiled(temperature=5.0).fit(column, verbose=0)  # static rank: refused while tracing


@pytest.mark.parametrize("attr,value", [
    ("penalty_weight", 100.0), ("temperature", 2.0), ("adversarial_eps", 0.1),
    ("penalty", "certainty"), ("norm", "l1"), ("bounds", (0.0, 1.0)),
    ("adversarial_penalty", True), ("network", None)])
def test_hyperparameters_cannot_be_changed_after_construction(attr, value):
    """The step captures them as constants: a later assignment was silently ignored."""
    x, y = _blobs(32)
    model = _compiled(penalty="double_backprop", penalty_weight=1.0)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    before = getattr(model, attr)
    with pytest.raises(AttributeError, match=rf"{attr}.*replace\("):
        setattr(model, attr, value)
    assert getattr(model, attr) == before


def test_replace_builds_a_model_with_new_hyperparameters_on_the_same_network():
    x, y = _blobs(64)
    model = _compiled(penalty="double_backprop", penalty_weight=1.0)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    other = model.replace(penalty_weight=1e4)
    assert other.network is model.network and other.penalty == "double_backprop"
    assert other.penalty_weight == 1e4 and model.penalty_weight == 1.0
    with pytest.raises(TypeError, match="learning_rate"):
        model.replace(learning_rate=1.0)
    other.compile(optimizer=keras.optimizers.SGD(0.0))
    hist = other.fit(x, y, batch_size=64, epochs=1, verbose=0)
    # the new λ reaches the loss: loss = CE + 1e4 * penalty
    np.testing.assert_allclose(hist.history["loss"][0], hist.history["cross_entropy"][0]
                               + 1e4 * hist.history["penalty"][0], rtol=1e-4)


def test_keras_hook_guard_fails_loudly_when_keras_changes(monkeypatch):
    """The multi-worker fix overrides Keras' private _maybe_symbolic_build; a rename must not
    turn it into dead code silently."""
    from gradreg_tf.models import keras_compat as gradreg

    gradreg.check_keras_hooks()  # this Keras has the hook
    owner = next(c for c in keras.Model.__mro__ if "_maybe_symbolic_build" in vars(c))
    original = vars(owner)["_maybe_symbolic_build"]
    monkeypatch.delattr(owner, "_maybe_symbolic_build")
    with pytest.raises(ImportError, match=rf"_maybe_symbolic_build.*keras {keras.__version__}"):
        gradreg.check_keras_hooks()
    monkeypatch.setattr(owner, "_maybe_symbolic_build", lambda self, batch: None, raising=False)
    with pytest.raises(ImportError, match="signature"):
        gradreg.check_keras_hooks()
    monkeypatch.setattr(owner, "_maybe_symbolic_build", original)
    gradreg.check_keras_hooks()
    with pytest.raises(RuntimeError, match="_distribute_strategy.*update the override"):
        gradreg.check_trainer_attributes(keras.layers.Dense(2))


def test_public_traversal_and_multi_worker_detection():
    """The shim's public replacements for Keras internals: nested layers are found through the
    public ``layers`` lists (dropout RNG states are restored by them on resume), and a strategy
    is multi-worker only with more than one worker in its cluster."""
    from gradreg_tf.models import keras_compat

    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5, name="drop_in"),
                              keras.layers.Dense(2)], name="inner")
    outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2)], name="outer")
    names = [layer.name for layer in keras_compat.sublayers(outer)]
    assert names[0] == "outer" and "inner" in names and "drop_in" in names
    assert not keras_compat.in_multi_worker_mode(tf.distribute.get_strategy())


def test_fit_goes_through_the_overridden_keras_hook(monkeypatch):
    x, y = _blobs(32)
    calls = []
    original = GradRegClassifier._maybe_symbolic_build

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GradRegClassifier, "_maybe_symbolic_build", spy)
    _compiled().fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert calls, "keras.Model.fit no longer calls _maybe_symbolic_build"


def _original_lcn(x, per_image):
    """The layer's formula without any guard (tf.sqrt of the blurred squares)."""
    kernel = tf.constant(gaussian_kernel())
    blur = lambda t: tf.nn.conv2d(t, kernel, strides=1, padding="SAME")  # noqa: E731
    centered = x - blur(x)
    denom = tf.sqrt(blur(tf.square(centered)))
    axis = [1, 2, 3] if per_image else None
    mean = tf.reduce_mean(denom, axis=axis, keepdims=per_image)
    return centered / tf.maximum(tf.maximum(mean, denom), 1e-4)


def _lcn_inputs():
    rng = np.random.default_rng(1)
    noisy = rng.normal(size=(2, 12, 12, 1)).astype("float32")
    patchy = noisy.copy()
    patchy[:, 2:11, 2:11] = 0.25  # a flat 9x9 patch inside a textured image
    flat = np.full((2, 12, 12, 1), 0.3, "float32")
    return {"noisy": noisy, "patchy": patchy, "flat": flat, "zeros": np.zeros_like(flat)}


@pytest.mark.parametrize("layer_cls",
                         [LocalContrastNormalization, PerImageLocalContrastNormalization])
@pytest.mark.parametrize("kind", ["noisy", "patchy", "flat", "zeros"])
def test_lcn_forward_unchanged_and_double_backprop_finite(layer_cls, kind):
    """tf.sqrt at 0 has an infinite derivative: flat neighbourhoods gave NaN gradients (and the
    SVHN network differentiates through the layer twice)."""
    x = tf.constant(_lcn_inputs()[kind])
    layer = layer_cls()
    np.testing.assert_array_equal(layer(x).numpy(), _original_lcn(x, layer_cls.per_image).numpy())
    w = tf.constant(np.random.default_rng(2).normal(size=x.shape).astype("float32"))
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            out = tf.reduce_sum(layer(x) * w)
        grad = inner.gradient(out, x)
        penalty = tf.reduce_sum(tf.square(grad))
    second = outer.gradient(penalty, x)
    assert np.all(np.isfinite(grad.numpy())) and np.all(np.isfinite(second.numpy()))


def test_svhn_network_trains_with_double_backprop_on_flat_images():
    model = _compiled(svhn_cnn(), penalty="double_backprop", penalty_weight=10.0)
    x = np.full((4, 32, 32, 1), 0.5, "float32")
    x[2:] = np.random.default_rng(0).normal(size=(2, 32, 32, 1))
    model.fit(x, np.array([0, 1, 2, 3]), batch_size=4, epochs=1, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in model.network.get_weights())


def test_mixed_precision_policy_is_rejected():
    """float16 cannot hold the penalty at the paper's λ (56234 is near float16's maximum)."""
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        net = _tiny_net()
        with pytest.raises(ValueError, match=r"mixed_float16.*float32"):
            GradRegClassifier(net)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    half = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(3, dtype="mixed_bfloat16")])
    with pytest.raises(ValueError, match="mixed_bfloat16"):
        GradRegClassifier(half)


def test_sample_weights_are_refused_by_fit_and_evaluate():
    x, y = _blobs(32)
    model = _compiled()
    weights = np.ones(32, "float32")
    with pytest.raises(ValueError, match="sample weights"):
        model.fit(x, y, sample_weight=weights, verbose=0)
    with pytest.raises(ValueError, match="sample weights"):
        model.evaluate(x, y, sample_weight=weights, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(16)
    with pytest.raises(ValueError, match="sample weights"):
        model.evaluate(ds, verbose=0)


class SoftmaxInside(keras.Model):
    def __init__(self):
        super().__init__()
        self.flat, self.dense = keras.layers.Flatten(), keras.layers.Dense(3)

    def call(self, x, training=False):
        return tf.nn.softmax(self.dense(self.flat(x)))


class SubNet(keras.Model):
    def __init__(self, n_classes=3):
        super().__init__()
        self.flat, self.dense = keras.layers.Flatten(), keras.layers.Dense(n_classes)

    def call(self, x, training=False):
        return self.dense(self.flat(x))


def test_network_returning_probabilities_is_refused():
    soft_dense = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match="softmax"):
        GradRegClassifier(soft_dense)
    soft_layer = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(3), keras.layers.Softmax()])
    with pytest.raises(ValueError, match="softmax"):
        GradRegClassifier(soft_layer)
    x, y = _blobs(32)
    for data in ((x, y), (tf.data.Dataset.from_tensor_slices((x, y)).batch(16),)):
        model = _compiled(SoftmaxInside())
        with pytest.raises(ValueError, match="probabilities"):
            model.fit(*data, verbose=0)


def test_subclassed_network_fits_from_numpy_and_is_checked():
    x, y = _blobs(32)
    model = _compiled(SubNet())
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 2\], received labels in \[5, 7\]"):
        model.fit(x, y + 5, verbose=0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        _compiled(SubNet(1)).fit(x, np.zeros(32, int), verbose=0)


def test_single_logit_network_is_refused():
    net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"at least 2 classes.*\(None, 1\)"):
        GradRegClassifier(net)


def test_non_finite_loss_stops_fit_on_every_input_path():
    """One NaN pixel from tf.data made every weight NaN and fit returned normally."""
    from gradreg_tf.models import NonFiniteLossError

    x, y = _blobs(32)
    bad = x.copy()
    bad[3, 1, 1, 0] = np.nan
    model = _compiled()
    ds = tf.data.Dataset.from_tensor_slices((bad, y)).batch(16)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss.*batch 1"):
        model.fit(ds, verbose=0)
    huge = _compiled(penalty="double_backprop", penalty_weight=1e9)
    huge.network.layers[-1].kernel.assign(huge.network.layers[-1].kernel * 1e30)
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        huge.fit(x, y, batch_size=16, epochs=1, verbose=0)


def test_penalty_weight_and_bounds_are_validated():
    with pytest.raises(ValueError, match=r"penalty_weight.*1e\+09.*received 1e\+38"):
        GradRegClassifier(_tiny_net(), penalty="double_backprop", penalty_weight=1e38)
    with pytest.raises(ValueError, match="bounds.*'01'"):
        GradRegClassifier(_tiny_net(), adversarial_eps=0.1, bounds="01")


def test_labels_out_of_range_from_tf_data_are_a_value_error():
    x, y = _blobs(32)
    model = _compiled()
    ds = tf.data.Dataset.from_tensor_slices((x, y + 5)).batch(16)
    with pytest.raises(ValueError, match=r"y must be in \[0, 2\], received label [5-7]"):
        model.fit(ds, verbose=0)
    with pytest.raises(ValueError, match=r"y must be in \[0, 2\], received label [5-7]"):
        model.evaluate(ds, verbose=0)
