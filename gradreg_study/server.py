"""The study's web application (Flask) and its server (waitress).

:func:`create_app` builds a Flask app over a study folder and its SQLite store: the
participant page (consent, instructions, one trial at a time, closing page; plain
HTML/CSS/JS from this package, no CDN), a small JSON API, the stimulus images under opaque
ids, and an admin page with live counts per condition and a CSV export behind a token.
:func:`serve` runs it with waitress on 127.0.0.1 by default; :func:`running` does so in a
background thread (tests, screenshots).

API (JSON bodies of at most :data:`MAX_BODY` bytes, ``Content-Type: application/json``):

    GET  /api/participants/<id>   progress and the next trial          200 | 404
    POST /api/participants        {"consent": true} -> new participant 201 | 400
    POST /api/answers             {"participant", "stimulus", "choice", "response_ms"}
                                  201 stored | 200 the same answer again (stored once)
                                  | 400 bad body | 403 stimulus not assigned to them
                                  | 404 unknown participant | 409 a different answer to an
                                  answered trial | 413 too large | 415 not JSON
    GET  /img/<public id>.png     a stimulus
    GET  /admin, /admin/api/summary, /admin/export.csv    token (``?token=`` or
                                  ``Authorization: Bearer``) else 401 | 403

Requires the ``study`` extra (``pip install gradreg_tf[study]``: flask, waitress).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import pathlib
import re
import secrets
import signal
import threading
from typing import Callable, Iterator

from gradreg_study import design, stimuli, storage

MAX_BODY = 4096
PARTICIPANT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
PUBLIC_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
ANSWER_FIELDS = {"participant", "stimulus", "choice", "response_ms"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
DATASET_NOUNS = {"mnist": "a handwritten digit", "notmnist": "a letter",
                 "svhn": "a house-number digit"}


def _import_flask():
    try:
        import flask
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("the study server needs Flask and waitress: "
                          "pip install 'gradreg_tf[study]'") from None
    return flask


def choice_keys(class_names) -> tuple[list[str], str]:
    """Keyboard shortcuts: each one-character class name is its own key (digits ``0``-``9``,
    letters lower-cased), other classes get none; "can't tell" is ``x`` (``?`` if taken)."""
    keys = [n.lower() if len(n) == 1 else "" for n in class_names]
    return keys, ("x" if "x" not in keys else "?")


@dataclasses.dataclass
class _Context:
    study: stimuli.Study
    store: storage.Store
    protocol: design.Protocol
    plan: Callable[[int], list[str]]
    admin_token: str


def create_app(study_dir, *, db_path=None, protocol: design.Protocol = design.Protocol(),
               admin_token: str | None = None, simulated: bool = False,
               display_px: int = 280, synchronous: str = "FULL"):
    """The Flask app of a study.

    Args:
        study_dir: a study folder (:func:`gradreg_study.stimuli.make_study`); its images
            are verified against the manifest first.
        db_path: the SQLite file (default ``<study_dir>/responses.sqlite3``); created on first
            use, afterwards it must belong to this study and protocol.
        protocol: trials per participant, attention share, seed.
        admin_token: the admin token (default: a new random one; read it from
            ``app.config["ADMIN_TOKEN"]``).
        simulated: the database holds simulated participants (kept apart from real ones).
        display_px: width and height of the shown image in CSS pixels.
        synchronous: SQLite durability, ``"FULL"`` or ``"NORMAL"`` (see
            :class:`~gradreg_study.storage.Store`).

    Returns:
        A ``flask.Flask`` app.

    Raises:
        ValueError: a protocol that does not fit the study, a too short admin token, or
            ``display_px`` out of [28, 2000].
        gradreg_study.storage.StoreMismatchError: the database belongs to another study.
    """
    flask = _import_flask()
    from werkzeug.exceptions import HTTPException

    study = stimuli.load_study(study_dir)
    plan = design.session_plan(study, protocol)
    if admin_token is None:
        admin_token = secrets.token_urlsafe(24)
    if not isinstance(admin_token, str) or len(admin_token) < 16:
        raise ValueError("admin_token must be a string of at least 16 characters.")
    if not 28 <= int(display_px) <= 2000:
        raise ValueError(f"display_px must be in [28, 2000], received {display_px!r}.")
    db = pathlib.Path(db_path) if db_path else study.root / stimuli.DATABASE
    store = storage.Store.open(db, study, protocol, simulated=simulated, synchronous=synchronous)
    here = pathlib.Path(__file__).parent
    app = flask.Flask(__name__, static_folder=str(here / "static"),
                      template_folder=str(here / "templates"), static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, ADMIN_TOKEN=admin_token)
    app.json.sort_keys = False
    ctx = _Context(study, store, protocol, plan, admin_token)
    app.extensions["gradreg_study"] = ctx
    keys, cant_tell_key = choice_keys(study.class_names)

    def state_json(state: storage.ParticipantState) -> dict:
        trial = None
        if not state.done:
            trial = {"position": state.next_position, "stimulus": state.next_public_id,
                     "image": f"/img/{state.next_public_id}.png"}
        return {"participant": state.participant_id, "n_trials": state.n_trials,
                "n_answered": state.n_answered, "done": state.done, "trial": trial}

    def error(status: int, code: str, message: str):
        return flask.jsonify({"error": code, "message": message}), status

    def json_body() -> dict:
        if flask.request.mimetype != "application/json":
            flask.abort(415, f"send Content-Type application/json, received "
                             f"{flask.request.mimetype or 'none'!r}.")
        raw = flask.request.get_data(cache=False)  # 413 above MAX_CONTENT_LENGTH

        def no_constants(name):
            raise ValueError(f"{name} is not allowed")

        try:
            body = json.loads(raw, parse_constant=no_constants)
        except (ValueError, RecursionError) as err:
            flask.abort(400, f"the body is not valid JSON ({str(err)[:80]}).")
        if not isinstance(body, dict):
            flask.abort(400, f"the body must be a JSON object, received {type(body).__name__}.")
        return body

    @app.errorhandler(HTTPException)
    def http_error(err):
        return error(err.code, err.name.lower().replace(" ", "_"), err.description)

    @app.after_request
    def headers(response):
        response.headers.update(SECURITY_HEADERS)
        if not flask.request.path.startswith(("/img/", "/static/")):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def index():
        return flask.render_template(
            "index.html", class_names=study.class_names, keys=keys,
            cant_tell_key=cant_tell_key, n_trials=protocol.n_total, px=int(display_px),
            minutes=max(1, round(protocol.n_total * 4 / 60)),
            noun=DATASET_NOUNS.get(study.manifest["dataset"], "a class"),
            storage_key=f"gradreg_tf.study.{study.fingerprint[:12]}.{db.stem}")

    @app.get("/favicon.ico")
    def favicon():
        return "", 204

    @app.get("/api/participants/<participant>")
    def participant_state(participant):
        if not PARTICIPANT_PATTERN.match(participant):
            return error(400, "bad_participant", "participant ids are 16-64 characters of "
                                                 "A-Z a-z 0-9 _ -.")
        state = store.state(participant)
        if state is None:
            return error(404, "unknown_participant", "no such participant.")
        return flask.jsonify(state_json(state))

    @app.post("/api/participants")
    def register():
        body = json_body()
        if body != {"consent": True}:
            return error(400, "no_consent", 'send {"consent": true} once the participant has '
                                            "agreed; nothing else.")
        pid = store.register(plan)
        return flask.jsonify(state_json(store.state(pid))), 201

    @app.post("/api/answers")
    def answer():
        body = json_body()
        if set(body) != ANSWER_FIELDS:
            return error(400, "bad_fields", f"expected exactly the fields {sorted(ANSWER_FIELDS)}"
                                            f", received {sorted(body)[:8]}.")
        pid, public_id = body["participant"], body["stimulus"]
        if not isinstance(pid, str) or not PARTICIPANT_PATTERN.match(pid):
            return error(400, "bad_participant", "participant must be a participant id.")
        if not isinstance(public_id, str) or not PUBLIC_ID_PATTERN.match(public_id):
            return error(400, "bad_stimulus", "stimulus must be a stimulus id (16 hex digits).")
        try:
            status, state = store.answer(pid, public_id, body["choice"], body["response_ms"],
                                         user_agent=flask.request.headers.get("User-Agent", ""))
        except ValueError as err:
            return error(400, "bad_answer", str(err))
        if status is storage.AnswerStatus.UNKNOWN_PARTICIPANT:
            return error(404, status.value, "no such participant.")
        if status is storage.AnswerStatus.NOT_ASSIGNED:
            return error(403, status.value, "this stimulus is not in the participant's "
                                            "assignment.")
        if status is storage.AnswerStatus.CONFLICT:
            return error(409, status.value, "this trial already has a different answer.")
        code = 201 if status is storage.AnswerStatus.STORED else 200
        return flask.jsonify({"status": status.value, "state": state_json(state)}), code

    @app.get("/img/<public_id>.png")
    def image(public_id):
        file = store.stimulus_file(public_id) if PUBLIC_ID_PATTERN.match(public_id) else None
        if file is None:
            return error(404, "unknown_stimulus", "no such image.")
        return flask.send_file(study.root / file, mimetype="image/png", max_age=3600)

    def require_token():
        given = flask.request.args.get("token")
        auth = flask.request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer "):]
        if not given:
            flask.abort(401, "this page needs the admin token printed when the server started.")
        if not hmac.compare_digest(given.encode(), admin_token.encode()):
            flask.abort(403, "wrong admin token.")

    @app.get("/admin")
    def admin():
        require_token()
        return flask.render_template("admin.html", conditions=study.conditions,
                                     n_items=len(study.items), protocol=protocol.as_dict(),
                                     database=str(db))

    @app.get("/admin/api/summary")
    def admin_summary():
        require_token()
        return flask.jsonify(store.summary())

    @app.get("/admin/export.csv")
    def admin_export():
        require_token()
        return flask.Response(store.csv_text(), mimetype="text/csv", headers={
            "Content-Disposition": "attachment; filename=responses.csv"})

    return app


def context(app) -> _Context:
    """The study, store and protocol an app of :func:`create_app` serves."""
    return app.extensions["gradreg_study"]


def _create_server(app, host: str, port: int, threads: int):
    from waitress import create_server

    return create_server(app, host=host, port=port, threads=threads, ident="gradreg_tf",
                         max_request_body_size=MAX_BODY * 4, clear_untrusted_proxy_headers=True)


def serve(app, *, host: str = "127.0.0.1", port: int = 8000, threads: int = 8,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serves ``app`` with waitress until interrupted (Ctrl-C or SIGTERM).

    Args:
        app: from :func:`create_app`.
        host: interface to bind (127.0.0.1: this machine only).
        port: TCP port (0: any free port).
        threads: waitress worker threads.
        on_ready: called with the base URL once the socket is bound.
    """
    server = _create_server(app, host, port, threads)
    if on_ready:
        on_ready(f"http://{host}:{server.effective_port}")

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.run()  # returns after closing the server on KeyboardInterrupt
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def running(app, *, host: str = "127.0.0.1", port: int = 0, threads: int = 8) -> Iterator[str]:
    """Runs ``app`` with waitress in a background thread; yields the base URL."""
    server = _create_server(app, host, port, threads)
    thread = threading.Thread(target=server.run, name="study-waitress", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.effective_port}"
    finally:
        server.close()
        server.task_dispatcher.shutdown()
        thread.join(timeout=10)
