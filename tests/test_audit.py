"""Tests of gradreg_tf.eval.audit, its figure and experiments/robustness_audit.py.

The done-when test trains three small MLPs on 3000 real MNIST images (a few seconds of CPU): a
normal model, and a distilled student trained at T=50 on the soft labels of a T=50 teacher and
predicted at T=1, the paper's distillation. The audit must flag the student as gradient-masked
(its FGSM-CE gradients underflow to exactly zero; margin attacks see through), show its
worst case falling to the normal model's, and leave the normal model unflagged. The other tests
check the audit's curves against direct attack calls on tiny linear models.
"""

import csv
import dataclasses
import json
import pathlib
import re

import keras
import numpy as np
import pytest

import gradreg_tf as g
from gradreg_tf import pretrained, zoo
from gradreg_tf.attacks import apgd, fgsm, pgd, predict_labels, random_sign_noise, square
from gradreg_tf.eval import audit
from gradreg_tf.plotting.audit import AUDIT_STYLES, plot_robustness_audit

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"
SHAPE = (4, 4, 1)
K = 4
CURVES = ("fgsm_ce", "fgsm_margin", "pgd_ce", "pgd_margin", "apgd_ce", "apgd_t", "square",
          "best_transfer", "noise", "worst_case")


# ----------------------------------------------------------------------------- real MNIST
def _mlp(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])


def _fit(model, x, y, learning_rate):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    model.fit(x, y, batch_size=64, epochs=4, verbose=0)
    return model


@pytest.fixture(scope="module")
def mnist(data_dir):
    ds = g.data.load("mnist", data_dir=data_dir)
    x, y = ds.x_train[:3000], ds.y_train[:3000]
    normal = _fit(g.GradRegClassifier(_mlp(0)), x, y, 1e-3)
    teacher = _fit(g.GradRegClassifier(_mlp(1), temperature=50.0), x, y, 1e-2)
    soft = zoo.soft_labels(teacher, x, temperature=50.0)
    distilled = _fit(g.GradRegClassifier(_mlp(2), temperature=50.0), x, soft, 1e-2)
    return ds, {"normal": normal, "distilled": distilled}


def assert_distilled_masked_and_normal_not(result, *, min_zero_share):
    """The done-when verdicts: "distilled" flagged as masked (zero gradients, CE weaker than the
    margin), its worst case at eps=0.3 down to the normal model's, "normal" not flagged."""
    checks = {d.check: d for d in result.diagnostics["distilled"]}
    assert result.masked("distilled")
    assert checks["zero_gradients"].flagged and checks["zero_gradients"].value > min_zero_share
    assert checks["ce_weaker_than_margin"].flagged
    assert (result.accuracy("distilled", "worst_case", 0.3)
            <= result.accuracy("normal", "worst_case", 0.3) + 0.03)
    assert not result.masked("normal"), result.diagnostics["normal"]


def test_audit_flags_the_distilled_model_and_not_the_normal_one(mnist):
    ds, models = mnist
    x, y = ds.x_test[:300], ds.y_test[:300]
    result = audit.robustness_audit(models, x, y, bounds=ds.bounds, epsilons=(0.1, 0.2, 0.3),
                                    steps=20, restarts=2, apgd_steps=20, square_queries=200)
    for name in models:
        assert result.accuracy(name, "worst_case", 0.0) > 0.85, name  # both models learned
    assert_distilled_masked_and_normal_not(result, min_zero_share=0.3)
    # white-box FGSM-CE much weaker than FGSM-margin and PGD-margin
    fgsm_ce = result.accuracy("distilled", "fgsm_ce", 0.3)
    assert fgsm_ce > result.accuracy("distilled", "fgsm_margin", 0.3) + 0.3
    assert fgsm_ce > result.accuracy("distilled", "pgd_margin", 0.3) + 0.3
    normal_checks = {d.check: d for d in result.diagnostics["normal"]}
    assert normal_checks["zero_gradients"].value == 0.0


