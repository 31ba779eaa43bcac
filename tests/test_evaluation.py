"""Tests of gradreg_tf.eval.grids: accuracy and the paper's transfer grids."""

import keras
import numpy as np
import pytest

from gradreg_tf.attacks import fgsm, predict_labels, tgsm
from gradreg_tf.eval.grids import (
    PAPER_EPSILONS,
    GridAttack,
    GridRow,
    accuracy,
    gradient_signs,
    transfer_grid,
)

SHAPE = (4, 4, 1)
K = 3


def linear_model(seed):
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(K)])
    model.layers[-1].set_weights([rng.normal(size=(16, K)).astype(np.float32),
                                  (0.1 * rng.normal(size=K)).astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(40,) + SHAPE).astype(np.float32)
    teacher = linear_model(0)
    y = predict_labels(teacher, x)
    y[::5] = (y[::5] + 1) % K  # some clean mistakes
    models = {"a": teacher, "b": linear_model(1), "c": linear_model(2)}
    return x, y, models


def test_accuracy_matches_numpy(setup):
    x, y, models = setup
    expected = np.mean(predict_labels(models["a"], x) == y)
    assert accuracy(models["a"], x, y) == pytest.approx(expected)
    assert accuracy(models["a"], x, y, batch_size=7) == pytest.approx(expected)
    assert accuracy(models["a"], x, y) == pytest.approx(0.8)


@pytest.mark.parametrize("attack", ["fgsm", "tgsm"])
def test_transfer_grid_equals_attacking_each_eps(setup, attack):
    x, y, models = setup
    eps_list = (0.0, 0.1, 0.3)
    rows = transfer_grid(models, {"a": models["a"], "b": models["b"]}, x, y, attack=attack,
                         epsilons=eps_list, bounds=(0, 1), n_examples=25, gradient_batch_size=10)
    assert len(rows) == 3 * 2 * 3
    assert [(r.target_model, r.source_model, r.eps) for r in rows[:4]] == [
        ("a", "a", 0.0), ("a", "a", 0.1), ("a", "a", 0.3), ("a", "b", 0.0)]
    for r in rows:
        source = models[r.source_model]
        if attack == "fgsm":
            adv = fgsm(source, x, r.eps, bounds=(0, 1), y=y, batch_size=10)
        else:
            adv = tgsm(source, x, r.eps, bounds=(0, 1), y=y, batch_size=10)
        pred = predict_labels(models[r.target_model], adv.numpy()[:25])
        assert r.n_correct == int(np.sum(pred == y[:25]))
        assert r.accuracy == r.n_correct / 25 and r.n_examples == 25 and r.attack == attack
    clean = {r.target_model: r.accuracy for r in rows if r.eps == 0.0}
    for name, acc in clean.items():
        assert acc == pytest.approx(accuracy(models[name], x[:25], y[:25]))


def test_white_box_fgsm_lowers_accuracy(setup):
    x, y, models = setup
    rows = transfer_grid({"a": models["a"]}, {"a": models["a"]}, x, y, bounds=(0, 1), n_examples=40)
    acc = [r.accuracy for r in rows]
    assert [r.eps for r in rows] == list(PAPER_EPSILONS)
    assert acc[0] > 0.7 and acc[-1] < 0.2


def test_gradient_signs_are_chunked_mean_gradients(setup):
    x, y, models = setup
    s = gradient_signs(models["b"], x, y, bounds=(0, 1), batch_size=10)
    assert set(np.unique(s)) <= {-1.0, 0.0, 1.0} and s.dtype == np.float32
    adv = fgsm(models["b"], x, 0.5, bounds=(-10, 10), y=y, batch_size=10).numpy()
    np.testing.assert_array_equal(s, np.sign(adv - x))
    st = gradient_signs(models["b"], x, y, attack=GridAttack.TGSM, bounds=(0, 1), batch_size=10)
    adv = tgsm(models["b"], x, 0.5, bounds=(-10, 10), y_target=(y + 1) % K, batch_size=10).numpy()
    np.testing.assert_array_equal(st, -np.sign(adv - x))


def test_grid_rows_and_progress(setup, capsys):
    x, y, models = setup
    rows = transfer_grid({"a": models["a"]}, {"b": models["b"]}, x, y, attack="tgsm",
                         epsilons=[0.2], bounds=(0, 1), n_examples=8, progress=True)
    assert isinstance(rows[0], GridRow)
    assert set(rows[0].as_dict()) == {"attack", "target_model", "source_model", "eps", "accuracy",
                                      "n_correct", "n_examples"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(attack="jsma"), r"attack must be one of \['fgsm', 'tgsm'\]"),
        (dict(epsilons=[0.1, -0.1]), "epsilons"),
        (dict(n_examples=0), "n_examples"),
        (dict(n_examples=41), r"n_examples must be an integer in \[1, 40\]"),
        (dict(bounds=(1, 0)), "lower < upper"),
        (dict(bounds=(0, 0.5)), "outside bounds"),
        (dict(gradient_batch_size=0), "gradient_batch_size"),
    ],
)
def test_transfer_grid_bad_inputs(setup, kwargs, match):
    x, y, models = setup
    args = dict(bounds=(0, 1))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        transfer_grid({"a": models["a"]}, {"a": models["a"]}, x, y, **args)


def test_bad_labels_and_empty_models(setup):
    x, y, models = setup
    with pytest.raises(ValueError, match="non-empty"):
        transfer_grid({}, {"a": models["a"]}, x, y, bounds=(0, 1))
    with pytest.raises(ValueError, match=r"must be in \[0, 2\]"):
        transfer_grid({"a": models["a"]}, {"a": models["a"]}, x, y + 5, bounds=(0, 1),
                      n_examples=10)
    with pytest.raises(ValueError, match="labels but the batch has"):
        accuracy(models["a"], x, y[:3])


def test_transfer_grid_checks_labels_against_every_model(setup):
    """Labels were checked against the first source only: a 3-class target scored on label 9
    got accuracy 0.0 without a word."""
    x, y, models = setup
    ten = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(10)])
    labels = y.copy()
    labels[0] = 9
    message = r"same number of classes.*source 'ten': 10.*target 'a': 3"
    with pytest.raises(ValueError, match=message):
        transfer_grid({"a": models["a"]}, {"ten": ten}, x, labels, epsilons=(0.1,), bounds=(0, 1),
                      n_examples=10)
    with pytest.raises(ValueError, match=r"target 'ten': 10"):
        transfer_grid({"ten": ten}, {"a": models["a"]}, x, y, epsilons=(0.1,), bounds=(0, 1),
                      n_examples=10)
    wrong_shape = keras.Sequential([keras.Input((5, 5, 1)), keras.layers.Flatten(),
                                    keras.layers.Dense(K)])
    message = r"x \(for target 'w'\) must have shape \(batch, 5, 5, 1\)"
    with pytest.raises(ValueError, match=message):
        transfer_grid({"w": wrong_shape}, {"a": models["a"]}, x, y, epsilons=(0.1,), bounds=(0, 1),
                      n_examples=10)
