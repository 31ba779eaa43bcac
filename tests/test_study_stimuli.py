"""Stimulus generation on tiny models trained here (not the paper's): every kept item fools
every model as saved, the folder is verifiable and copyable, bad input fails before any attack,
and a crash leaves no half-written study."""

import shutil

import keras
import numpy as np
import pytest

from gradreg_tf import GradRegClassifier, attacks, data
from gradreg_study import simulation, stimuli
from gradreg_study.stimuli import AttackSettings


@pytest.fixture(scope="module")
def mnist(data_dir):
    return data.load("mnist", data_dir=data_dir)


def _tiny_net():
    inputs = keras.Input((28, 28, 1))
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))


@pytest.fixture(scope="module")
def nets(mnist):
    """Two linear softmax classifiers (GradRegClassifier, 2 batches of 128 images, different
    seeds): enough for the pipeline and cheap on a CPU, far from the paper's models."""
    out = {}
    for seed, name in enumerate(("normal", "second")):
        keras.utils.set_random_seed(seed)
        model = GradRegClassifier(_tiny_net())
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        model.fit(mnist.x_train[:256], mnist.y_train[:256], batch_size=128, epochs=1, verbose=0)
        out[name] = model
    return out


SETTINGS = AttackSettings(eps=0.05, steps=2)  # weak, so that some pairs fail


@pytest.fixture(scope="module")
def tgsm_study(nets, mnist, tmp_path_factory):
    return stimuli.make_study(nets, mnist, tmp_path_factory.mktemp("s") / "tgsm", n_per_class=1,
                              n_attention_per_class=1, settings=SETTINGS, progress=False,
                              provenance={"note": "test"})


def _predict(model, images):
    return np.asarray(model(np.stack(images), training=False)).argmax(1)


def test_kept_items_fool_every_model_as_saved(tgsm_study, nets, mnist):
    m = tgsm_study.manifest
    assert m["attack"]["attack"] == "tgsm" and m["attack"]["eps"] == 0.05
    assert m["attack"]["steps"] == 2
    assert len(m["items"]) + len(m["dropped"]) == 10 * 9
    assert len(m["items"]) > 0 and len(m["dropped"]) > 0
    for cond, model in nets.items():
        adv = [s for s in m["stimuli"] if s["condition"] == cond]
        assert len(adv) == len(m["items"])
        predicted = _predict(model, [tgsm_study.image(s) for s in adv])  # decoded from the PNGs
        assert predicted.tolist() == [s["target"] for s in adv]
        assert predicted.tolist() == [s["predicted"] for s in adv]
        for s in adv:
            assert s["linf"] <= 2 * 0.05 + 0.5 / 255 + 1e-6  # 2 steps, then 8-bit rounding
            assert s["transfer_predictions"][cond] == s["target"]
    for d in m["dropped"]:
        assert d["failed"] and set(d["failed"]) <= set(nets)


def test_dropped_items_fail_on_some_model(tgsm_study, nets, mnist):
    """Recomputed independently: a dropped (original, target) pair is missed by a listed model."""
    m = tgsm_study.manifest
    idx = np.array(m["originals"]["test_indices"])
    x = mnist.x_test[idx]
    for d in m["dropped"][:3]:
        for name in d["failed"]:
            x_adv = attacks.tgsm(nets[name], x, SETTINGS.eps, bounds=mnist.bounds,
                                 y_target=np.full(len(x), d["target"]), steps=SETTINGS.steps,
                                 batch_size=len(x))
            row = int(np.flatnonzero(idx == d["test_index"])[0])
            saved = stimuli.from_uint8(stimuli.to_uint8(np.asarray(x_adv)[row], mnist.bounds),
                                       mnist.bounds)
            assert _predict(nets[name], [saved])[0] != d["target"]


def test_attention_checks_are_clean_unused_test_images(tgsm_study, mnist):
    originals = set(tgsm_study.manifest["originals"]["test_indices"])
    assert len(tgsm_study.attention) == 10
    for s in tgsm_study.attention:
        assert s["test_index"] not in originals
        assert mnist.y_test[s["test_index"]] == s["original_label"]
        np.testing.assert_allclose(tgsm_study.image(s), mnist.x_test[s["test_index"]], atol=1e-6)


def test_a_study_folder_can_be_copied(tgsm_study, tmp_path):
    copy = tmp_path / "elsewhere" / "study"
    shutil.copytree(tgsm_study.root, copy)
    loaded = stimuli.load_study(copy)
    assert loaded.fingerprint == tgsm_study.fingerprint and loaded.root == copy.resolve()
    assert loaded.manifest["provenance"]["note"] == "test"


