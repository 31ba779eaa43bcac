"""Recipes, the model cache (keys, corruption), the NaN guard and kill/resume."""

import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gradreg_tf import cache, models, recipes, training, zoo
from gradreg_tf.data.base import Dataset

HERE = pathlib.Path(__file__).parent


def test_paper_recipes_match_setup():
    r = recipes.paper_recipe("mnist", "doubleback")
    assert (r.penalty, r.batch_size, r.learning_rate, r.adam_epsilon) == ("double_backprop", 256, 2e-4, 1e-4)
    assert r.penalty_weight == pytest.approx(56234.13251903491)
    assert recipes.paper_recipe("notmnist", "insensitive").penalty_weight == pytest.approx(177.82794100389228)
    assert recipes.paper_recipe("svhn", "doubleback").penalty_weight == 10000.0
    assert recipes.paper_recipe("mnist", "advtrain").adversarial_eps == 0.3
    d = recipes.paper_recipe("mnist", "distilled")
    assert (d.temperature, d.distill, d.teacher_batches) == (50.0, True, 10000)
    both = recipes.paper_recipe("mnist", "both")
    assert both.adversarial_eps == 0.3 and both.penalty == "double_backprop"
    # the original's epoch rounding: 15050 batches on MNIST, 15640 on notMNIST/SVHN
    assert r.total_batches(55000) == 15050 and r.epochs(55000) == 70
    assert recipes.paper_recipe("notmnist", "normal").total_batches(200000) == 15640
    assert recipes.paper_recipe("mnist", "distilled").epochs(55000, 10000) == 47
    assert recipes.budget_batches("quick", 55000) == 214  # -> exactly one epoch of 215 batches
    assert r.total_batches(55000, 214) == 215
    assert len(recipes.sweep_recipes("mnist", "doubleback")) == 13
    assert recipes.sweep_recipes("mnist", "insensitive")[0].penalty_weight == 1.0


def test_insensitive_is_double_backprop_and_certainty_keeps_the_paper_penalty():
    """"insensitive" is what the launcher ran (SETUP.md §8.1): double backprop at the insensitive
    λ; the certainty penalty of the paper's text is the separate model "certainty"."""
    for ds in recipes.DATASETS:
        insensitive = recipes.paper_recipe(ds, "insensitive")
        certainty = recipes.paper_recipe(ds, "certainty")
        doubleback = recipes.paper_recipe(ds, "doubleback")
        assert insensitive.penalty == "double_backprop" and certainty.penalty == "certainty"
        assert insensitive.penalty_weight == certainty.penalty_weight \
            == {"mnist": 1000.0, "notmnist": 10**2.25, "svhn": 1000.0}[ds]
        assert insensitive.penalty_weight < doubleback.penalty_weight
        for r in (insensitive, certainty):
            assert r.adversarial_eps == 0 and not r.distill
    for kind, penalty in (("insensitive", "double_backprop"), ("certainty", "certainty")):
        sweep = recipes.sweep_recipes("mnist", kind)
        assert [r.penalty_weight for r in sweep] == list(recipes.INSENSITIVE_SWEEP)
        assert {r.penalty for r in sweep} == {penalty}
    assert cache.cache_key(recipes.paper_recipe("mnist", "insensitive"), seed=0, data_fingerprint="d") != \
        cache.cache_key(recipes.paper_recipe("mnist", "certainty"), seed=0, data_fingerprint="d")
    with pytest.raises(ValueError, match="model must be one of"):
        recipes.paper_recipe("mnist", "insensitive_as_launched")


def test_bad_recipe_names():
    with pytest.raises(ValueError, match="model must be one of"):
        recipes.paper_recipe("mnist", "robust")
    with pytest.raises(ValueError, match="dataset must be one of"):
        recipes.paper_recipe("cifar", "normal")
    with pytest.raises(ValueError, match="budget must be one of"):
        recipes.budget_batches("long", 100)


def test_cache_key_changes_with_every_recipe_field():
    base = recipes.paper_recipe("mnist", "doubleback")
    key = cache.cache_key(base, seed=0, data_fingerprint="abc")
    changed = {"dataset": "svhn", "model": "x", "penalty": "certainty", "penalty_weight": 1.0,
               "adversarial_eps": 0.1, "temperature": 2.0, "distill": True, "n_batches": 7,
               "teacher_batches": 3, "batch_size": 128, "learning_rate": 1e-3, "adam_epsilon": 1e-7}
    assert set(changed) == {f.name for f in dataclasses.fields(recipes.Recipe)}
    for field, value in changed.items():
        assert cache.cache_key(dataclasses.replace(base, **{field: value}), seed=0,
                               data_fingerprint="abc") != key, field
    assert cache.cache_key(base, seed=1, data_fingerprint="abc") != key
    assert cache.cache_key(base, seed=0, data_fingerprint="abd") != key
    assert cache.cache_key(base, seed=0, data_fingerprint="abc") == key