def test_audit_flags_the_shipped_distilled_model_and_not_the_shipped_normal_one(data_dir):
    """The same verdicts on the paper-schedule models that ship with the package."""
    for model in ("normal", "distilled"):
        try:
            pretrained.verify("mnist", model)
        except pretrained.PretrainedModelError as err:
            pytest.fail(str(err))
    ds = g.data.load("mnist", data_dir=data_dir)
    models = {m: zoo.pretrained("mnist", m) for m in ("normal", "distilled")}
    result = audit.robustness_audit(models, ds.x_test[:300], ds.y_test[:300], bounds=ds.bounds,
                                    epsilons=(0.1, 0.3), steps=20, restarts=1, apgd_steps=10,
                                    apgd_targets=1, square_queries=100)
    assert_distilled_masked_and_normal_not(result, min_zero_share=0.9)
    assert result.accuracy("distilled", "fgsm_ce", 0.3) > 0.9  # the white-box "immunity" ...
    assert result.accuracy("distilled", "pgd_margin", 0.3) < 0.05  # ... the margin breaks


# ----------------------------------------------------------------------------- tiny models
def linear_model(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(K)])
    model.layers[-1].set_weights([(scale * rng.normal(size=(16, K))).astype(np.float32),
                                  (0.1 * rng.normal(size=K)).astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(60,) + SHAPE).astype(np.float32)
    models = {"a": linear_model(0), "b": linear_model(1), "c": linear_model(0, scale=400.0)}
    y = predict_labels(models["a"], x)
    y[::6] = (y[::6] + 1) % K  # some clean mistakes
    eps = (0.05, 0.1, 0.3)
    result = audit.robustness_audit(models, x, y, bounds=(0, 1), epsilons=eps, steps=5,
                                    restarts=2, seed=3, batch_size=16, fgsm_batch_size=25,
                                    apgd_steps=8, square_queries=30)
    return x, y, models, eps, result


def _acc(model, x, y):
    return float(np.mean(predict_labels(model, x) == y))


def test_curves_are_the_attacks_accuracies(tiny):
    x, y, models, eps, result = tiny
    assert result.epsilons == (0.0,) + eps
    for name, model in models.items():
        clean = _acc(model, x, y)
        for curve in CURVES:
            assert result.accuracy(name, curve, 0.0) == pytest.approx(clean), (name, curve)
        for e in eps:
            for loss in ("ce", "margin"):
                adv = fgsm(model, x, e, bounds=(0, 1), y=y, loss=loss, batch_size=25)
                assert result.accuracy(name, f"fgsm_{loss}", e) == pytest.approx(
                    _acc(model, adv, y)), (name, loss, e)
            noisy = random_sign_noise(x, e, bounds=(0, 1), seed=3)
            assert result.accuracy(name, "noise", e) == pytest.approx(_acc(model, noisy, y))
        # PGD at the first eps: the attack on the correctly classified examples
        ok = predict_labels(model, x) == y
        for loss in ("ce", "margin"):
            adv = pgd(model, x[ok], eps[0], bounds=(0, 1), y=y[ok], steps=5, restarts=2,
                      loss=loss, seed=3, batch_size=16)
            expected = np.sum(predict_labels(model, adv) == y[ok]) / len(x)
            assert result.accuracy(name, f"pgd_{loss}", eps[0]) == pytest.approx(expected)


def test_pgd_curves_and_worst_case_never_rise_and_worst_case_is_below_everything(tiny):
    _, _, models, eps, result = tiny
    for name in models:
        for curve in ("pgd_ce", "pgd_margin", "worst_case"):
            assert np.all(np.diff(result.curve(name, curve)) <= 0), (name, curve)
        worst = result.curve(name, "worst_case")
        for curve in CURVES:
            assert np.all(worst <= result.curve(name, curve) + 1e-12), (name, curve)
        transfers = [r for r in result.rows if r.model == name and r.attack == "transfer"]
        assert {(r.source, r.source_attack) for r in transfers} == {
            (s, a) for s in models if s != name
            for a in ("fgsm_ce", "fgsm_margin", "pgd_ce", "pgd_margin")}
        for i, e in enumerate(result.epsilons):
            best = min(r.accuracy for r in transfers if r.eps == e)
            assert result.curve(name, "best_transfer")[i] == pytest.approx(best)


def test_transfer_rows_score_the_sources_examples(tiny):
    x, y, models, eps, result = tiny
    adv = fgsm(models["b"], x, 0.1, bounds=(0, 1), y=y, loss="margin", batch_size=25)
    row = [r for r in result.rows if (r.model, r.attack, r.source, r.source_attack, r.eps)
           == ("a", "transfer", "b", "fgsm_margin", 0.1)]
    assert len(row) == 1 and row[0].accuracy == pytest.approx(_acc(models["a"], adv, y))


def test_saturated_model_is_flagged_and_diagnostics_are_complete(tiny):
    _, _, models, _, result = tiny
    assert [d.check for d in result.diagnostics["a"]] == [c.value for c in audit.Check]
    c = {d.check: d for d in result.diagnostics["c"]}
    assert c["zero_gradients"].flagged and c["zero_gradients"].value > 0.5
    assert "zero_gradients" in result.flags("c") and result.masked("c")
    assert result.settings["pgd_steps"] == 5 and result.settings["pgd_restarts"] == 2


def masked_clone(model):
    """The same logits as ``model`` with an input gradient of exactly zero everywhere."""
    inp = keras.Input(SHAPE)
    hidden = keras.layers.Lambda(lambda t: 0.0 * t + keras.ops.stop_gradient(t))(inp)
    out = keras.layers.Dense(K)(keras.layers.Flatten()(hidden))
    clone = keras.Model(inp, out)
    clone.layers[-1].set_weights(model.layers[-1].get_weights())
    return clone


def test_a_model_that_hides_its_gradients_is_caught_by_transfer_from_its_twin():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, size=(80,) + SHAPE).astype(np.float32)
    twin = linear_model(6)
    models = {"twin": twin, "hidden": masked_clone(twin)}
    y = predict_labels(twin, x)
    result = audit.robustness_audit(models, x, y, bounds=(0, 1), epsilons=(0.1, 0.2, 0.4),
                                    steps=5, restarts=1, apgd_steps=10, square_queries=100)
    c = {d.check: d for d in result.diagnostics["hidden"]}
    assert c["zero_gradients"].value == 1.0
    assert c["whitebox_weaker_than_transfer"].flagged and result.masked("hidden")
    assert np.all(result.curve("hidden", "fgsm_ce") == 1.0)  # nothing moves
    transfer = result.curve("hidden", "best_transfer")
    assert transfer[-1] < 0.5
    # the worst case is per example over every attack, transfer included
    assert np.all(result.curve("hidden", "worst_case") <= transfer)
    assert result.accuracy("hidden", "worst_case", 0.4) <= result.accuracy("twin", "worst_case",
                                                                          0.4) + 0.05


