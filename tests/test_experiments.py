"""Every figure script end to end on a tiny budget (real MNIST subset, synthetic SVHN).

The scripts run in-process through ``main(argv)``: ``gradreg_tf.data.load`` is patched to
return 2048 training / 1000 test images of the real MNIST (``--batches 1`` = one epoch of 8
batches of 256 per model), models are trained once into a temporary cache shared by the whole
module, and ``zoo.trained_model`` is memoized so each script reuses the same in-memory models.
"""

import csv
import dataclasses
import json
import math
import pathlib
import re

import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from gradreg_tf import attacks, data, published, zoo
from gradreg_tf.eval import grids
from gradreg_tf.recipes import PAPER_MODELS

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"
TINY = ["--batches", "1", "--no-progress"]


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_svhn(directory: pathlib.Path, *, per_class=24, n_test=300, seed=0):
    """Official-layout SVHN .mat files (X uint8 (32, 32, 3, N), y with 10 meaning 0) whose
    images carry a learnable class signal (a bright stripe at a class-dependent row)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)

    def write(name, labels):
        x = rng.integers(0, 120, (32, 32, 3, len(labels)), dtype=np.uint8)
        for i, lab in enumerate(labels):
            x[3 * lab:3 * lab + 3, :, :, i] = 250
        y = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
        scipy.io.savemat(directory / name, {"X": x, "y": y})

    write("train_32x32.mat", rng.permutation(np.repeat(np.arange(10), per_class)))
    write("test_32x32.mat", rng.integers(0, 10, n_test))
    write("extra_32x32.mat", rng.permutation(np.repeat(np.arange(10), 4)))
    return directory


@pytest.fixture(scope="module")
def env(tmp_path_factory, data_dir):
    """Tiny data, a temporary model cache and memoized models for the whole module."""
    from gradreg_tf.data import svhn

    root = tmp_path_factory.mktemp("experiments")
    full = data.load("mnist", data_dir=data_dir)
    tiny = {"mnist": dataclasses.replace(full, x_train=full.x_train[:2048],
                                         y_train=full.y_train[:2048], x_test=full.x_test[:1000],
                                         y_test=full.y_test[:1000])}
    svhn_dir = _write_svhn(root / "svhn_mat")
    original_trained_model = zoo.trained_model
    memo = {}

    def load(name, *, data_dir=None, seed=0):
        name = name.lower()
        if name == "svhn":
            if "svhn" not in tiny:
                tiny["svhn"] = svhn.load_svhn(data_dir=svhn_dir, seed=seed,
                                              valid_per_class_train=2, valid_per_class_extra=1)
            return tiny["svhn"]
        if name not in tiny:
            raise AssertionError(f"the tests only provide mnist and svhn, asked for {name!r}")
        return tiny[name]

    def trained_model(dataset, model, **kw):
        key = (id(dataset), model, kw.get("budget"), kw.get("n_batches"), kw.get("seed"),
               kw.get("recipe"))
        if key not in memo:
            memo[key] = original_trained_model(dataset, model, **kw)
        return memo[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADREG_CACHE", str(root / "cache"))
        mp.setattr(data, "load", load)
        mp.setattr(zoo, "trained_model", trained_model)
        mp.syspath_prepend(str(EXPERIMENTS))
        yield {"root": root, "mnist": tiny["mnist"], "load": load, "models": memo}


def run(env, script: str, *args, out="figures"):
    import importlib

    module = importlib.import_module(script)
    out_dir = env["root"] / out
    result = module.main([*args, *TINY, "--out", str(out_dir)])
    return out_dir, result


def models_of(env, ds):
    return {m: zoo.trained_model(ds, m, budget="paper", n_batches=1, seed=0, cache_dir=None,
                                 progress=False, strategy=None) for m in PAPER_MODELS}


def assert_figure(stem: pathlib.Path):
    for ext in ("png", "pdf"):
        path = stem.with_name(f"{stem.name}.{ext}")
        assert path.is_file() and path.stat().st_size > 5000, path


# ------------------------------------------------------------------------------ transfer grids


def check_transfer_csv(path, ds, models, n):
    rows = _read(path)
    assert list(rows[0]) == list(published.TRANSFER_FIELDS) + ["whitebox"]
    assert len(rows) == 2 * 25 * 8
    for attack in ("fgsm", "tgsm"):
        these = [r for r in rows if r["attack"] == attack]
        assert len(these) == 25 * 8
        assert {(r["source_model"], r["target_model"]) for r in these} == {
            (s, t) for s in PAPER_MODELS for t in PAPER_MODELS}
        assert sorted({float(r["eps"]) for r in these}) == list(grids.PAPER_EPSILONS)
    for r in rows:
        acc = float(r["accuracy"])
        assert r["dataset"] == ds.name and 0.0 <= acc <= 1.0 and int(r["n_examples"]) == n
        assert acc == pytest.approx(int(r["n_correct"]) / n)
        assert r["whitebox"] == str(int(r["source_model"] == r["target_model"]))
    for name, model in models.items():  # eps = 0: clean accuracy of the target on those images
        clean = grids.accuracy(model, ds.x_test[:n], ds.y_test[:n], batch_size=n)
        zero = [float(r["accuracy"]) for r in rows
                if r["target_model"] == name and float(r["eps"]) == 0.0]
        assert len(zero) == 2 * 5 and zero == pytest.approx([clean] * 10), name
    return rows


def test_mnist_transfer(env):
    out, returned = run(env, "mnist_transfer", "--n-examples", "64", "--n-claims", "128")
    ds = env["mnist"]
    models = models_of(env, ds)
    rows = check_transfer_csv(out / "mnist_transfer.csv", ds, models, 64)
    assert len(returned) == len(rows)
    for attack in ("fgsm", "tgsm"):
        assert_figure(out / f"mnist_transfer_{attack}")
    # one white-box cell recomputed with the attack itself
    x_adv = attacks.fgsm(models["normal"], ds.x_test, 0.3, bounds=ds.bounds, y=ds.y_test)
    expected = grids.accuracy(models["normal"], np.asarray(x_adv)[:64], ds.y_test[:64],
                              batch_size=64)
    cell = [r for r in rows if r["attack"] == "fgsm" and r["source_model"] == "normal"
            and r["target_model"] == "normal" and float(r["eps"]) == 0.3]
    assert float(cell[0]["accuracy"]) == pytest.approx(expected)
    meta = json.loads((out / "mnist_transfer.json").read_text())
    assert meta["n_examples"] == 64 and meta["batches_per_model"] == 8
    assert set(meta["clean_accuracy_on_attacked_images"]) == set(PAPER_MODELS)
    # the claims' side of ours: a grid on the first 128 images, one of its cells recomputed
    assert meta["n_claims"] == 128 and len(meta["claims"]) == 9
    acc = {}
    for m in ("doubleback", "normal"):
        x_adv = attacks.fgsm(models[m], ds.x_test, 0.1, bounds=ds.bounds, y=ds.y_test)
        pred = np.argmax(models[m].predict(np.asarray(x_adv)[:128], verbose=0), -1)
        acc[m] = np.mean(pred == ds.y_test[:128])
    whitebox = next(c for c in meta["claims"] if c["key"] == "doubleback_beats_normal_whitebox")
    assert f"eps 0.1: d={acc['doubleback'] - acc['normal']:+.3f}" in whitebox["detail"]
    cmp = meta["attacks"]["fgsm"]["vs_published"]
    theirs = {(r["target_model"], r["source_model"], round(r["eps"], 2)): r["accuracy"]
              for r in published.load_transfer(dataset="mnist", attack="fgsm")}
    diffs = [abs(float(r["accuracy"]) - theirs[(r["target_model"], r["source_model"],
                                                 round(float(r["eps"]), 2))])
             for r in rows if r["attack"] == "fgsm"]
    assert cmp["n_points"] == 200 == len(diffs)
    assert cmp["mean_abs_difference"] == pytest.approx(np.mean(diffs), abs=1e-9)


def test_transfer_entry_points_and_bad_options(env, monkeypatch, capsys):
    import importlib

    transfer = importlib.import_module("transfer")
    seen = []
    monkeypatch.setattr(transfer, "main", lambda argv=None, *, default_dataset: seen.append(
        (argv, default_dataset)))
    for name in ("mnist", "notmnist", "svhn"):
        importlib.import_module(f"{name}_transfer").main(["--quick"])
    assert seen == [(["--quick"], "mnist"), (["--quick"], "notmnist"), (["--quick"], "svhn")]
    monkeypatch.undo()

    def no_load(*a, **k):
        raise AssertionError("data loaded before the options were checked")

    monkeypatch.setattr(data, "load", no_load)
    for bad, match in ((["--n-examples", "0"], "--n-examples"),
                       (["--n-examples", "many"], "--n-examples"),
                       (["--attacks", "pgd"], "--attacks"),
                       (["--n-claims", "-1"], "--n-claims"),
                       *((["--epsilons", e], r"--epsilons: expected comma-separated finite "
                                             rf"numbers >= 0, received '{re.escape(e)}'")
                         for e in ("a,b", "-1", "nan", "0.1,", "inf"))):
        with pytest.raises(SystemExit):
            transfer.main(bad + TINY)
        assert re.search(match, capsys.readouterr().err), bad


def test_svhn_transfer_on_synthetic_mat_files(env):
    out, _ = run(env, "svhn_transfer", "--n-examples", "32", "--attacks", "fgsm,tgsm")
    ds = env["load"]("svhn")
    assert ds.x_test.shape == (300, 32, 32, 1)
    models = models_of(env, ds)
    check_transfer_csv(out / "svhn_transfer.csv", ds, models, 32)
    assert_figure(out / "svhn_transfer_fgsm")
    meta = json.loads((out / "svhn_transfer.json").read_text())
    assert meta["dataset"] == "svhn" and meta["n_examples"] == 32


# ------------------------------------------------------------------------------ other figures


def test_gradient_maps(env):
    out, stats = run(env, "gradient_maps")
    assert_figure(out / "mnist_gradient_maps")
    saved = np.load(out / "mnist_gradient_maps.npz")
    ds = env["mnist"]
    assert [int(ds.y_test[i]) for i in saved["indices"]] == list(range(6))
    for m in PAPER_MODELS:
        g = saved[f"grad_{m}"]
        assert g.shape == (6, 28, 28, 1) and np.all(np.isfinite(g)) and np.any(g != 0)
    assert set(stats) == set(PAPER_MODELS)


def test_logprob_histograms(env):
    out, summary = run(env, "logprob_histograms")
    assert_figure(out / "mnist_logprob_histograms")
    rows = _read(out / "mnist_logprob_histograms.csv")
    per_model = {}
    for r in rows:
        assert float(r["bin_left"]) < float(r["bin_right"]) <= 0
        per_model[r["model"]] = per_model.get(r["model"], 0) + int(r["count"])
    assert set(per_model) == set(PAPER_MODELS)
    for m, total in per_model.items():  # every log-prob in range is counted once
        frac = summary[m]["fraction_below_panel"]
        assert total == pytest.approx(1000 * 10 * (1 - frac), abs=1)
        assert summary[m]["median_top_logp"] <= 0


def test_gradient_norms(env):
    out, rows = run(env, "gradient_norms")
    assert_figure(out / "mnist_gradient_norms")
    assert len(rows) == 10 and {r["attack"] for r in rows} == {"fgsm", "tgsm"}
    raw = np.load(out / "mnist_gradient_norms.npz")
    ds = env["mnist"]
    model = models_of(env, ds)["normal"]
    import tensorflow as tf

    from gradreg_tf import gradients as G

    g, _ = G.xent_gradient(model, tf.constant(ds.x_test[:1000]), tf.constant(
        ds.y_test[:1000].astype(np.int32)))
    expected = np.linalg.norm(g.numpy().reshape(1000, -1), axis=1)
    np.testing.assert_allclose(raw["fgsm_normal"], np.maximum(expected, 1e-20), rtol=1e-5)
    assert all(np.all(v >= 1e-20) for v in raw.values())


def test_venn_overlaps(env):
    out, rows = run(env, "venn_overlaps")
    for attack in ("fgsm", "tgsm"):
        assert_figure(out / f"mnist_venn_{attack}")
    assert len(rows) == 2 * 3 * 7
    meta = json.loads((out / "mnist_venn.json").read_text())
    assert meta["eps"] == 0.4 and meta["n_examples"] == 256
    for key, item in meta["overlaps"].items():
        regions = item["regions"]
        for i, m in enumerate(meta["sets_order"]):
            assert sum(v for code, v in regions.items() if code[i] == "1") == item["fooled"][m]
    # the normal model fooled by its own FGSM examples, recomputed
    ds = env["mnist"]
    normal = models_of(env, ds)["normal"]
    x_adv = np.asarray(attacks.fgsm(normal, ds.x_test, 0.4, bounds=ds.bounds, y=ds.y_test))[:256]
    wrong = int(np.sum(attacks.predict_labels(normal, x_adv) != ds.y_test[:256]))
    assert meta["overlaps"]["fgsm/normal"]["fooled"]["normal"] == wrong


def test_training_curves(env):
    out, summary = run(env, "training_curves")
    assert_figure(out / "mnist_training_curves")
    rows = _read(out / "mnist_training_curves.csv")
    assert {r["model"] for r in rows} == {"normal", "doubleback"}
    ds = env["mnist"]
    models = models_of(env, ds)
    for r in rows:
        assert float(r["batch"]) == 8  # one curve row at the end of the 8 batches
        pred = np.argmax(models[r["model"]].predict(ds.x_test[:512], verbose=0), -1)
        assert float(r["test_accuracy"]) == pytest.approx(np.mean(pred == ds.y_test[:512]))
        assert 0 <= float(r["fgsm_accuracy"]) <= 1  # the reference model is the script's own
    assert summary["doubleback"]["points"] == 1


def test_tgsm_grids(env):
    out, rows = run(env, "tgsm_grids", "--steps", "3")
    assert_figure(out / "mnist_tgsm_grids")
    assert len(rows) == 5 * 100
    for r in rows:
        assert int(r["success"]) == int(r["predicted"] == r["target_class"])
        assert 0 <= r["p_target"] <= 1
    saved = np.load(out / "mnist_tgsm_grids.npz")
    ds = env["mnist"]
    for m in PAPER_MODELS:
        grid = saved[f"x_adv_{m}"]
        assert grid.shape == (10, 10, 28, 28, 1)
        assert grid.min() >= ds.bounds.lower and grid.max() <= ds.bounds.upper
        off = grid[~np.eye(10, dtype=bool)] - np.repeat(grid[np.arange(10), np.arange(10)], 9, 0)
        assert np.abs(off).max() <= 3 * 0.1 + 1e-6  # three steps of 0.1, no projection
    models = models_of(env, ds)
    for m in PAPER_MODELS:
        grid = saved[f"x_adv_{m}"].reshape(100, 28, 28, 1)
        p = tf.nn.softmax(models[m].predict(grid, verbose=0)).numpy().reshape(10, 10, 10)
        mine = [r for r in rows if r["model"] == m]
        for r in mine:
            src, tgt = r["original_class"], r["target_class"]
            assert r["p_target"] == pytest.approx(p[src, tgt, tgt], abs=1e-5)
    meta = json.loads((out / "mnist_tgsm_grids.json").read_text())
    assert meta["steps"] == 3
    for m, rate in meta["success_rate_off_diagonal"].items():
        off = [r["success"] for r in rows if r["model"] == m
               and r["original_class"] != r["target_class"]]
        assert rate == pytest.approx(np.mean(off))


def test_jsma_grids(env):
    out, rows = run(env, "jsma_grids", "--n-classes", "3", "--gamma", "0.05")
    assert_figure(out / "mnist_jsma_grids")
    assert len(rows) == 5 * 9
    cap = 2 * math.floor(784 * 0.05 / 2)
    for r in rows:
        assert 0 <= r["n_changed"] <= cap
        if r["original_class"] == r["target_class"]:
            assert r["n_changed"] == 0
        assert int(r["success"]) == int(r["predicted"] == r["target_class"])


def test_lambda_sweep_tiny(env):
    out, rows = run(env, "lambda_sweep", "--kinds", "insensitive", "--points", "2")
    assert_figure(out / "mnist_lambda_sweep")
    assert sorted({r["lambda"] for r in rows}) == [1.0, 1000.0]
    assert len(rows) == 2 * (1 + 2 * 3)
    ds = env["mnist"]
    paper_model = models_of(env, ds)["insensitive"]  # λ = 1000 is the paper's model
    pred = np.argmax(paper_model.predict(ds.x_test[:1000], verbose=0), -1)
    clean = [r["accuracy"] for r in rows if r["lambda"] == 1000.0 and r["metric"] == "clean"]
    assert clean == [pytest.approx(np.mean(pred == ds.y_test[:1000]))]
    meta = json.loads((out / "mnist_lambda_sweep.json").read_text())
    assert meta["paper_lambda"] == {"insensitive": 1000.0}


@pytest.mark.slow
def test_lambda_sweep_full_grid(env):
    out, rows = run(env, "lambda_sweep", out="sweep_full")
    assert len({(r["kind"], r["lambda"]) for r in rows}) == 26


def test_clean_accuracy(env):
    out, rows = run(env, "clean_accuracy")
    ds = env["mnist"]
    models = models_of(env, ds)
    assert [r["model"] for r in rows] == list(PAPER_MODELS)
    paper = published.clean_accuracy_table("mnist")
    for r in rows:
        assert r["accuracy"] == pytest.approx(
            grids.accuracy(models[r["model"]], ds.x_test, ds.y_test), abs=1e-4)
        assert r["published_accuracy"] == paper[r["model"]] and r["n_examples"] == 1000
        pred = np.argmax(models[r["model"]].predict(ds.x_test, verbose=0), -1)
        conf = np.zeros((10, 10))
        np.add.at(conf, (ds.y_test, pred), 1)
        tp = np.diag(conf)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * tp / (conf.sum(0) + conf.sum(1)))
        assert r["f1_macro"] == pytest.approx(f1.mean(), abs=1e-4)
    md = (out / "mnist_clean_accuracy.md").read_text()
    assert md.count("\n| ") == 6 and "99.30" in md
    assert len(_read(out / "mnist_clean_accuracy.csv")) == 5


def test_adversarial_examples(env):
    out, rows = run(env, "adversarial_examples")
    for attack in ("fgsm", "tgsm"):
        assert_figure(out / f"mnist_examples_{attack}")
    assert len(rows) == 2 * 5 * 10
    ds = env["mnist"]
    normal = models_of(env, ds)["normal"]
    x = tf.constant(ds.x_test[:1000])  # the original's gradient chunk of 1000
    with tf.GradientTape() as tape:
        tape.watch(x)
        ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=ds.y_test[:1000].astype("int32"), logits=normal(x, training=False)))
    zeros = np.sum(tape.gradient(ce, x).numpy()[:10] == 0, axis=(1, 2, 3))
    got = [r["unperturbed_pixels"] for r in rows
           if r["attack"] == "fgsm" and r["source_model"] == "normal"]
    assert got == zeros.tolist()


def test_insensitive_variants(env):
    out, rows = run(env, "insensitive_variants")
    ds = env["mnist"]
    models = models_of(env, ds)
    certainty = zoo.trained_model(ds, "certainty", budget="paper", n_batches=1,
                                  seed=0, cache_dir=None, progress=False, strategy=None)
    assert certainty.penalty == "certainty" and models["insensitive"].penalty == "double_backprop"
    assert len(rows) == 2 * 2 * 3
    n_cells = {"target": 4 * 7, "source": 4 * 7, "white-box": 7}  # eps 0.1-0.7, 4 other models
    for r in rows:
        assert r["n_cells"] == n_cells[r["cells"]]
    for name, model in (("insensitive", models["insensitive"]), ("certainty", certainty)):
        clean = grids.accuracy(model, ds.x_test, ds.y_test)
        assert {r["clean_accuracy"] for r in rows if r["candidate"] == name} == {round(clean, 4)}
        # the white-box group recomputed with a plain tape: single-step TGSM towards (y+1) mod 10
        x = tf.constant(ds.x_test[:1000])  # the original's gradient chunk of 1000
        with tf.GradientTape() as tape:
            tape.watch(x)
            ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=((ds.y_test[:1000] + 1) % 10).astype("int32"),
                logits=model(x, training=False)))
        sign = np.sign(tape.gradient(ce, x).numpy()[:256])
        theirs = {r["eps"]: r["accuracy"] for r in published.load_transfer(dataset="mnist", attack="tgsm")
                  if r["target_model"] == r["source_model"] == "insensitive"}
        mine = {}
        for e in [e for e in theirs if e > 0]:
            x_adv = np.clip(ds.x_test[:256] - np.float32(e) * sign, 0, 1)
            mine[e] = np.mean(np.argmax(model.predict(x_adv, verbose=0), -1) == ds.y_test[:256])
        expect = np.mean([abs(mine[e] - theirs[e]) for e in mine])
        got = [r["mean_abs_diff"] for r in rows
               if (r["candidate"], r["attack"], r["cells"]) == (name, "tgsm", "white-box")]
        assert got == [pytest.approx(expect, abs=1e-4)]
    assert_figure(out / "mnist_insensitive_variants")
    assert (out / "mnist_insensitive_variants.md").read_text().count("\n| ") == 13


# ------------------------------------------------------------------------------ seeds


def test_mnist_seeds_rebuilds_the_committed_report_and_names_a_seed_not_trained(env):
    """``experiments/mnist_seeds.py`` from the committed per-image grids (nothing trained or
    attacked): seed 0's claims and distances are the committed ``figures/mnist_seeds.csv`` ones,
    and a seed with no model yet is said to be missing, not silently dropped."""
    import importlib

    committed = [r for r in _read(EXPERIMENTS.parent / "figures" / "mnist_seeds.csv")
                 if r["seed"] == "0"]
    out = env["root"] / "seeds"
    report = importlib.import_module("mnist_seeds").main(
        ["--seeds", "0,97", "--no-progress", "--out", str(out)])
    assert report.seeds == (0,)
    rebuilt = [r for r in _read(out / "mnist_seeds.csv") if r["seed"] == "0"]
    assert rebuilt == committed
    md = (out / "mnist_seeds.md").read_text()
    assert "Not yet complete, so in no table below: seed 97: no model yet." in md
    assert_figure(out / "mnist_seeds")
