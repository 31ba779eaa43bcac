"""``experiments/human_study.py``: every command's help, options, errors and outputs."""

import csv
import importlib
import json
import pathlib
import re

import keras
import pytest

from gradreg_study import simulation, stimuli

pytest.importorskip("flask", reason="the study server needs the `study` extra (flask)")

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cli():
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(REPO / "experiments"))
    yield importlib.import_module("human_study")
    mp.undo()


@pytest.fixture
def study(tmp_path):
    return simulation.toy_study(tmp_path / "toy", n_items=20)


def _exit_code(fn, argv):
    with pytest.raises(SystemExit) as info:
        fn(argv)
    return info.value.code


@pytest.mark.parametrize("command, expected", [
    ("make-stimuli", ["--budget", "--attack", "--eps", "--steps", "--n-per-class", "--models"]),
    ("serve", ["--host", "--port", "--trials", "--attention-share", "--db"]),
    ("export", ["--db", "--out"]),
    ("analyze", ["--primary", "--alpha", "--min-attention", "--n-permutations", "--csv"]),
    ("simulate", ["--participants", "--target-share", "--db"]),
])
def test_every_command_has_help(cli, capsys, command, expected):
    assert _exit_code(cli.main, [command, "--help"]) == 0
    text = capsys.readouterr().out
    assert all(option in text for option in expected), text


def test_top_level_help_and_unknown_command(cli, capsys):
    cli.main(["--help"])
    text = capsys.readouterr().out
    from gradreg_study import cli as study_cli

    assert all(c in text for c in study_cli.COMMANDS)
    assert _exit_code(cli.main, ["train"]) == 2
    assert "invalid choice: 'train'" in capsys.readouterr().err


def _untrained(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))