def test_one_model_has_no_transfer():
    x = np.random.default_rng(1).uniform(0, 1, (20,) + SHAPE).astype(np.float32)
    model = linear_model(5)
    result = audit.robustness_audit({"only": model}, x, predict_labels(model, x), bounds=(0, 1),
                                    epsilons=(0.1,), steps=2, restarts=1)
    assert np.isnan(result.curve("only", "best_transfer")[1])
    check = {d.check: d for d in result.diagnostics["only"]}["whitebox_weaker_than_transfer"]
    assert np.isnan(check.value) and not check.flagged and check.status == "not evaluated"
    # eps 0.1 < half the pixel range: the large-eps check was not measured, neither raised nor
    # cleared (issue 24: it used to be raised from the largest eps run, whatever its size)
    large = {d.check: d for d in result.diagnostics["only"]}["large_eps_not_broken"]
    assert large.status == "not evaluated" and not large.flagged and np.isnan(large.value)
    assert set(result.not_evaluated("only")) == {"whitebox_weaker_than_transfer",
                                                 "large_eps_not_broken"}


def test_large_eps_check_is_evaluated_with_a_large_eps(tiny):
    _, _, models, _, result = tiny  # largest eps 0.3 < 0.5: not evaluated
    assert "large_eps_not_broken" in result.not_evaluated("a")
    x = np.random.default_rng(1).uniform(0, 1, (20,) + SHAPE).astype(np.float32)
    model = linear_model(5)
    done = audit.robustness_audit({"only": model}, x, predict_labels(model, x), bounds=(0, 1),
                                  epsilons=(0.6,), steps=2, restarts=1, apgd_steps=5,
                                  square_queries=5)
    large = {d.check: d for d in done.diagnostics["only"]}["large_eps_not_broken"]
    assert large.status in ("raised", "cleared") and large.eps == 0.6


