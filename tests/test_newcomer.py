"""A newcomer's path (issue 23): quiet start, byte-stable outputs, no hidden multi-hour default,
models usable without this package, and (slow) the wheel installed outside the repository.

Subprocesses run with ``TF_CPP_MIN_LOG_LEVEL`` removed from the environment, as on a fresh
terminal (CI exports it; the quiet start must not depend on that).
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} |cuInit|absl::InitializeLog|cpu_feature_guard", re.M)


def fresh_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(extra)
    return env


def run(args, *, cwd=REPO, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env or fresh_env(),
                          capture_output=True, text=True, timeout=timeout)


# --- 1. quiet start ------------------------------------------------------------------------------

def test_script_starts_quietly_with_one_device_line():
    """A figure script's first line of output names the device; no TensorFlow C++ log line."""
    out = run([str(EXPERIMENTS / "mnist_transfer.py"), "--help"])
    assert out.returncode == 0, out.stderr
    assert not TF_LOG_LINE.search(out.stderr), out.stderr
    lines = out.stderr.splitlines()
    assert lines and lines[0].startswith("device: "), out.stderr
    assert sum(line.startswith("device: ") for line in lines) == 1, out.stderr


def test_user_log_level_wins():
    """A user's own TF_CPP_MIN_LOG_LEVEL is left as it is (and then TF logs as it likes)."""
    code = "import os, gradreg_tf; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    out = run(["-c", code], cwd=REPO, env=fresh_env(TF_CPP_MIN_LOG_LEVEL="0"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"
    quiet = run(["-c", "import gradreg_tf, tensorflow as tf; print(tf.constant(1.0) + 1)"])
    assert quiet.returncode == 0, quiet.stderr
    assert not TF_LOG_LINE.search(quiet.stderr), quiet.stderr


def test_module_entry_point_starts_with_the_device_line():
    """``python -m gradreg_tf.pretrained`` (README: the replay) starts with the device line, not
    with runpy's warning about a module the package's ``__init__`` imported."""
    out = run(["-m", "gradreg_tf.pretrained", "replay", "mnist", "no-such-model"], cwd=REPO)
    assert not TF_LOG_LINE.search(out.stderr), out.stderr
    assert out.stderr.startswith("device: "), out.stderr[:2000]
    assert "RuntimeWarning" not in out.stderr, out.stderr[:2000]


def test_library_import_prints_no_device_line():
    """Only entry points announce the device; importing the package prints nothing."""
    out = run(["-c", "import gradreg_tf"])
    assert out.returncode == 0, out.stderr
    assert out.stderr == "" and out.stdout == ""


# --- 2. byte-stable outputs ----------------------------------------------------------------------

def _tracked_outputs(folder: pathlib.Path) -> dict[str, bytes]:
    """Files a figure script writes that are committed (not git-ignored: no run log, no npz
    except the per-example one)."""
    out = {}
    for path in sorted(folder.iterdir()):
        if path.name.endswith(".run.json"):
            continue
        if path.suffix == ".npz" and not path.name.endswith(".per_example.npz"):
            continue
        out[path.name] = path.read_bytes()
    return out


def test_figure_script_reproduces_its_files_byte_for_byte(tmp_path):
    """gradient_maps.py on the shipped MNIST models, twice in fresh processes: same bytes
    (PDF/PNG without creation dates or library versions, JSON without times or paths)."""
    runs = []
    for name in ("a", "b"):
        out = run([str(EXPERIMENTS / "gradient_maps.py"), "--out", str(tmp_path / name),
                   "--no-progress"])
        assert out.returncode == 0, out.stderr[-3000:]
        runs.append(_tracked_outputs(tmp_path / name))
    assert set(runs[0]) == {"mnist_gradient_maps.json", "mnist_gradient_maps.pdf",
                            "mnist_gradient_maps.png"}
    differ = [name for name in runs[0] if runs[0][name] != runs[1][name]]
    assert not differ, f"differ between two runs: {differ}"
    assert (tmp_path / "a" / "mnist_gradient_maps.run.json").is_file()  # times go here