def test_make_stimuli(cli, tmp_path, monkeypatch, data_dir, capsys):
    """The command with its models replaced by two untrained linear networks (the zoo's paper
    models are what it resolves by default; training them is not a unit test)."""
    asked = []

    def fake_models(ds, args, names):
        asked.append((args.budget, tuple(names)))
        return {n: _untrained(i) for i, n in enumerate(names)}

    from gradreg_study import cli as study_cli

    monkeypatch.setattr(study_cli, "_models", fake_models)
    argv = ["make-stimuli", "--dataset", "mnist", "--data-dir", str(data_dir), "--budget",
            "reduced", "--models", "normal,doubleback", "--n-per-class", "1", "--steps", "3",
            "--n-attention-per-class", "1", "--out", str(tmp_path), "--no-progress"]
    root = cli.main(argv)
    assert root == (tmp_path / "mnist_tgsm_reduced_seed0").resolve()
    assert asked == [("reduced", ("normal", "doubleback"))]
    study = stimuli.load_study(root)
    assert study.conditions == ("normal", "doubleback")
    assert study.manifest["attack"]["steps"] == 3 and study.manifest["attack"]["eps"] == 0.1
    assert "--budget reduced" in study.manifest["provenance"]["command"]
    err = capsys.readouterr().err
    assert "kept" in err and "fill in the consent details" in err
    assert "then python experiments/human_study.py serve" in err
    template = json.loads((root / "study_config.json").read_text())  # the configuration
    assert template["consent"]["researcher"].startswith("<")  # template, to be filled in
    # a second run refuses to overwrite, before loading data or models
    monkeypatch.setattr(cli._common, "load_dataset", lambda args: pytest.fail("loaded data"))
    assert _exit_code(cli.main, argv) == 2
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--models", "normal,bogus"], "--models must list distinct models"),
    (["--models", "normal,normal"], "--models must list distinct models"),
    (["--eps", "-1"], r"eps.*(> 0|>= 0)"),
    (["--eps", "0"], r"eps must be a finite number > 0"),
    (["--steps", "0"], r"steps.*>= 1"),
    (["--n-per-class", "0"], r"n-per-class.*>= 1"),
])
def test_make_stimuli_refuses_bad_options(cli, tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.setattr(cli._common, "load_dataset", lambda args: pytest.fail("loaded data"))
    assert _exit_code(cli.main, ["make-stimuli", "--out", str(tmp_path), *extra]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_simulate_analyze_export(cli, study, tmp_path, capsys):
    db = cli.main(["simulate", str(study.root), "--trials", "10", "--participants", "8",
                   "--target-share", "doubleback=0.5", "--no-progress"])
    assert db == study.root / "simulated.sqlite3"
    out = tmp_path / "analysis"
    paths = cli.main(["analyze", str(study.root), "--db", str(db), "--out", str(out),
                      "--n-permutations", "199", "--n-bootstrap", "199"])
    assert sorted(p.suffix for p in paths) == [".csv", ".json", ".md", ".pdf", ".png"]
    md = (out / "simulated_analysis.md").read_text()
    assert "SIMULATED participants" in md and "Primary contrast" in md
    record = json.loads((out / "simulated_analysis.json").read_text())
    assert record["simulated"] is True and record["n_participants"] <= 8
    assert str(tmp_path) not in (out / "simulated_analysis.json").read_text()  # in the run log
    assert json.loads((out / "simulated_analysis.run.json").read_text())["written"]
    # the same analysis again, elsewhere: the same bytes (a changed file means a changed result)
    again_out = tmp_path / "again"
    cli.main(["analyze", str(study.root), "--db", str(db), "--out", str(again_out),
              "--n-permutations", "199", "--n-bootstrap", "199"])
    for p in paths:
        assert (again_out / p.name).read_bytes() == p.read_bytes(), p.name
    csv_path = cli.main(["export", str(study.root), "--db", str(db),
                         "--out", str(tmp_path / "answers.csv")])
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 * 11
    # the exported CSV gives the same analysis as the database
    cli.main(["analyze", str(study.root), "--csv", str(csv_path), "--out", str(out),
              "--n-permutations", "199", "--n-bootstrap", "199"])
    again = json.loads((out / "answers_analysis.json").read_text())
    assert again["shares"] == record["shares"] and again["primary"] == record["primary"]
    assert not (study.root / "responses.sqlite3").exists()  # simulations never touch it
    capsys.readouterr()


def test_analyze_and_export_refuse_missing_or_foreign_data(cli, study, tmp_path, capsys):
    assert _exit_code(cli.main, ["analyze", str(study.root)]) == 2
    assert "no database at" in capsys.readouterr().err
    assert _exit_code(cli.main, ["export", str(study.root)]) == 2
    other = simulation.toy_study(tmp_path / "other", n_items=20, seed=5)
    db = cli.main(["simulate", str(other.root), "--trials", "10", "--participants", "1",
                   "--no-progress"])
    assert _exit_code(cli.main, ["analyze", str(study.root), "--db", str(db)]) == 2
    assert "belongs to another study" in capsys.readouterr().err
    assert _exit_code(cli.main, ["analyze", str(tmp_path)]) == 2
    assert "not a study folder" in capsys.readouterr().err
    assert _exit_code(cli.main, ["simulate", str(study.root), "--db",
                                 str(study.root / "responses.sqlite3"), "--trials", "10"]) == 2
    assert "never go into the real responses database" in capsys.readouterr().err


def test_serve_needs_a_filled_in_configuration_binds_localhost_and_prints_the_token_once(
        cli, study, monkeypatch, capsys):
    from gradreg_study import config, server

    calls = []

    def fake_serve(app, *, host, port, threads, connection_limit, on_ready):
        calls.append((host, port, threads, connection_limit))
        on_ready(f"http://{host}:{port}")

    monkeypatch.setattr(server, "serve", fake_serve)
    cfg_file = study.root / config.FILENAME
    cfg_file.unlink(missing_ok=True)
    assert _exit_code(cli.main, ["serve", str(study.root), "--trials", "10"]) == 2
    assert f"no study configuration at {cfg_file}" in capsys.readouterr().err
    config.write_template(study.root)
    assert _exit_code(cli.main, ["serve", str(study.root), "--trials", "10"]) == 2
    err = capsys.readouterr().err
    assert "fill in consent ['researcher', 'institution'," in err and "--pilot" in err
    filled = json.loads(cfg_file.read_text())
    filled["consent"] = {k: f"the {k}" for k in config.CONSENT_FIELDS}
    cfg_file.write_text(json.dumps(filled))
    assert calls == []  # nothing served before the configuration was complete
    cli.main(["serve", str(study.root), "--trials", "10"])
    assert calls == [("127.0.0.1", 8000, server.DEFAULT_THREADS, server.DEFAULT_CONNECTION_LIMIT)]
    out = capsys.readouterr().out
    assert "listening on http://127.0.0.1:8000/" in out
    assert out.count("token, shown only now") == 1 and "token=" not in out  # never in a URL
    assert "warning" not in out and "platform none, 3 practice trials" in out
    assert _exit_code(cli.main, ["serve", str(study.root), "--trials", "10", "--host",
                                 "0.0.0.0"]) == 2
    assert "list the host names" in capsys.readouterr().err
    cfg_file.write_text(json.dumps({**filled, "public_hosts": ["study.example.edu"]}))
    cli.main(["serve", str(study.root), "--trials", "10", "--host", "0.0.0.0",
              "--connection-limit", "300", "--threads", "4"])
    assert "warning: bound to 0.0.0.0" in capsys.readouterr().out
    assert calls[-1] == ("0.0.0.0", 8000, 4, 300)
    # the database now holds the protocol: another one is refused
    assert _exit_code(cli.main, ["serve", str(study.root), "--trials", "15"]) == 2
    assert "another study or protocol" in capsys.readouterr().err
    assert _exit_code(cli.main, ["serve", str(study.root), "--trials", "12"]) == 2
    assert "multiple of the 5 conditions" in capsys.readouterr().err
    assert _exit_code(cli.main, ["serve", str(study.root), "--port", "70000"]) == 2