@pytest.mark.parametrize("field", ["zero_gradient_share", "accuracy_gap", "large_eps_accuracy",
                                   "margin_gap", "large_eps"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, "0.1", True])
def test_thresholds_refuse_nan_and_other_non_numbers(field, value):
    with pytest.raises(ValueError, match=f"Thresholds.{field}"):
        audit.Thresholds(**{field: value})


def test_new_attacks_curves_are_the_attacks_accuracies_at_the_first_eps(tiny):
    x, y, models, eps, result = tiny
    for name, model in models.items():
        ok = predict_labels(model, x) == y
        runs = {
            "apgd_ce": apgd(model, x[ok], eps[0], bounds=(0, 1), y=y[ok], loss="ce", steps=8,
                            seed=3, batch_size=16),
            "apgd_t": apgd(model, x[ok], eps[0], bounds=(0, 1), y=y[ok], loss="dlr_targeted",
                           steps=8, n_targets=3, seed=3, batch_size=16),
        }
        for attack, adv in runs.items():
            expected = np.sum(predict_labels(model, adv) == y[ok]) / len(x)
            assert result.accuracy(name, attack, eps[0]) == pytest.approx(expected), (
                name, attack)
        # Square runs on the images every own gradient attack left correct
        survivors = np.logical_and.reduce([result.correct[(name, name, a)][1]
                                           for a in audit.GRADIENT_ATTACKS])
        adv = square(model, x[survivors], eps[0], bounds=(0, 1), y=y[survivors], queries=30,
                     p_init=0.8, seed=3, batch_size=16)
        expected = np.sum(predict_labels(model, adv) == y[survivors]) / len(x)
        assert result.accuracy(name, "square", eps[0]) == pytest.approx(expected), name


def test_worst_case_recomputes_from_per_example_results_on_any_subset(tiny, tmp_path):
    x, y, models, eps, result = tiny
    for name in models:
        np.testing.assert_allclose(result.worst_case(name), result.curve(name, "worst_case"))
    path = tmp_path / "audit.per_example.npz"
    audit.save_per_example(result, path)
    epsilons, clean, correct = audit.load_per_example(path)
    assert epsilons == result.epsilons and set(clean) == set(models)
    subset = np.arange(0, len(x), 3)
    for name in models:
        robust = clean[name][None, :].copy()
        for (target, _, _), ok in correct.items():
            if target == name:
                robust = robust & ok
        np.testing.assert_allclose(result.worst_case(name, subset),
                                   robust[:, subset].mean(axis=1))
    assert ("a", "a", "square") in correct and ("a", "b", "pgd_ce") in correct


