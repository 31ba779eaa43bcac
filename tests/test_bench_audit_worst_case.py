"""bench/attacks.py's audit worst case (issue 24): the audit's per-image worst case on the first n
images, read from a full audit's per-example file, used only when that file matches the models."""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

from gradreg_tf.attacks import predict_labels

try:
    from gradreg_tf.eval import audit
except ImportError:  # before the move to the eval package
    from gradreg_tf import audit

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "attacks.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_attacks", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (12, 4, 4, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(5)])
    model.layers[-1].set_weights([rng.normal(size=(16, 5)).astype(np.float32),
                                  np.zeros(5, np.float32)])
    pred = np.asarray(predict_labels(model, x))
    y = pred.copy()
    y[::3] = (y[::3] + 1) % 5  # a third misclassified
    return model, x, y.astype(np.int64)


def _file(tmp_path, clean, correct, epsilons=(0.0, 0.1, 0.2)):
    result = audit.AuditResult(rows=(), diagnostics={}, epsilons=epsilons, settings={},
                               seconds={}, correct=correct, clean=clean)
    path = tmp_path / "audit.per_example.npz"
    audit.save_per_example(result, path)
    return path


def test_worst_case_on_the_first_images_of_a_larger_audit(bench, setup, tmp_path):
    model, x, y = setup
    clean = np.asarray(predict_labels(model, x)) == y
    rng = np.random.default_rng(1)
    correct = {("m", src, att): rng.uniform(size=(3, 12)) < 0.8
               for src in ("m", "other") for att in ("pgd_ce", "apgd_t")}
    path = _file(tmp_path, {"m": clean, "other": np.ones(12, bool)}, correct)
    n = 9
    worst, source, seconds = bench.audit_worst_case({"m": model}, x[:n], y[:n], 0.1, (0.0, 1.0),
                                                    path)
    robust = clean[:n] & np.logical_and.reduce([ok[1, :n] for ok in correct.values()])
    assert worst == {"m": pytest.approx(float(np.mean(robust)))}
    assert seconds is None and "2 models" in source


@pytest.mark.parametrize("case", ["other_model", "eps", "too_few"])
def test_a_file_that_does_not_match_is_not_used(bench, setup, tmp_path, monkeypatch, case):
    model, x, y = setup
    clean = np.asarray(predict_labels(model, x)) == y
    if case == "other_model":
        clean = ~clean  # another model's clean results
    ok = np.ones((3, 12), bool)
    path = _file(tmp_path, {"m": clean}, {("m", "m", "pgd_ce"): ok},
                 epsilons=(0.0, 0.2, 0.3) if case == "eps" else (0.0, 0.1, 0.2))
    xs, ys = (x, y) if case != "too_few" else (np.concatenate([x, x]), np.concatenate([y, y]))
    ran = {}

    class Stub:
        def worst_case(self, name):
            return np.array([1.0, 0.25])

    def fake_audit(models, xa, ya, *, bounds, epsilons):
        ran.update(models=tuple(models), n=len(xa), epsilons=epsilons)
        return Stub()

    monkeypatch.setattr(audit, "robustness_audit", fake_audit)
    worst, source, seconds = bench.audit_worst_case({"m": model}, xs, ys, 0.1, (0.0, 1.0), path)
    assert ran == {"models": ("m",), "n": len(xs), "epsilons": (0.0, 0.1)}
    assert worst == {"m": 0.25} and seconds is not None and "only" in source