def test_per_example_npz_is_byte_stable(tmp_path, monkeypatch):
    """save_per_example writes the same bytes at different clock times (zip timestamps)."""
    import time

    from gradreg_tf.eval import grids

    rows = [grids.GridRow(attack="fgsm", target_model="normal", source_model=s, eps=0.1,
                          accuracy=0.5, n_correct=2, n_examples=4,
                          correct=np.array([1, 0, 1, 0], bool)) for s in ("a", "b")]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 86400 * 400)
    grids.save_per_example(tmp_path / "a.npz", rows)
    monkeypatch.setattr(time, "time", real)
    grids.save_per_example(tmp_path / "b.npz", rows)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = grids.load_per_example(tmp_path / "a.npz")
    assert loaded[("fgsm", "normal", "b", 0.1)].tolist() == [True, False, True, False]


# --- 3. no hidden multi-hour default ------------------------------------------------------------

def test_budget_defaults_by_dataset():
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        import transfer
    finally:
        sys.path.remove(str(EXPERIMENTS))
    assert transfer.build_parser("notmnist").parse_args([]).budget == "reduced"
    assert transfer.build_parser("mnist").parse_args([]).budget == "paper"
    assert transfer.build_parser("mnist").parse_args(["--dataset", "notmnist"]).budget == "reduced"
    assert transfer.build_parser("notmnist").parse_args(["--budget", "paper"]).budget == "paper"


