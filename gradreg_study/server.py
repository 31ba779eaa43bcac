"""The study's web application (Flask) and its server (waitress).

:func:`create_app` builds a Flask app over a study folder, its configuration
(:mod:`gradreg_study.config`) and its SQLite store: the participant page (consent, instructions,
practice, one trial at a time, closing page with the platform's completion code or redirect;
plain HTML/CSS/JS from this package, no CDN, every string from the configured language), a small
JSON API, the stimulus images under opaque ids, and an admin page with live counts per condition
and a CSV export. :func:`serve` runs it with waitress on 127.0.0.1 by default; :func:`running`
does so in a background thread (tests, screenshots).

API (JSON bodies of at most :data:`MAX_BODY` bytes, ``Content-Type: application/json``):

    GET  /api/participants/<id>   progress, the next trial, the completion when done  200 | 404
    POST /api/participants        {"consent": true, "platform_ids": {...}, "screen": [w, h],
                                  "viewport": [w, h]} -> 201 new participant | 200 a known
                                  platform id resumes | 400 bad body or missing platform ids
                                  | 403 MTurk preview (nothing stored) | 409 platform id
                                  already took part (``repeat: refuse``)
    POST /api/answers             {"participant", "stimulus", "choice", "response_ms",
                                  optional "viewport"}
                                  201 stored | 200 the same answer again (stored once)
                                  | 400 bad body | 403 stimulus not assigned to them
                                  | 404 unknown participant | 409 a different answer to an
                                  answered trial, or not the next trial | 413 | 415
    GET  /img/<public id>.png     a stimulus (no file name, date or tag in any header)
    GET  /admin                   the admin page, or its login form
    POST /admin/login             form field ``token`` -> an HttpOnly, SameSite=Strict cookie
    GET  /admin/api/summary, /admin/export.csv   cookie or ``Authorization: Bearer <token>``,
                                  else 401 | 403; a token in the URL is refused (400)

Every request's Host must be the bound host, localhost or a configured public name (else 421:
the DNS-rebinding defence).

Requires the ``study`` extra (``pip install gradreg_tf[study]``: flask, waitress).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import logging
import pathlib
import re
import resource
import secrets
import signal
import threading
import urllib.parse
from typing import Callable, Iterator

from gradreg_study import config as _config
from gradreg_study import design, stimuli, storage

MAX_BODY = 4096
PARTICIPANT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
PUBLIC_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
ANSWER_FIELDS = {"participant", "stimulus", "choice", "response_ms"}
ANSWER_OPTIONAL = {"viewport"}
REGISTER_FIELDS = {"consent", "platform_ids", "screen", "viewport"}
PLATFORM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PLATFORM_PARAMS = {
    # URL parameter names of each platform, as (participant, study, session)
    "prolific": ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"),
    "mturk": ("workerId", "hitId", "assignmentId"),
    "pid": ("pid", None, None),
    "none": (None, None, None),
}
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
ADMIN_COOKIE = "gradreg_admin"
DEFAULT_THREADS = 16
DEFAULT_CONNECTION_LIMIT = 500
"""waitress' default (100, its own sockets included) serves about 98 participants at once."""
QUEUE_LOGGER = "waitress.queue"
"""waitress warns ``Task queue depth is N`` for every request that waits for a free thread: at
200 participants that is a line per answer (thousands a minute, 17% of the server's time in a
profile of the load test). :func:`serve` and :func:`running` raise this logger to ERROR unless
its level was set by the caller."""


def security_headers(platform: _config.Platform) -> dict:
    """The response headers; MTurk may frame the page and receive its form, nobody else."""
    framer = platform.mturk_origin if platform.name == "mturk" else None
    csp = ("default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
           f"frame-ancestors {framer or chr(39) + 'none' + chr(39)}; "
           f"form-action 'self'{' ' + framer if framer else ''}")
    headers = {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer"}
    if framer is None:
        headers["X-Frame-Options"] = "DENY"
    return headers


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
    config: _config.StudyConfig = _config.StudyConfig()
    allowed_hosts: set = dataclasses.field(default_factory=lambda: set(LOCAL_HOSTS))
    admin_session: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))


