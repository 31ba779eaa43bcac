"""Bad input outside the models: pixel bounds, logits checks, the model cache and the CLI options.

Each case was silent or unclear before (a wrong result, a raw traceback, or an error only after
all the work) and is pinned here by its exact message; the full set of bad-input cases is in the
case tables ``tests/test_bad_input_*.py``, judged by ``bad_input_support.classify``, whose five
outcome classes are tested at the end of this file.
"""

import os
import pathlib
import re
import sys
import time

import keras
import numpy as np
import pytest
from bad_input_support import (
    PASSING,
    Case,
    UsageError,
    WorkStarted,
    assert_refused_or_handled,
    classify,
)

from gradreg_tf import _checks, cache, cli

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("bounds", ["01", b"01", {0: 0, 1: 1}, {0.0, 1.0}])
def test_bounds_must_be_a_pair_of_numbers(bounds):
    """``bounds='01'`` was read character by character as (0, 1)."""
    with pytest.raises(ValueError, match=r"bounds must be a pair \(lower, upper\) of numbers"):
        _checks.as_bounds(bounds)
    assert _checks.as_bounds(np.array([0, 1])) == (0.0, 1.0)


def _dense(units, activation=None):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation=activation)])


def test_check_logits_model():
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    assert _checks.check_logits_model(_dense(3)) == 3
    assert _checks.check_logits_model(_dense(3), x) == 3
    with pytest.raises(ValueError, match=r"at least 2 classes, received output shape \(None, 1\)"):
        _checks.check_logits_model(_dense(1))
    with pytest.raises(ValueError, match="probabilities"):
        _checks.check_logits_model(_dense(3, "softmax"), x)
    with pytest.raises(ValueError, match=r"at least 2 classes, received shape \(4, 1\)"):
        _checks.check_logits_model(lambda t: t[:, :1], x)