def test_notmnist_script_says_what_it_will_train_before_training(tmp_path):
    """``notmnist_transfer.py`` with no flags (an empty cache): within a minute it names the
    models, the budget, an estimate and the alternatives; it is stopped there."""
    cmd = [sys.executable, str(EXPERIMENTS / "notmnist_transfer.py"), "--cache-dir",
           str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=fresh_env(), stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("instead:") or line.startswith("[1/"):
                break
    finally:
        proc.kill()
        proc.wait()
    text = "".join(seen)
    assert not TF_LOG_LINE.search(text), text
    plan = next((line for line in seen if line.startswith("will train")), None)
    assert plan is not None, text
    assert "budget: reduced" in plan and "normal, distilled, advtrain, insensitive, doubleback" \
        in plan and re.search(r"estimated \d+ min", plan), plan
    assert seen[-1].startswith("instead:") and "notMNIST_large" in seen[-1], text


def test_lambda_sweep_says_what_it_will_train_before_training(tmp_path, monkeypatch, capsys):
    """``lambda_sweep.py`` with no flags would train 24 paper-schedule models (a day and more):
    it says so, with an estimate and the alternatives, before the first model or reference is
    trained (both stubbed to stop here)."""
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        import lambda_sweep
    finally:
        sys.path.remove(str(EXPERIMENTS))
    from gradreg_tf import zoo

    class Trained(Exception):
        pass

    def stop(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(zoo, "reference_fgsm", stop)
    monkeypatch.setattr(zoo, "trained_model", stop)
    with pytest.raises(Trained):
        lambda_sweep.main(["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
                           "--no-progress"])
    lines = capsys.readouterr().err.splitlines()
    plan = next((line for line in lines if line.startswith("will train")), None)
    assert plan is not None, lines
    assert "24 of the 26 sweep models (doubleback 12, insensitive 12)" in plan, plan
    assert "budget: paper" in plan and re.search(r"estimated [\d.]+-[\d.]+ h", plan), plan
    assert lines[-1].startswith("instead:") and "--budget reduced" in lines[-1], lines


# --- 5. models usable without gradreg_tf ---------------------------------------------------------

LOADER = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    import keras

    kind, path, x_path, out_path = sys.argv[1:]
    x = np.load(x_path)
    if kind == "keras":
        logits = keras.saving.load_model(path).predict(x, verbose=0)
    else:
        loaded = tf.saved_model.load(path)  # keep a reference: it owns the variables
        logits = loaded.serve(tf.constant(x)).numpy()
        try:
            loaded.signatures["serving_default"](images=tf.constant(x + 9.0))
            raise SystemExit("out-of-bounds images were accepted")
        except tf.errors.InvalidArgumentError as err:
            assert "within the dataset bounds" in str(err), err
    assert "gradreg_tf" not in sys.modules, "gradreg_tf was imported"
    np.save(out_path, logits)
""")


def readme_block(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    return re.search(r"```python\n(.*?)```", text[text.index(marker):], re.S).group(1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Runs the README's export snippet (in a temporary directory) on the shipped model."""
    folder = tmp_path_factory.mktemp("export")
    here = os.getcwd()
    namespace = {}
    try:
        os.chdir(folder)
        code = compile(readme_block("<!-- export-snippet"), "README.md", "exec")
        exec(code, namespace)  # noqa: S102 - running our own docs
    finally:
        os.chdir(here)
    model, data = namespace["model"], namespace["data"]
    x = data.x_test[:64].astype(np.float32)
    np.save(folder / "x.npy", x)
    logits = model(x, training=False).numpy()
    (folder / "loader.py").write_text(LOADER)
    return folder, logits


@pytest.mark.parametrize("kind,name", [("keras", "doubleback_plain.keras"),
                                       ("saved_model", "doubleback_savedmodel")])
def test_exported_model_predicts_identically_without_gradreg_tf(exported, kind, name):
    folder, logits = exported
    out = run([str(folder / "loader.py"), kind, str(folder / name), str(folder / "x.npy"),
               str(folder / f"{kind}.npy")], cwd=folder,
              env=fresh_env(PYTHONPATH="", PYTHONSAFEPATH="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    theirs = np.load(folder / f"{kind}.npy")
    assert theirs.shape == logits.shape
    np.testing.assert_allclose(theirs, logits, rtol=1e-5, atol=1e-5)
    assert (theirs.argmax(1) == logits.argmax(1)).all()


def test_export_refuses_what_would_not_load(tmp_path):
    import gradreg_tf as gr
    from gradreg_tf import export

    net = gr.models.svhn_cnn()
    with pytest.raises(ValueError, match="not Keras' own.*LocalContrastNormalization"):
        export.to_keras(net, tmp_path / "svhn.keras")
    with pytest.raises(ValueError, match="end in '.keras'"):
        export.to_keras(gr.models.mnist_cnn(), tmp_path / "x.h5")
    with pytest.raises(ValueError, match="bounds"):
        export.to_saved_model(gr.models.mnist_cnn(), tmp_path / "sm", bounds=(1, 0))
    assert not any(tmp_path.iterdir())


# --- 4. the wheel, installed outside the repository ---------------------------------------------

WHEEL_CHECK = textwrap.dedent("""
    import pathlib, sys
    import numpy as np
    import gradreg_tf as gr

    venv = pathlib.Path(sys.argv[1]).resolve()
    where = pathlib.Path(gr.__file__).resolve()
    assert venv in where.parents, f"gradreg_tf imported from {where}, not from the venv {venv}"
    model = gr.zoo.pretrained("mnist", "doubleback")
    mnist = gr.data.load("mnist")
    notmnist = gr.data.load("notmnist")
    assert mnist.x_test.shape == (10000, 28, 28, 1), mnist
    assert len(notmnist.x_test) == 10000, notmnist
    x, y = mnist.x_test[:256], mnist.y_test[:256]
    clean = gr.eval.grids.accuracy(model, x, y)
    adv = gr.eval.grids.accuracy(model, gr.attacks.fgsm(model, x, 0.3, bounds=mnist.bounds, y=y), y)
    assert clean > 0.95 and adv < clean, (clean, adv)
    print(f"from {where}: clean {clean:.3f}, FGSM 0.3 {adv:.3f}")
""")


@pytest.mark.slow
def test_wheel_installed_outside_the_repository(tmp_path):
    """``python -m build`` (wheel + sdist), the wheel into a fresh venv outside the repository
    (system site-packages for TensorFlow), then a shipped model, both bundled datasets and one
    FGSM from the installed copy. Needs the ``build`` package."""
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    out = run(["-m", "build", "--outdir", str(dist), str(REPO)], cwd=tmp_path, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
    venv = tmp_path / "venv"
    assert run(["-m", "venv", "--system-site-packages", str(venv)], cwd=tmp_path).returncode == 0
    py = str(venv / "bin" / "python")
    env = fresh_env(PYTHONPATH="", PYTHONSAFEPATH="1", GRADREG_DATA_DIR="")
    env.pop("GRADREG_DATA_DIR")
    pip = subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", str(wheels[0])],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    (tmp_path / "check.py").write_text(WHEEL_CHECK)
    check = subprocess.run([py, "check.py", str(venv)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=900)
    assert check.returncode == 0, check.stderr[-3000:]
    assert "FGSM 0.3" in check.stdout