def test_gradient_free_stronger_than_gradient_attacks_is_a_masking_flag():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, size=(60,) + SHAPE).astype(np.float32)
    hidden = masked_clone(linear_model(6))
    y = predict_labels(hidden, x)
    result = audit.robustness_audit({"hidden": hidden}, x, y, bounds=(0, 1),
                                    epsilons=(0.1, 0.2), steps=5, restarts=1, apgd_steps=10,
                                    square_queries=200)
    check = {d.check: d for d in result.diagnostics["hidden"]}["gradient_free_stronger_than_gradient"]
    assert result.accuracy("hidden", "fgsm_ce", 0.2) == 1.0  # no gradient, nothing moves
    survivors = np.logical_and.reduce([result.correct[("hidden", "hidden", a)]
                                       for a in audit.GRADIENT_ATTACKS])
    assert result.accuracy("hidden", "square", 0.2) < np.mean(survivors[2]) - 0.05
    assert check.value >= np.mean(survivors[2]) - result.accuracy("hidden", "square", 0.2)
    assert check.flagged and check.status == "raised" and "gradient_free_stronger_than_gradient" \
        in result.flags("hidden")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"models": {}}, ValueError, "non-empty mapping"),
        ({"models": {1: None}}, TypeError, "model names must be non-empty strings"),
        ({"epsilons": ()}, ValueError, "value > 0"),
        ({"epsilons": (0,)}, ValueError, "value > 0"),
        ({"epsilons": (0.1, 0.1)}, ValueError, "must not repeat"),
        ({"apgd_steps": 0}, ValueError, "apgd_steps"),
        ({"apgd_targets": 4}, ValueError, "apgd_targets"),
        ({"square_queries": 0}, ValueError, "square_queries"),
        ({"epsilons": (0.1, -0.2)}, ValueError, "epsilons must be a finite number >= 0"),
        ({"epsilons": 0.3}, ValueError, "epsilons must be a sequence"),
        ({"steps": 0}, ValueError, "steps must be an integer >= 1"),
        ({"restarts": 1.5}, ValueError, "restarts"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0, received -1"),
        ({"fgsm_batch_size": 0}, ValueError, "fgsm_batch_size"),
        ({"bounds": (0, 0.5)}, ValueError, "outside bounds"),
        ({"y": [0] * 3}, ValueError, "3 labels but the batch has 10"),
        ({"y": [7] * 10}, ValueError, r"y must be in \[0, 3\]"),
        ({"thresholds": {"accuracy_gap": 0.1}}, TypeError, "thresholds must be"),
        ({"models": {"a": "x", "b": "y"}, "x_int": True}, TypeError, "floating dtype"),
    ],
)
def test_bad_inputs_raise_before_attacking(kwargs, error, match):
    kwargs = dict(kwargs)
    x = np.random.default_rng(2).uniform(0, 1, (10,) + SHAPE).astype(np.float32)
    if kwargs.pop("x_int", False):
        x = (x * 255).astype(np.uint8)
    args = {"models": {"a": linear_model(0), "b": linear_model(1)}, "y": [0] * 10,
            "bounds": (0, 1), **kwargs}
    with pytest.raises(error, match=match):
        audit.robustness_audit(args.pop("models"), x, args.pop("y"), **args)


def test_models_must_agree_on_classes():
    four = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(5)])
    x = np.random.default_rng(3).uniform(0, 1, (5,) + SHAPE).astype(np.float32)
    with pytest.raises(ValueError, match="same number of classes"):
        audit.robustness_audit({"a": linear_model(0), "four": four}, x, [0] * 5, bounds=(0, 1))


# ----------------------------------------------------------------------------- figure
def test_figure_has_a_panel_per_model_and_a_bold_worst_case(tiny):
    _, _, models, _, result = tiny
    curves = {m: {c: result.curve(m, c) for c in AUDIT_STYLES} for m in models}
    fig = plot_robustness_audit(result.epsilons, curves, flags={"c": result.flags("c")},
                                title="t", caption="c")
    panels = [ax for ax in fig.axes if ax.lines]
    assert len(panels) == 3
    for ax in panels:
        widths = {line.get_label(): line.get_linewidth() for line in ax.lines}
        assert widths["worst case"] > max(w for k, w in widths.items() if k != "worst case")
    notes = [" ".join(text.get_text() for text in ax.texts) for ax in panels]
    assert "masked" in notes[2] and "masked" not in notes[0]
    with pytest.raises(ValueError, match="one value per eps"):
        plot_robustness_audit((0, 0.1), {"a": {"noise": np.zeros(3)}})