def test_empty_cache_variable_means_unset(monkeypatch, tmp_path):
    """``GRADREG_CACHE=""`` made the model cache the current directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("GRADREG_CACHE", "")
    assert cache.cache_dir() == tmp_path / "xdg" / "gradreg_tf"
    monkeypatch.setenv("GRADREG_CACHE", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c"


def test_a_killed_save_leaves_no_temp_file_forever(tmp_path):
    target = tmp_path / "m.keras"
    stale = tmp_path / ".m.k3j_x9ab.keras"  # what tempfile.mkstemp made before the kill
    fresh = tmp_path / ".m.zzzzzzzz.keras"  # a concurrent writer's, still in progress
    others = [tmp_path / ".m.keras", tmp_path / ".m.k3j_x9ab.json", tmp_path / ".mm.k3j_x9ab.keras",
              tmp_path / ".gitignore"]
    for path in (stale, fresh, *others):
        path.write_bytes(b"partial")
    old = time.time() - cache.STALE_TEMP_SECONDS - 5
    os.utime(stale, (old, old))
    for path in others:
        os.utime(path, (old, old))
    cache.atomic_write(target, lambda tmp: pathlib.Path(tmp).write_bytes(b"model"))
    assert target.read_bytes() == b"model"
    assert not stale.exists()
    assert fresh.exists() and all(p.exists() for p in others)


def test_atomic_write_keeps_the_weights_suffix_keras_checks(tmp_path):
    """``save_weights`` refuses a name not ending in ``.weights.h5``; the temporary file of a
    shipped ``<model>.weights.h5`` used to end in ``.<random>.h5`` and every export failed."""
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    target = tmp_path / "normal.weights.h5"
    stale = tmp_path / ".normal.k3j_x9ab.weights.h5"
    stale.write_bytes(b"partial")
    old = time.time() - cache.STALE_TEMP_SECONDS - 5
    os.utime(stale, (old, old))
    cache.atomic_write(target, net.save_weights)
    again = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    again.load_weights(target)
    np.testing.assert_array_equal(again.get_weights()[0], net.get_weights()[0])
    assert not stale.exists() and sorted(p.name for p in tmp_path.iterdir()) == [target.name]


@pytest.mark.parametrize("argv,message", [
    (["--eps", "-1"], r"argument --eps: expected a finite number >= 0, received '-1'"),
    (["--eps", "nan"], r"argument --eps: expected a finite number >= 0, received 'nan'"),
    (["--batches", "0"], r"argument --batches: expected an integer >= 1, received '0'"),
    (["--seed", "-1"], r"argument --seed: expected an integer >= 0, received '-1'"),
    (["--theta", "inf"], r"argument --theta: expected a finite number, received 'inf'"),
])
def test_cli_numbers_are_checked_by_option_name(argv, message, capsys):
    p = cli.parser("test")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--theta", type=float, default=1.0)
    with pytest.raises(SystemExit) as exit_:
        p.parse_args(argv)
    assert exit_.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_cli_output_directory_is_checked_before_any_work(tmp_path, capsys):
    """``--out`` naming a file failed only after every model was trained and attacked."""
    a_file = tmp_path / "results.csv"
    a_file.write_text("x")
    p = cli.parser("test")
    for argv, message in (
            (["--out", str(a_file)], "is a file, expected a directory"),
            (["--out", str(a_file / "sub")], "is not a writable directory"),
            (["--cache-dir", str(a_file)], "--cache-dir .* is a file"),
            (["--data-dir", str(tmp_path / "missing")], "--data-dir .* is not a directory")):
        with pytest.raises(SystemExit):
            p.parse_args(argv)
        assert re.search(message, capsys.readouterr().err), argv
    args = p.parse_args(["--out", str(tmp_path / "new" / "dir")])
    assert pathlib.Path(args.out).is_dir()


@pytest.mark.parametrize("script,argv", [
    ("adversarial_examples", ["--eps", "-1"]),
    ("adversarial_examples", ["--eps", "nan"]),
    ("tgsm_grids", ["--eps", "-0.1"]),
    ("venn_overlaps", ["--eps", "inf"]),
    ("adversarial_examples", ["--out", "/proc/version"]),
])
def test_experiment_scripts_refuse_bad_options_before_loading_data(script, argv, monkeypatch,
                                                                   tmp_path):
    """The scripts accepted ``--eps -1``/``nan`` and wrote figures and CSVs with exit code 0."""
    from gradreg_tf import data

    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("data loaded before checks"))
    module = __import__(script)
    with pytest.raises(SystemExit) as exit_:
        module.main([*argv, "--out", str(tmp_path)] if "--out" not in argv else argv)
    assert exit_.value.code == 2
    sys.modules.pop(script, None)


def test_cache_directory_that_is_a_file(tmp_path):
    a_file = tmp_path / "cache"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"model cache .*cache' is a file, expected a directory"):
        cache.cache_dir(a_file)


# ----------------------------------------------------------------------------- the classifier
def _raise(err):
    raise err


@pytest.mark.parametrize("case_kwargs,outcome", [
    (dict(run=lambda: _raise(ValueError("eps must be >= 0, received -1")), mentions=("-1",)),
     "clear"),
    (dict(run=lambda: _raise(UsageError(2, "error: argument --eps: received '-1'")),
          mentions=("'-1'",)), "clear"),
    (dict(run=lambda: 3, expect="ok", check=lambda r: r == 3), "handled"),
    (dict(run=lambda: _raise(ValueError("bad value")), mentions=("-1",)), "unclear"),
    (dict(run=lambda: _raise(RuntimeError("eps -1")), mentions=("-1",)), "unclear"),
    (dict(run=lambda: _raise(UsageError(1, "eps -1")), mentions=("-1",)), "unclear"),
    (dict(run=lambda: _raise(ValueError("eps -1")), expect="ok"), "unclear"),
    (dict(run=lambda: 0.5, mentions=("-1",)), "silent"),
    (dict(run=lambda: 4, expect="ok", check=lambda r: r == 3), "silent"),
    (dict(run=lambda: 4, expect="ok", check=lambda r: r.missing), "silent"),
    (dict(run=lambda: _raise(WorkStarted("training started")), mentions=("--eps",)), "late"),
    (dict(run=lambda: "work started", mentions=("--eps",)), "late"),
])
def test_classifier_outcomes(case_kwargs, outcome):
    """The five outcome classes the case tables are judged by; only clear and handled pass."""
    c = Case("classifier", outcome, **case_kwargs)
    assert classify(c)[0] == outcome
    if outcome in PASSING:
        assert assert_refused_or_handled(c) == outcome
    else:
        with pytest.raises(AssertionError, match=outcome.upper()):
            assert_refused_or_handled(c)