def create_app(study_dir, *, db_path=None, protocol: design.Protocol = design.Protocol(),
               admin_token: str | None = None, simulated: bool = False,
               display_px: int = 280, synchronous: str = "FULL",
               config: _config.StudyConfig | None = None, clock=None):
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
        config: the study configuration (default: a local pilot without platform, consent
            details or practice; ``serve`` reads ``<study>/study_config.json``). Its practice
            count becomes ``protocol.practice``.
        clock: the store's clock (seconds; tests of the abandonment timeout).

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
    config = config or _config.StudyConfig()
    if protocol.practice not in (0, config.practice_trials):
        raise ValueError(f"protocol.practice ({protocol.practice}) differs from the "
                         f"configuration's practice.trials ({config.practice_trials}).")
    protocol = dataclasses.replace(protocol, practice=config.practice_trials)
    plan = design.session_plan(study, protocol)
    if admin_token is None:
        admin_token = secrets.token_urlsafe(24)
    if not isinstance(admin_token, str) or len(admin_token) < 16:
        raise ValueError("admin_token must be a string of at least 16 characters.")
    if not 28 <= int(display_px) <= 2000:
        raise ValueError(f"display_px must be in [28, 2000], received {display_px!r}.")
    db = pathlib.Path(db_path) if db_path else study.root / stimuli.DATABASE
    store = storage.Store.open(db, study, protocol, simulated=simulated, synchronous=synchronous,
                               min_response_ms=config.min_response_ms,
                               abandon_after_s=60 * config.abandon_after_minutes,
                               **({"clock": clock} if clock else {}))
    here = pathlib.Path(__file__).parent
    app = flask.Flask(__name__, static_folder=str(here / "static"),
                      template_folder=str(here / "templates"), static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, ADMIN_TOKEN=admin_token)
    app.json.sort_keys = False
    ctx = _Context(study, store, protocol, plan, admin_token, config,
                   set(LOCAL_HOSTS) | set(config.public_hosts))
    app.extensions["gradreg_study"] = ctx
    keys, cant_tell_key = choice_keys(study.class_names)
    platform = config.platform
    headers_for_all = security_headers(platform)
    truth = store.stimuli()
    texts = config.strings()

    def completion(participant_id: str) -> dict | None:
        """What the end page offers: the code, the redirect or the MTurk form."""
        row = store.participant(participant_id)
        pid = row["platform_pid"] or ""
        if platform.name == "mturk":
            return {"code": platform.completion_code or participant_id,
                    "mturk": {"action": platform.mturk_origin + "/mturk/externalSubmit",
                              "assignmentId": row["platform_session_id"] or ""}}
        if not (platform.completion_code or platform.completion_url):
            return None
        url = platform.completion_url.format(code=urllib.parse.quote(platform.completion_code),
                                             pid=urllib.parse.quote(pid))
        return {"code": platform.completion_code, "url": url or None}

    def state_json(state: storage.ParticipantState) -> dict:
        trial = None
        if not state.done:
            trial = {"position": state.next_position, "stimulus": state.next_public_id,
                     "image": f"/img/{state.next_public_id}.png",
                     "practice": state.next_position < state.n_practice}
        return {"participant": state.participant_id, "n_trials": state.n_trials,
                "n_practice": state.n_practice, "n_answered": state.n_answered,
                "done": state.done, "trial": trial,
                "completion": completion(state.participant_id) if state.done else None}

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

    @app.before_request
    def check_host():
        host = flask.request.host.lower()
        name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        if name not in ctx.allowed_hosts:
            flask.abort(421, f"this server does not answer for the host {name[:80]!r}; it "
                             f"answers for {sorted(ctx.allowed_hosts)} (add public names to "
                             "public_hosts in the study configuration).")

    @app.after_request
    def headers(response):
        response.headers.update(headers_for_all)
        if not flask.request.path.startswith(("/img/", "/static/")):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def index():
        n_trials = protocol.n_total
        noun = texts.get(f"noun_{study.manifest['dataset']}", texts["noun_other"])
        filled = {
            "consent_intro": texts["consent_intro"].format(
                n_trials=n_trials, minutes=max(1, round((n_trials + protocol.practice) * 4 / 60))),
            "instructions_body": texts["instructions_body"].format(
                noun=noun, classes=", ".join(study.class_names)),
            "practice_intro": texts["practice_intro"].format(n_practice=protocol.practice)}
        consent = [(texts[f"label_{k}"], config.consent[k]) for k in _config.CONSENT_FIELDS
                   if config.consent.get(k)]
        page = {k: texts[k] for k in ("progress", "practice_progress", "feedback_correct",
                                      "feedback_wrong", "completion_code", "error_unreachable",
                                      "error_image", "error_unavailable", "needs_platform",
                                      "already_done")}
        return flask.render_template(
            "index.html", t={**texts, **filled}, page_texts=page, consent=consent,
            instructions=config.instructions, n_practice=protocol.practice,
            class_names=study.class_names, keys=keys, cant_tell_key=cant_tell_key,
            n_trials=n_trials, px=int(display_px), language=config.language,
            platform=platform.name, params=[p for p in PLATFORM_PARAMS[platform.name] if p],
            mode=config.mode, storage_key=f"gradreg_tf.study.{study.fingerprint[:12]}.{db.stem}")

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

    def enrolment(body) -> storage.Enrolment | tuple:
        """The platform ids and sizes of a registration body, or an error response."""
        ids = body.get("platform_ids", {})
        if not isinstance(ids, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in ids.items()):
            return error(400, "bad_platform_ids", "platform_ids must be an object of strings.")
        names = PLATFORM_PARAMS[platform.name]
        unknown = sorted(set(ids) - {n for n in names if n})
        if unknown:
            return error(400, "bad_platform_ids", f"this study ({platform.name}) takes the ids "
                                                  f"{[n for n in names if n]}, received "
                                                  f"{unknown[:5]}.")
        values = [ids.get(n) if n else None for n in names]
        if platform.name == "mturk" and values[2] == MTURK_PREVIEW:  # before any other check
            return error(403, "preview", texts["preview_body"])
        if names[0] and not all(values[i] for i, n in enumerate(names) if n):
            return error(400, "needs_platform", texts["needs_platform"])
        if any(v is not None and not PLATFORM_ID.match(v) for v in values):
            return error(400, "bad_platform_ids", "platform ids are 1-64 characters of A-Z a-z "
                                                  "0-9 _ -.")
        try:
            screen = storage.check_size(body.get("screen"), "screen")
            viewport = storage.check_size(body.get("viewport"), "viewport")
        except ValueError as err:
            return error(400, "bad_size", str(err))
        return storage.Enrolment(platform.name, *values, screen=screen, viewport=viewport)

    @app.post("/api/participants")
    def register():
        body = json_body()
        if body.get("consent") is not True or not set(body) <= REGISTER_FIELDS:
            return error(400, "no_consent", 'send {"consent": true} once the participant has '
                                            f"agreed, with at most the fields "
                                            f"{sorted(REGISTER_FIELDS)}; received "
                                            f"{sorted(body)[:8]}.")
        who = enrolment(body)
        if not isinstance(who, storage.Enrolment):
            return who
        try:
            pid = store.register(plan, who)
        except storage.AlreadyRegistered as known:
            if platform.repeat == "refuse":
                return error(409, "already_participated", texts["already_done"])
            return flask.jsonify(state_json(store.state(known.participant_id))), 200
        return flask.jsonify(state_json(store.state(pid))), 201

    @app.post("/api/answers")
    def answer():
        body = json_body()
        if not ANSWER_FIELDS <= set(body) <= ANSWER_FIELDS | ANSWER_OPTIONAL:
            return error(400, "bad_fields", f"expected the fields {sorted(ANSWER_FIELDS)} (and "
                                            f"optionally {sorted(ANSWER_OPTIONAL)}), received "
                                            f"{sorted(body)[:8]}.")
        pid, public_id = body["participant"], body["stimulus"]
        if not isinstance(pid, str) or not PARTICIPANT_PATTERN.match(pid):
            return error(400, "bad_participant", "participant must be a participant id.")
        if not isinstance(public_id, str) or not PUBLIC_ID_PATTERN.match(public_id):
            return error(400, "bad_stimulus", "stimulus must be a stimulus id (16 hex digits).")
        try:
            status, state = store.answer(pid, public_id, body["choice"], body["response_ms"],
                                         user_agent=flask.request.headers.get("User-Agent", ""),
                                         viewport=body.get("viewport"))
        except ValueError as err:
            return error(400, "bad_answer", str(err))
        if status is storage.AnswerStatus.UNKNOWN_PARTICIPANT:
            return error(404, status.value, "no such participant.")
        if status is storage.AnswerStatus.NOT_ASSIGNED:
            return error(403, status.value, "this stimulus is not in the participant's "
                                            "assignment.")
        if status is storage.AnswerStatus.CONFLICT:
            return error(409, status.value, "this trial already has a different answer.")
        if status is storage.AnswerStatus.OUT_OF_ORDER:
            return error(409, status.value, "answer the trials in the assigned order: this is "
                                            "not the next one.")
        code = 201 if status is storage.AnswerStatus.STORED else 200
        reply = {"status": status.value, "state": state_json(state)}
        shown = truth[public_id]
        if shown["kind"] == "practice" and config.practice_feedback:
            label = study.class_names[shown["original_label"]]
            correct = body["choice"] == shown["original_label"]
            reply["feedback"] = {"correct": correct, "text": texts[
                "feedback_correct" if correct else "feedback_wrong"].format(label=label)}
        return flask.jsonify(reply), code

    @app.get("/img/<public_id>.png")
    def image(public_id):
        file = store.stimulus_file(public_id) if PUBLIC_ID_PATTERN.match(public_id) else None
        if file is None:
            return error(404, "unknown_stimulus", "no such image.")
        # the bytes only: no file name, modification date or tag derived from the file
        response = flask.Response((study.root / file).read_bytes(), mimetype="image/png")
        response.headers["Cache-Control"] = "private, max-age=3600"
        return response

    def authorized() -> bool:
        if "token" in flask.request.args:
            flask.abort(400, "the admin token never goes into a URL (browser history, proxy "
                             "logs); log in on /admin or send Authorization: Bearer <token>.")
        auth = flask.request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            if not hmac.compare_digest(auth[len("Bearer "):].encode(), admin_token.encode()):
                flask.abort(403, "wrong admin token.")
            return True
        cookie = flask.request.cookies.get(ADMIN_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), ctx.admin_session.encode())

    def require_token():
        if not authorized():
            flask.abort(401, "log in on /admin with the admin token printed when the server "
                             "started, or send Authorization: Bearer <token>.")

    def login_page(message: str = "", status: int = 200):
        return flask.render_template("login.html", message=message), status

    @app.get("/admin")
    def admin():
        if not authorized():
            return login_page()
        return flask.render_template("admin.html", conditions=study.conditions,
                                     n_items=len(study.items), protocol=protocol.as_dict(),
                                     database=str(db), platform=platform.name)

    @app.post("/admin/login")
    def admin_login():
        given = flask.request.form.get("token", "")
        if not hmac.compare_digest(given.encode(), admin_token.encode()):
            return login_page("Wrong admin token.", 403)
        response = flask.redirect("/admin", code=303)
        response.set_cookie(ADMIN_COOKIE, ctx.admin_session, httponly=True, samesite="Strict",
                            secure=flask.request.is_secure, path="/admin")
        return response

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