# ----------------------------------------------------------------------------- the script
def test_script_end_to_end(tmp_path, data_dir, monkeypatch):  # noqa: C901
    full = g.data.load("mnist", data_dir=data_dir)
    small = dataclasses.replace(full, x_test=full.x_test[:40], y_test=full.y_test[:40])
    trained = {}

    def trained_model(dataset, model, **kw):  # tiny untrained-but-distinct models, by name
        if model not in trained:
            net = _mlp(len(trained))
            trained[model] = net
        return trained[model]

    monkeypatch.setattr(g.data, "load", lambda name, data_dir=None, seed=0: small)
    monkeypatch.setattr(zoo, "trained_model", trained_model)
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import robustness_audit

    out = tmp_path / "out"
    result = robustness_audit.main(["--budget", "quick", "--n-test", "30", "--steps", "2",
                                    "--restarts", "1", "--epsilons", "0.1,0.3", "--models",
                                    "normal,distilled", "--out", str(out), "--no-progress",
                                    "--apgd-steps", "3", "--square-queries", "5"])
    stem = out / "mnist_robustness_audit_quick"
    # (a git-ignored run log ``<stem>.run.json`` may sit beside the JSON: not a result)
    names = sorted(p.name for p in out.iterdir() if not p.name.endswith(".run.json"))
    assert names == sorted(f"{stem.name}.{s}" for s in ("csv", "json", "md", "png", "pdf",
                                                         "per_example.npz"))
    epsilons, clean, correct = audit.load_per_example(stem.with_suffix(".per_example.npz"))
    assert epsilons == result.epsilons and ("normal", "normal", "apgd_t") in correct
    with open(stem.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result.rows) and rows[0]["budget"] == "quick"
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert meta["settings"]["pgd_steps"] == 2 and meta["n_examples"] == 30
    assert set(meta["masked"]) == {"normal", "distilled"}
    assert [s["model"] for s in meta["summary"]] == ["normal", "distilled"]
    assert meta["summary"][0]["worst_case@0.3"] == result.accuracy("normal", "worst_case", 0.3)
    table = stem.with_suffix(".md").read_text()
    assert "Best transfer ε=0.1" in table and "Worst case ε=0.3" in table
    # largest eps 0.3 < 0.5: the large-eps check is said to be not evaluated, never "no"
    assert "not evaluated: large_eps_not_broken" in table
    assert meta["not_evaluated"]["normal"] == ["large_eps_not_broken"]


@pytest.mark.parametrize("argv, match", [
    (["--models", "normal,bogus"], "unknown"),
    (["--epsilons", "0.1,x"], "--epsilons: expected comma-separated finite numbers >= 0"),
    (["--epsilons", "-0.1"], "--epsilons: expected comma-separated finite numbers >= 0"),
    (["--steps", "0"], "--steps.*>= 1"),
    (["--attack-seed", "-3"], "--attack-seed.*>= 0"),
    (["--epsilons", "0"], "--epsilons: needs a value > 0"),
    (["--epsilons", "0.1,0.1"], "--epsilons: each value at most once"),
    (["--square-queries", "0"], "--square-queries.*>= 1"),
])
def test_script_rejects_bad_flags_before_loading_anything(argv, match, monkeypatch, capsys):
    def no_load(*a, **k):
        raise AssertionError("data loaded before the flags were checked")

    monkeypatch.setattr(g.data, "load", no_load)
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import robustness_audit

    with pytest.raises(SystemExit):
        robustness_audit.main(argv)
    assert re.search(match, capsys.readouterr().err)