def test_code_fingerprint_ignores_docs_and_layout_but_not_code(tmp_path):
    """The training code's fingerprint (part of every cache key) keeps a user's cached models
    through docstring, comment and layout edits, and retrains after any change of the code."""
    from gradreg_tf import fingerprints

    src = ('"""Module doc."""\n\n\ndef step(x, lam=1.0):\n    """Doc."""\n'
           "    return x * lam  # scaled\n")
    variants = {
        "docs": src.replace("Doc.", "Other doc, longer.").replace("Module doc.", "New."),
        "layout": src.replace("# scaled", "# the penalty, scaled").replace("x * lam", "(x*lam)"),
        "constant": src.replace("lam=1.0", "lam=2.0"),
        "operator": src.replace("x * lam", "x / lam"),
        "no docstring": src.replace('    """Doc."""\n', ""),
    }

    def fp(text):
        (tmp_path / "m.py").write_text(text)
        return fingerprints.source_fingerprint(tmp_path, ["m.py"])

    base = fp(src)
    assert fp(variants["docs"]) == fp(variants["layout"]) == fp(variants["no docstring"]) == base
    assert fp(variants["constant"]) != base and fp(variants["operator"]) != base
    assert fingerprints.code_fingerprint() == fingerprints.source_fingerprint(
        pathlib.Path(fingerprints.__file__).parent, fingerprints.TRAINING_CODE)

def _tiny_dataset(n=256):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=n)
    x = rng.uniform(0, 0.2, size=(n, 28, 28, 1)).astype("float32")
    x[np.arange(n), y, 3:9, 0] = 1.0
    return Dataset(name="mnist", x_train=x, y_train=y, x_test=x[:64], y_test=y[:64],
                   x_valid=x[:0], y_valid=y[:0], bounds=(0.0, 1.0), class_names=tuple("0123456789"),
                   source="synthetic")


def test_cached_model_is_reused_and_corruption_retrains(tmp_path):
    ds = _tiny_dataset()
    recipe = dataclasses.replace(recipes.paper_recipe("mnist", "normal", n_batches=4), batch_size=64)
    kw = dict(dataset=ds, cache_dir=tmp_path, progress=False)
    first = zoo.cached_or_trained(recipe, ds.x_train, ds.y_train, **kw)
    files = sorted((tmp_path / "models" / "mnist").glob("*.keras"))
    assert len(files) == 1 and files[0].with_suffix(".json").exists()
    assert files[0].with_suffix(".curves.csv").exists()
    mtime = files[0].stat().st_mtime_ns
    again = zoo.cached_or_trained(recipe, ds.x_train, ds.y_train, **kw)
    assert files[0].stat().st_mtime_ns == mtime  # not retrained
    np.testing.assert_array_equal(first.predict(ds.x_test, verbose=0), again.predict(ds.x_test, verbose=0))
    # flip bytes in the middle of the file: detected by its sha256, retrained, warned
    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    files[0].write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupt.*sha256"):
        zoo.cached_or_trained(recipe, ds.x_train, ds.y_train, **kw)
    assert files[0].stat().st_mtime_ns != mtime
    # a truncated file with a matching (forged) sidecar still fails to load -> retrained
    files[0].write_bytes(b"not a zip")
    meta = files[0].with_suffix(".json")
    import json
    m = json.loads(meta.read_text())
    m["sha256"] = cache.file_sha256(files[0])
    meta.write_text(json.dumps(m))
    with pytest.warns(UserWarning, match="failed to load"):
        model = zoo.cached_or_trained(recipe, ds.x_train, ds.y_train, **kw)
    assert model.predict(ds.x_test[:2], verbose=0).shape == (2, 10)


def test_nan_guard_stops_and_caches_nothing(tmp_path):
    ds = _tiny_dataset()
    recipe = dataclasses.replace(recipes.paper_recipe("mnist", "doubleback", n_batches=4),
                                 batch_size=64, penalty_weight=1e9, learning_rate=1e35)
    with pytest.raises(training.NonFiniteLossError, match=r"non-finite loss at batch \d+ of mnist-doubleback"):
        zoo.cached_or_trained(recipe, ds.x_train, ds.y_train, dataset=ds, cache_dir=tmp_path,
                              progress=False)
    assert not list((tmp_path / "models").rglob("*[!t].keras"))  # no final model (a checkpoint may exist)
    # one error class, whichever module a caller catches it from
    assert training.NonFiniteLossError is models.NonFiniteLossError


def test_killed_run_resumes_to_identical_weights(tmp_path):
    """Kill a training process after a checkpoint, resume it, compare with an uninterrupted run."""
    script = str(HERE / "_resume_run.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(HERE.parent)}
    full = subprocess.run([sys.executable, script, str(tmp_path / "a.keras"), str(tmp_path / "a.npz")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr[-2000:]
    ckpt = tmp_path / "b.keras"
    proc = subprocess.Popen([sys.executable, script, str(ckpt), str(tmp_path / "b.npz"), "slow"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), "no checkpoint was written"
    time.sleep(1.0)  # a few more batches past the checkpoint: they are lost and redone
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "b.npz").exists(), "the run finished before it was killed"
    resumed = subprocess.run([sys.executable, script, str(ckpt), str(tmp_path / "b.npz")],
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert int(a["batches"]) == int(b["batches"])  # curve rows: none lost, none doubled
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
