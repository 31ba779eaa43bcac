"""Command-line interface of the human-subject study (``experiments/human_study.py``).

Subcommands: make-stimuli, serve, export, analyze, simulate (each has ``--help``). Options are
parsed by the shared :class:`gradreg_tf.cli.Parser`; the database-path policy
(:func:`db_path`) and the guard that keeps simulated answers out of the real database
(:func:`check_simulated_db`) live here.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from gradreg_study import stimuli as _stimuli
from gradreg_tf import cli

_HELPERS = None


def _helpers():
    if _HELPERS is None:
        raise RuntimeError("this command needs the experiment helpers: run it through "
                           "experiments/human_study.py (or pass main(helpers=...))")
    return _HELPERS


COMMAND_HELP = {
    "make-stimuli": "craft the adversarial stimuli against the trained models -> a study folder",
    "serve": "serve the study to participants (waitress on 127.0.0.1:8000)",
    "export": "write every stored answer to a CSV file",
    "analyze": "shares per condition, tests, the primary contrast, figure and tables",
    "simulate": "fill a separate database with simulated participants (pilot the analysis)",
}


def _protocol_options(p) -> None:
    g = p.add_argument_group("session protocol (fixed for the life of a database)")
    g.add_argument("--trials", type=int, default=50,
                   help="adversarial trials per participant (a multiple of the conditions)")
    g.add_argument("--attention-share", type=float, default=0.1,
                   help="share of all trials that are clean attention checks")
    g.add_argument("--design-seed", type=int, default=0,
                   help="seed of the item shuffle and the participants' trial orders")


def _protocol(p, args):
    from gradreg_study import design

    try:
        return design.Protocol(trials=args.trials, attention_share=args.attention_share,
                               seed=args.design_seed)
    except ValueError as err:
        p.error(str(err))


def _study_parser(command: str, description: str) -> argparse.ArgumentParser:
    p = cli.Parser(prog=f"human_study.py {command}", description=description,
                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("study", help="the study folder (from make-stimuli)")
    return p


def _load_study(p, path):
    from gradreg_study import stimuli

    try:
        return stimuli.load_study(path)
    except (FileNotFoundError, stimuli.StudyError) as err:
        p.error(str(err))


def _default_name(args) -> str:
    budget = f"{args.batches}batches" if args.batches else args.budget
    return f"{args.dataset}_{args.attack}_{budget}_seed{args.seed}"


def make_stimuli(argv) -> pathlib.Path:
    """``make-stimuli``: trains or fetches the models, crafts the stimuli, writes the study."""
    from gradreg_tf import recipes

    p = cli.parser(COMMAND_HELP["make-stimuli"], out="studies")
    p.prog = "human_study.py make-stimuli"
    p.add_argument("--models", default=",".join(recipes.PAPER_MODELS),
                   help="comma-separated conditions (paper models) to craft against")
    p.add_argument("--attack", default="tgsm", choices=("tgsm", "jsma"))
    p.add_argument("--eps", type=float, default=0.1, help="TGSM step size")
    p.add_argument("--steps", type=int, default=None,
                   help="TGSM iterations (default 10; SVHN 15, as the paper's grids)")
    p.add_argument("--theta", type=float, default=1.0, help="JSMA change per feature")
    p.add_argument("--gamma", type=float, default=0.25, help="JSMA max share of features")
    p.add_argument("--n-per-class", type=int, default=5,
                   help="originals per class (the first N test images of each class)")
    p.add_argument("--n-attention-per-class", type=int, default=2,
                   help="clean attention-check images per class (the next test images)")
    p.add_argument("--name", default=None,
                   help="study folder name in --out "
                        "(default <dataset>_<attack>_<budget>_seed<seed>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing study folder (never one holding answers)")
    args = p.parse_args(argv)

    from gradreg_study import stimuli

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in recipes.MODEL_NAMES]
    if unknown or len(set(names)) != len(names) or not names:
        p.error(f"--models must list distinct models of {', '.join(recipes.MODEL_NAMES)}, "
                f"received {args.models!r}")
    steps = args.steps if args.steps is not None else (15 if args.dataset == "svhn" else 10)
    try:
        settings = stimuli.AttackSettings(attack=args.attack, eps=args.eps, steps=steps,
                                          theta=args.theta, gamma=args.gamma)
    except ValueError as err:
        p.error(str(err))
    if args.n_per_class < 1 or args.n_attention_per_class < 0:
        p.error(f"--n-per-class must be >= 1 and --n-attention-per-class >= 0, received "
                f"{args.n_per_class} and {args.n_attention_per_class}")
    out = pathlib.Path(args.out) / (args.name or _default_name(args))
    try:
        stimuli.check_destination(out, args.overwrite)
    except FileExistsError as err:
        p.error(f"{err} (--overwrite replaces a study folder without answers)")
    ds = _helpers().load_dataset(args)
    models = _models(ds, args, names)
    _helpers().log(f"crafting {settings.as_dict()} stimuli against {len(models)} models")
    study = stimuli.make_study(
        models, ds, out, settings=settings, n_per_class=args.n_per_class,
        n_attention_per_class=args.n_attention_per_class, overwrite=args.overwrite,
        progress=args.progress,
        provenance={"budget_text": _helpers().budget_text(ds, args), "budget": args.budget,
                    "batches_option": args.batches, "seed": args.seed, "dataset_repr": repr(ds),
                    "data_deviation": ds.deviation, "command": "human_study.py make-stimuli "
                    + " ".join(argv)})
    m = study.manifest
    total = len(m["items"]) + len(m["dropped"])
    _helpers().log(f"kept {len(m['items'])} of {total} (original, target) items: the attack "
                f"reached the target against every model")
    for name in names:
        failed = sum(name in d["failed"] for d in m["dropped"])
        _helpers().log(f"  {name:>12s}: target reached on {total - failed}/{total}")
    _helpers().log(f"wrote {len(study.stimuli)} images and the manifest to {study.root}")
    from gradreg_study import config

    cfg = config.write_template(study.root)
    _helpers().log(f"next: fill in the consent details (and platform) in {cfg}, then "
                   f"python experiments/human_study.py serve {out}")
    return study.root


def _models(ds, args, names):
    """``{name: trained paper model}`` (the zoo's cache; trains what is missing)."""
    return _helpers().paper_models(ds, args, names)


def _study_config(p, study, path, *, pilot: bool):
    """The study configuration (``<study>/study_config.json`` or ``path``), validated; a
    missing file is an error unless ``pilot`` (then the defaults: no platform, no details)."""
    from gradreg_study import config

    file = pathlib.Path(path) if path else study.root / config.FILENAME
    try:
        if pilot and not file.exists():
            return config.StudyConfig(source="(pilot defaults)")
        cfg = config.load(file)
        if not pilot:
            cfg.check_ready()
    except config.ConfigError as err:
        p.error(f"{err}" + ("" if pilot else " (--pilot serves an unfinished configuration "
                                             "for a local try-out, never to participants)"))
    return cfg


def serve(argv) -> None:
    """``serve``: the participant page and admin page, until Ctrl-C."""
    from gradreg_study import server as _server

    p = _study_parser("serve", COMMAND_HELP["serve"])
    p.add_argument("--db", default=None, help="SQLite file (default <study>/responses.sqlite3)")
    p.add_argument("--config", default=None,
                   help="study configuration (default <study>/study_config.json)")
    p.add_argument("--pilot", action="store_true",
                   help="a local try-out: allow an unfilled consent section (or no "
                        "configuration file); never for real participants")
    _protocol_options(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind; 0.0.0.0 exposes the study to the network")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    p.add_argument("--threads", type=int, default=_server.DEFAULT_THREADS,
                   help="waitress worker threads")
    p.add_argument("--connection-limit", type=int, default=_server.DEFAULT_CONNECTION_LIMIT,
                   help="open connections accepted at once (browsers hold one or two each)")
    p.add_argument("--server", default="waitress", choices=("waitress", "flask"),
                   help="waitress (a production WSGI server) or Flask's development server")
    p.add_argument("--synchronous", default="full", choices=("full", "normal"),
                   help="SQLite durability: full fsyncs every answer (survives a power loss); "
                        "normal survives a crash of the server but not of the machine")
    p.add_argument("--display-px", type=int, default=280,
                   help="shown image size in CSS pixels (scaled up without smoothing)")
    args = p.parse_args(argv)
    study = _load_study(p, args.study)
    protocol = _protocol(p, args)
    if not 0 <= args.port <= 65535 or args.threads < 1 or args.connection_limit < 1:
        p.error(f"--port must be in [0, 65535], --threads and --connection-limit >= 1, "
                f"received {args.port}, {args.threads}, {args.connection_limit}")
    cfg = _study_config(p, study, args.config, pilot=args.pilot)
    if args.host in ("0.0.0.0", "::") and not cfg.public_hosts:
        p.error(f"--host {args.host} listens on every interface: list the host names "
                f"participants will use in public_hosts of {cfg.source} (the server answers "
                "only requests for known hosts)")
    from gradreg_study import server, storage

    try:
        app = server.create_app(study.root, db_path=args.db, protocol=protocol,
                                display_px=args.display_px, config=cfg,
                                synchronous=args.synchronous.upper())
    except (ValueError, storage.StoreMismatchError) as err:
        p.error(str(err))
    ctx = server.context(app)
    print(f"study {study.root}: {len(study.items)} items x {len(study.conditions)} conditions "
          f"({', '.join(study.conditions)}); {protocol.n_total} trials per participant "
          f"({protocol.trials} + {protocol.n_attention} attention checks)", flush=True)
    print(f"answers go to {ctx.store.path}", flush=True)
    print(f"configuration {cfg.source}: language {cfg.language}, platform "
          f"{cfg.platform.name}, {cfg.practice_trials} practice trials, mode {cfg.mode}"
          + ("; PILOT: not for real participants" if args.pilot else ""), flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: bound to {args.host}: anyone who can reach this machine can open the "
              "study", flush=True)

    def ready(url):
        print(f"listening on {url}/", flush=True)
        print(f"admin page: {url}/admin (log in with the token, shown only now: "
              f"{app.config['ADMIN_TOKEN']})", flush=True)

    if args.server == "flask":
        ready(f"http://{args.host}:{args.port}")
        app.run(host=args.host, port=args.port, threaded=True)
    else:
        try:
            server.serve(app, host=args.host, port=args.port, threads=args.threads,
                         connection_limit=args.connection_limit, on_ready=ready)
        except ValueError as err:
            p.error(str(err))
        except OSError as err:
            p.error(f"cannot listen on {args.host}:{args.port} ({err.strerror or err})")
    print("stopped; every acknowledged answer is in the database", flush=True)


def db_path(study, db, default: str = _stimuli.DATABASE) -> pathlib.Path:
    """The SQLite file of a study: ``db`` if given, else ``<study>/<default>``."""
    return pathlib.Path(db) if db else study.root / default


def check_simulated_db(study, db) -> None:
    """Refuses to put simulated answers into the study's real responses database.

    Raises:
        ValueError: ``db`` is (resolves to) the study's real database.
    """
    real = study.root / _stimuli.DATABASE
    if pathlib.Path(db).resolve() == real.resolve():
        raise ValueError(f"simulated answers never go into the real responses database {real}; "
                         "choose another --db")


def export(argv) -> pathlib.Path:
    """``export``: the answers as CSV (one row per answer, with its stimulus)."""
    from gradreg_study import stimuli, storage

    p = _study_parser("export", COMMAND_HELP["export"])
    p.add_argument("--db", default=None, help="SQLite file (default <study>/responses.sqlite3)")
    p.add_argument("--out", dest="csv_out", default=None,
                   help="CSV file (default <db>.csv next to the database)")
    args = p.parse_args(argv)
    study = _load_study(p, args.study)
    db = db_path(study, args.db, stimuli.DATABASE)
    if not db.is_file():
        p.error(f"no database at {db}; serve the study first (or pass --db)")
    store = storage.Store(db)
    _check_store(p, store, study)
    out = pathlib.Path(args.csv_out) if args.csv_out else db.with_suffix(".csv")
    rows = store.rows()
    store.export_csv(out)
    summary = store.summary()
    print(f"wrote {len(rows)} answers of {summary['participants_started']} participants "
          f"({summary['participants_completed']} completed) to {out}", flush=True)
    return out


def _check_store(p, store, study) -> None:
    import sqlite3

    try:
        meta = store.meta()
    except sqlite3.DatabaseError as err:
        p.error(f"{store.path} is not a study database ({err})")
    if meta.get("study") != study.fingerprint:
        p.error(f"{store.path} belongs to another study (its manifest fingerprint differs)")


def analyze(argv) -> list[pathlib.Path]:
    """``analyze``: figure, CSV, markdown and JSON of the analysis."""
    from gradreg_tf import cache, plotting
    from gradreg_tf.eval import io
    from gradreg_study import analysis, stimuli, storage

    p = _study_parser("analyze", COMMAND_HELP["analyze"])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--db", default=None, help="SQLite file (default <study>/responses.sqlite3)")
    src.add_argument("--csv", default=None, help="read an exported CSV instead of a database")
    p.add_argument("--out", default=None, help="output folder (default <study>/analysis)")
    p.add_argument("--name", default=None,
                   help="output file stem (default <database or CSV name>_analysis)")
    p.add_argument("--primary", nargs=2, default=list(analysis.PRIMARY),
                   metavar=("TREATMENT", "CONTROL"), help="conditions of the primary contrast")
    p.add_argument("--alpha", type=float, default=0.05, help="level of the primary test")
    p.add_argument("--min-attention", type=float, default=None,
                   help="exclude participants below this attention-check accuracy (default: "
                        "the study configuration's quality.min_attention, else 0.5)")
    p.add_argument("--n-permutations", type=int, default=9999)
    p.add_argument("--n-bootstrap", type=int, default=9999)
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    p.add_argument("--no-mixed", dest="mixed", action="store_false",
                   help="skip the mixed-effects model (fitted only if statsmodels is installed)")
    args = p.parse_args(argv)
    study = _load_study(p, args.study)
    simulated = False
    participants = None
    if args.csv:
        source = pathlib.Path(args.csv)
        if not source.is_file():
            p.error(f"no CSV file at {source}")
        rows = _helpers().read_csv(source)
    else:
        source = db_path(study, args.db, stimuli.DATABASE)
        if not source.is_file():
            p.error(f"no database at {source}; serve the study first (or pass --db/--csv)")
        store = storage.Store(source)
        _check_store(p, store, study)
        simulated = json.loads(store.meta()["simulated"])
        rows = store.rows()
        participants = store.participants()
    if not rows:
        p.error(f"{source} holds no answers yet")
    if args.n_permutations < 1 or args.n_bootstrap < 0:
        p.error("--n-permutations must be >= 1 and --n-bootstrap >= 0")
    from gradreg_study import population

    cfg = _study_config(p, study, None, pilot=True)  # its pre-registered rule (or the default)
    rule = population.PopulationRule(min_attention=cfg.min_attention,
                                     max_too_fast_share=cfg.max_too_fast_share)
    try:
        population.check_columns(rows)
    except ValueError:
        # the server does not record completion, platform and timing columns yet: every answer
        # is analysed under the attention rule alone, and the report states "no population rule"
        rule = None
        print("note: these answers carry no completion/timing columns; analysing every answer "
              "(attention rule only, no pre-registered population rule).", file=sys.stderr)
    try:
        result = analysis.analyze(rows, study.conditions, primary=tuple(args.primary),
                                  alpha=args.alpha, min_attention=args.min_attention,
                                  n_permutations=args.n_permutations,
                                  n_bootstrap=args.n_bootstrap, seed=args.seed, mixed=args.mixed,
                                  rule=rule, simulated=bool(simulated),
                                  participants=participants,
                                  stimuli=study.stimuli)
    except ValueError as err:
        p.error(str(err))
    out = pathlib.Path(args.out) if args.out else study.root / "analysis"
    stem = out / (args.name or f"{source.stem}_analysis")
    note = ("SIMULATED participants (human_study.py simulate), not human data."
            if simulated else "")
    caption = (f"{study.manifest['dataset']} study, {_attack_text(study)}; "
               f"{result.n_participants} participants, {result.n_answers} answers"
               + (f"; {note}" if note else ""))
    fig = analysis.plot_shares(result, caption=caption,
                               title="What people answered, per condition"
                               + (" (SIMULATED)" if simulated else ""))
    paths = plotting.save_figure(fig, stem)  # fixed metadata: same analysis, same bytes
    table = analysis.summary_rows(result)
    paths.append(cache.atomic_write(stem.with_suffix(".csv"),
                                    lambda tmp: _helpers().write_csv(tmp, table)))
    text = analysis.markdown(result, label=plotting.model_text, note=note)
    paths.append(cache.atomic_write(stem.with_suffix(".md"),
                                    lambda tmp: pathlib.Path(tmp).write_text(text)))
    # results and provenance only; when, where and from which paths go to the run log beside it
    # (<stem>.run.json), so re-running the same analysis rewrites the same bytes
    options = {k: v for k, v in vars(args).items() if k not in PATH_OPTIONS}
    record = {"source": source.name, "simulated": simulated, "study": study.root.name,
              "study_fingerprint": study.fingerprint, "attack": study.manifest.get("attack"),
              "options": options, "versions": _versions(), **vars(result),
              "run": {"written": _now(), "source": str(source), "study": str(study.root),
                      "options": vars(args)}}
    paths.append(io.write_json(stem.with_suffix(".json"), record))
    print(text, flush=True)
    _helpers().log("wrote " + ", ".join(str(x) for x in paths))
    return paths


PATH_OPTIONS = frozenset({"study", "db", "csv", "out"})
"""Options of ``analyze`` that name paths on this machine: kept in the run log, not the results."""


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict:
    from gradreg_tf import provenance

    return provenance.versions(("gradreg_tf", "numpy", "scipy", "python"))


def _attack_text(study) -> str:
    a = study.manifest.get("attack", {})
    if a.get("attack") == "tgsm":
        return f"iterated TGSM, eps {a['eps']:g}, {a['steps']} steps"
    if a.get("attack") == "jsma":
        return f"JSMA, theta {a['theta']:g}, gamma {a['gamma']:g}"
    return str(a.get("attack"))


def _share_pairs(p, values) -> dict:
    out = {}
    for v in values or ():
        cond, _, share = v.partition("=")
        try:
            out[cond] = float(share)
        except ValueError:
            p.error(f"--target-share takes CONDITION=SHARE, received {v!r}")
    return out


def simulate(argv) -> pathlib.Path:
    """``simulate``: simulated participants of known answer shares through the HTTP API."""
    import numpy as np

    from gradreg_study import server, simulation, storage

    p = _study_parser("simulate", COMMAND_HELP["simulate"])
    p.add_argument("--db", default=None,
                   help="SQLite file (default <study>/simulated.sqlite3; never the real one)")
    _protocol_options(p)
    p.add_argument("--participants", type=int, default=30)
    p.add_argument("--target-share", action="append", metavar="CONDITION=SHARE",
                   default=None, help="P(answer = target) of a condition (repeatable; "
                                      "default doubleback=0.45)")
    p.add_argument("--default-target-share", type=float, default=0.15,
                   help="P(answer = target) of the other conditions")
    p.add_argument("--original-share", type=float, default=0.4)
    p.add_argument("--cant-tell-share", type=float, default=0.1)
    p.add_argument("--attention-accuracy", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated answers")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    study = _load_study(p, args.study)
    protocol = _protocol(p, args)
    shares = _share_pairs(p, args.target_share) if args.target_share else {"doubleback": 0.45}
    unknown = sorted(set(shares) - set(study.conditions))
    if unknown:
        p.error(f"--target-share names conditions {unknown} not in {list(study.conditions)}")
    if args.participants < 1:
        p.error(f"--participants must be >= 1, received {args.participants}")
    db = db_path(study, args.db, "simulated.sqlite3")
    try:
        check_simulated_db(study, db)
    except ValueError as err:
        p.error(str(err))
    try:
        model = simulation.ResponseModel(shares, default_target_share=args.default_target_share,
                                         original_share=args.original_share,
                                         cant_tell_share=args.cant_tell_share,
                                         attention_accuracy=args.attention_accuracy)
        clock = simulation.SimulatedClock()
        app = server.create_app(study.root, db_path=db, protocol=protocol, simulated=True,
                                synchronous="NORMAL", clock=clock,
                                config=_study_config(p, study, None, pilot=True))
    except (ValueError, storage.StoreMismatchError) as err:
        p.error(str(err))
    ctx = server.context(app)
    client = simulation.FlaskClient(app, clock=clock)
    truth = ctx.store.stimuli()
    rng = np.random.default_rng(args.seed)
    it = range(args.participants)
    if args.progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="simulated participants", unit="participant")
    for _ in it:
        simulation.run_participant(client, model, truth, rng, n_classes=len(study.class_names))
    s = ctx.store.summary()
    print(f"{s['participants_completed']} simulated participants in {db} (target shares "
          f"{shares}, others {args.default_target_share})", flush=True)
    print(f"next: python experiments/human_study.py analyze {args.study} --db {db}", flush=True)
    return db


COMMANDS = {"make-stimuli": make_stimuli, "serve": serve, "export": export, "analyze": analyze,
            "simulate": simulate}


def main(argv=None, *, helpers=None):
    """Runs one subcommand (``argv[0]``) with its options.

    Args:
        argv: the command line without the program name (default ``sys.argv[1:]``).
        helpers: the experiment scripts' shared helpers (``experiments/_common``): dataset
            and model loading, CSV/JSON writing and logging, used by ``make-stimuli`` and
            ``analyze``.
    """
    global _HELPERS
    if helpers is not None:
        _HELPERS = helpers
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(
        prog="human_study.py", description=__doc__.split("\n\n")[0],
        epilog="\n".join(f"  {k:<13s} {v}" for k, v in COMMAND_HELP.items())
        + "\n\nEach command has its own --help.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("command", choices=tuple(COMMANDS), help="what to do (see below)")
    top.add_argument("options", nargs=argparse.REMAINDER, help="the command's options")
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return None
    top.parse_args(argv[:1])
    return COMMANDS[argv[0]](argv[1:])

