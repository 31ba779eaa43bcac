"""The models shipped with the package (gradreg_tf.pretrained, zoo.pretrained)."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from gradreg_tf import cache, data, pretrained, recipes, training, zoo

def _fake_root(tmp_path, model="normal"):
    """A weights folder with one untrained 'shipped' model and a consistent manifest."""
    recipe = recipes.paper_recipe("mnist", model)
    net = training.build_model(recipe, input_shape=(28, 28, 1), bounds=(0.0, 1.0))
    path = pretrained.weights_path("mnist", model, root=tmp_path)
    path.parent.mkdir(parents=True)
    net.network.save_weights(path)
    meta = {"format": pretrained.MANIFEST_FORMAT, "dataset": "mnist", "model": model,
            "recipe": dataclasses.asdict(recipe), "recipe_key": "k", "seed": 0, "input_shape": [28, 28, 1],
            "bounds": [0.0, 1.0], "weights_file": path.name, "sha256": cache.file_sha256(path)}
    pretrained.manifest_path("mnist", model, root=tmp_path).write_text(json.dumps(meta))
    return net, path


def test_load_verifies_sha256_and_restores_the_weights(tmp_path):
    net, path = _fake_root(tmp_path)
    loaded = pretrained.load("mnist", "normal", root=tmp_path)
    for a, b in zip(net.network.get_weights(), loaded.network.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(net(x).numpy(), loaded(x).numpy())


def test_corrupt_or_missing_file_is_a_clear_error(tmp_path):
    _, path = _fake_root(tmp_path)
    expected = pretrained.manifest("mnist", "normal", root=tmp_path)["sha256"]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(pretrained.PretrainedModelError, match="corrupt") as err:
        pretrained.load("mnist", "normal", root=tmp_path)
    assert str(path) in str(err.value) and expected in str(err.value)
    path.unlink()
    with pytest.raises(pretrained.PretrainedModelError, match="missing") as err:
        pretrained.load("mnist", "normal", root=tmp_path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_unknown_model_lists_what_is_shipped(tmp_path):
    _fake_root(tmp_path)
    with pytest.raises(pretrained.PretrainedModelError, match=r"no pretrained model 'robust'.*mnist/normal"):
        pretrained.load("mnist", "robust", root=tmp_path)
    pretrained.manifest_path("mnist", "normal", root=tmp_path).write_text("{not json")
    with pytest.raises(pretrained.PretrainedModelError, match="unreadable"):
        pretrained.load("mnist", "normal", root=tmp_path)


@pytest.mark.parametrize("model", recipes.PAPER_MODELS)
def test_shipped_manifest_is_complete(model):
    _shipped_or_fail(model)
    meta = pretrained.manifest("mnist", model)
    recipe = pretrained.recipe_of(meta)
    assert recipe == recipes.paper_recipe("mnist", model)
    assert meta["batches_trained"] == 15050 and meta["seed"] == 0 and meta["op_determinism"]
    assert set(meta["trained_with"]) >= {"tensorflow", "keras", "numpy"}
    assert meta["provenance"]["batch"] == 100 and len(meta["provenance"]["sha256"]) == 64
    assert meta["sha256"] == cache.file_sha256(pretrained.weights_path("mnist", model))
    assert 0.99 <= meta["clean_test_accuracy"] <= 1.0 or model == "distilled"
    if recipe.distill:
        assert meta["teacher"]["batches_trained"] == 10105
        assert meta["soft_labels_rows"] == 100 * 256


def _shipped_or_fail(model):
    """A shipped artifact that is missing or corrupt fails the test (never a skip)."""
    try:
        pretrained.verify("mnist", model)
    except pretrained.PretrainedModelError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist")  # the bundled copy when no data directory is configured


@pytest.mark.parametrize("model", recipes.PAPER_MODELS)
def test_trained_model_answers_from_the_shipped_models(model, mnist, tmp_path, monkeypatch):
    """budget="paper" returns the shipped weights: no training, nothing written to the cache."""
    _shipped_or_fail(model)

    def no_training(*args, **kwargs):
        raise AssertionError("trained_model tried to train a shipped model")

    monkeypatch.setattr(training, "train_recipe", no_training)
    got = zoo.trained_model(mnist, model, budget="paper", cache_dir=tmp_path, progress=False)
    want = zoo.pretrained("mnist", model)
    for a, b in zip(got.network.get_weights(), want.network.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob("**/*.keras"))
    # another seed is another model: not answered from the shipped one
    assert zoo.shipped_match(mnist, recipes.paper_recipe("mnist", model), seed=1) is None
    assert zoo.shipped_match(mnist, recipes.paper_recipe("mnist", model, n_batches=1500)) is None


def test_corrupt_shipped_file_is_never_replaced_by_a_retrained_model(mnist, tmp_path, monkeypatch):
    model = pretrained.SHIPPED["mnist"][0]
    _shipped_or_fail(model)
    root = tmp_path / "weights"
    shutil.copytree(pretrained.WEIGHTS_DIR, root)
    path = pretrained.weights_path("mnist", model, root=root)
    path.write_bytes(path.read_bytes()[:-100])
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", root)
    with pytest.raises(pretrained.PretrainedModelError, match="corrupt"):
        zoo.trained_model(mnist, model, budget="paper", cache_dir=tmp_path, progress=False)


def test_every_shipped_artifact_is_present_and_intact():
    """The package ships the five paper-schedule MNIST models (a wheel built without its
    package data, or a checkout holding Git LFS pointers, turns this red)."""
    assert pretrained.SHIPPED == {"mnist": recipes.PAPER_MODELS}
    try:
        checked = pretrained.verify_all()
    except pretrained.PretrainedModelError as err:
        pytest.fail(str(err))
    assert len(checked) == 5


@pytest.mark.parametrize("damage, match", [
    ("remove", "is missing"), ("lfs", "Git LFS pointer"), ("truncate", "corrupt"),
    ("curves", "training-curves file"), ("soft_labels", "soft labels file"),
])
def test_verify_names_a_missing_or_corrupt_file(tmp_path, damage, match):
    root = tmp_path / "weights"
    shutil.copytree(pretrained.WEIGHTS_DIR, root)
    model = "distilled"
    path = pretrained.weights_path("mnist", model, root=root)
    if damage == "remove":
        path.unlink()
    elif damage == "lfs":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "curves":
        path.with_name(f"{model}.curves.csv").unlink()
    else:
        path.with_name(f"{model}.soft_labels.npz").unlink()
    with pytest.raises(pretrained.PretrainedModelError, match=match):
        pretrained.verify_all(root=root)