def test_jsma_option(nets, mnist, tmp_path):
    study = stimuli.make_study(nets, mnist, tmp_path / "jsma", settings=AttackSettings(
        attack="jsma", gamma=0.05), classes=[0, 1], n_per_class=1, n_attention_per_class=1,
        progress=False)
    m = study.manifest
    assert m["attack"] == {"attack": "jsma", "theta": 1.0, "gamma": 0.05}
    assert len(m["items"]) + len(m["dropped"]) == 2
    items = {it["item_id"]: it for it in m["items"]}
    for s in m["stimuli"]:
        assert _predict(nets[s["condition"]], [study.image(s)])[0] == s["target"]
        original = mnist.x_test[items[s["item_id"]]["test_index"]]
        changed = np.sum(np.abs(study.image(s) - original) > 1e-6)
        assert 0 < changed <= 2 * int(28 * 28 * 0.05 / 2)  # at most gamma of the pixels


class _Untouchable:
    """A model that must not be called (input is checked before any attack)."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("the model was called")


@pytest.mark.parametrize("models, kwargs, error, match", [
    ({}, {}, ValueError, "non-empty dict"),
    ({"Bad Name": _Untouchable()}, {}, ValueError, "condition names must match"),
    ({"clean": _Untouchable()}, {}, ValueError, "not be 'clean'"),
    ({"a": _Untouchable()}, {"n_per_class": 0}, ValueError, "n_per_class must be >= 1"),
    ({"a": _Untouchable()}, {"n_per_class": 2000}, ValueError, "class 0 has 980 test images"),
    ({"a": _Untouchable()}, {"classes": [5]}, ValueError, "at least 2 labels"),
    ({"a": _Untouchable()}, {"settings": "tgsm"}, TypeError, "AttackSettings"),
])
def test_bad_input_is_refused_before_any_attack(models, kwargs, error, match, mnist, tmp_path):
    with pytest.raises(error, match=match):
        stimuli.make_study(models, mnist, tmp_path / "s", progress=False, **kwargs)
    assert not (tmp_path / "s").exists()


def test_default_attack_is_the_papers_iterated_tgsm():
    assert AttackSettings().as_dict()["attack"] == "tgsm"
    assert (AttackSettings().eps, AttackSettings().steps) == (0.1, 10)


@pytest.mark.parametrize("kwargs, match", [
    ({"attack": "fgsm"}, "attack must be one of"),
    ({"eps": 0}, "eps must be a finite number > 0"),
    ({"eps": float("nan")}, "eps must be a finite number > 0"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"gamma": 1.5}, r"gamma must be in \(0, 1\]"),
    ({"theta": 0}, "theta must be a finite non-zero number"),
])
def test_bad_attack_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttackSettings(**kwargs)


def test_wrong_logits_and_existing_folders(mnist, tmp_path):
    def three_classes(x, training=False):
        return np.zeros((len(x), 3), np.float32)

    with pytest.raises(ValueError, match=r"logits of shape \(3,\), expected \(10,\)"):
        stimuli.make_study({"a": three_classes}, mnist, tmp_path / "s", progress=False)
    study = simulation.toy_study(tmp_path / "toy", n_items=5)
    with pytest.raises(FileExistsError, match="exists; choose another folder"):
        stimuli.make_study({"a": _Untouchable()}, mnist, study.root, progress=False)
    (study.root / stimuli.DATABASE).write_bytes(b"")
    with pytest.raises(FileExistsError, match="holds collected answers"):
        stimuli.make_study({"a": _Untouchable()}, mnist, study.root, overwrite=True,
                           progress=False)
    (tmp_path / "other").mkdir()
    with pytest.raises(FileExistsError, match="not a study folder"):
        stimuli.make_study({"a": _Untouchable()}, mnist, tmp_path / "other", overwrite=True,
                           progress=False)


def test_a_crash_leaves_no_half_written_study(tmp_path, monkeypatch):
    old = simulation.toy_study(tmp_path / "study", n_items=5)
    before = {p.relative_to(old.root): p.read_bytes() for p in old.root.rglob("*") if p.is_file()}
    real, written = stimuli._write_png, []

    def flaky(path, image):
        if len(written) == 7:
            raise OSError("disk full")
        written.append(path)
        real(path, image)

    monkeypatch.setattr(stimuli, "_write_png", flaky)
    with pytest.raises(OSError, match="disk full"):
        simulation.toy_study(tmp_path / "new", n_items=5)
    with pytest.raises(OSError, match="disk full"):
        written.clear()
        simulation.toy_study(tmp_path / "study", n_items=5, seed=3, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]  # no temporary leftovers
    after = {p.relative_to(old.root): p.read_bytes() for p in old.root.rglob("*") if p.is_file()}
    assert after == before  # the old study is intact
    monkeypatch.setattr(stimuli, "_write_png", real)
    new = simulation.toy_study(tmp_path / "study", n_items=5, seed=3, overwrite=True)
    assert new.fingerprint != old.fingerprint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]