def _check_connection_limit(connection_limit: int) -> None:
    """Raises the soft open-files limit if needed; refuses a limit the process cannot hold."""
    if connection_limit < 1:
        raise ValueError(f"connection_limit must be >= 1, received {connection_limit}.")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = connection_limit + 64  # the database, the images, the listening socket, ...
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise ValueError(f"connection_limit {connection_limit} needs {need} open files; "
                             f"this process may open at most {hard} (ulimit -n).")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _create_server(app, host: str, port: int, threads: int, connection_limit: int):
    from waitress import create_server

    _check_connection_limit(connection_limit)
    queue_logger = logging.getLogger(QUEUE_LOGGER)
    if queue_logger.level == logging.NOTSET:
        queue_logger.setLevel(logging.ERROR)
    if host not in ("0.0.0.0", "::", ""):
        context(app).allowed_hosts.add(host.strip("[]").lower())
    return create_server(app, host=host, port=port, threads=threads, ident="gradreg_tf",
                         connection_limit=connection_limit,
                         max_request_body_size=MAX_BODY * 4, clear_untrusted_proxy_headers=True)


def serve(app, *, host: str = "127.0.0.1", port: int = 8000, threads: int = DEFAULT_THREADS,
          connection_limit: int = DEFAULT_CONNECTION_LIMIT,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serves ``app`` with waitress until interrupted (Ctrl-C or SIGTERM).

    Args:
        app: from :func:`create_app`.
        host: interface to bind (127.0.0.1: this machine only); it joins the Host allow-list.
        port: TCP port (0: any free port).
        threads: waitress worker threads.
        connection_limit: open connections waitress accepts (its own sockets included);
            browsers keep one or two per participant.
        on_ready: called with the base URL once the socket is bound.
    """
    server = _create_server(app, host, port, threads, connection_limit)
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
def running(app, *, host: str = "127.0.0.1", port: int = 0, threads: int = DEFAULT_THREADS,
            connection_limit: int = DEFAULT_CONNECTION_LIMIT) -> Iterator[str]:
    """Runs ``app`` with waitress in a background thread; yields the base URL."""
    server = _create_server(app, host, port, threads, connection_limit)
    thread = threading.Thread(target=server.run, name="study-waitress", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.effective_port}"
    finally:
        server.close()
        server.task_dispatcher.shutdown()
        thread.join(timeout=10)
