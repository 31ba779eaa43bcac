"""The study's HTTP API (Flask test client): refusals change nothing, retries are idempotent,
the admin routes need the token, the page is self-contained."""

import json
import pathlib
import sqlite3

import pytest

pytest.importorskip("flask", reason="the study server needs the `study` extra (flask)")

from gradreg_study import design, server, simulation  # noqa: E402

PROTOCOL = design.Protocol(trials=10, attention_share=0.1)
TOKEN = "admin-token-0123456789"
STUDY_PACKAGE = pathlib.Path(server.__file__).parent


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return simulation.toy_study(tmp_path_factory.mktemp("study") / "toy", n_items=20)


@pytest.fixture
def app(study, tmp_path):
    return server.create_app(study.root, db_path=tmp_path / "db.sqlite3", protocol=PROTOCOL,
                             admin_token=TOKEN)


@pytest.fixture
def client(app):
    return app.test_client()


def _snapshot(app):
    with sqlite3.connect(server.context(app).store.path) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                for t in ("participants", "assignments", "responses", "stimuli")}


def _register(client):
    r = client.post("/api/participants", json={"consent": True})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _answer(client, state, choice=1, **extra):
    payload = {"participant": state["participant"], "stimulus": state["trial"]["stimulus"],
               "choice": choice, "response_ms": 800, **extra}
    return client.post("/api/answers", json=payload)


def test_a_session_resumes_where_it_stopped(client):
    state = _register(client)
    assert state["n_trials"] == PROTOCOL.n_total and state["n_answered"] == 0
    first = state["trial"]
    r = client.get(first["image"])
    assert r.status_code == 200 and r.data[:8] == b"\x89PNG\r\n\x1a\n"
    r = _answer(client, state)
    assert r.status_code == 201 and r.get_json()["status"] == "stored"
    nxt = r.get_json()["state"]
    resumed = client.get(f"/api/participants/{state['participant']}").get_json()
    assert resumed == nxt and resumed["n_answered"] == 1
    assert resumed["trial"]["position"] == 1 and resumed["trial"]["stimulus"] != first["stimulus"]


def test_a_retried_answer_is_stored_once(client, app):
    state = _register(client)
    assert _answer(client, state).status_code == 201
    before = _snapshot(app)
    r = _answer(client, state)
    assert r.status_code == 200 and r.get_json()["status"] == "duplicate"
    assert _snapshot(app) == before and len(before["responses"]) == 1


def _cases(state, other):
    pid, stim = state["participant"], state["trial"]["stimulus"]
    ok = {"participant": pid, "stimulus": stim, "choice": 1, "response_ms": 500}
    js = "application/json"
    return {
        "unknown participant": ("POST", "/api/answers", {**ok, "participant": "A" * 22}, 404),
        "stimulus of another participant": ("POST", "/api/answers",
                                            {**ok, "stimulus": other["trial"]["stimulus"]}, 403),
        "unknown stimulus": ("POST", "/api/answers", {**ok, "stimulus": "0" * 16}, 403),
        "second, different answer": ("POST", "/api/answers", {**ok, "choice": 2}, 409),
        "malformed JSON": ("POST", "/api/answers", (b'{"participant": ', js), 400),
        "JSON array": ("POST", "/api/answers", [ok], 400),
        "NaN": ("POST", "/api/answers", (json.dumps(ok).replace("500", "NaN").encode(), js), 400),
        "deeply nested": ("POST", "/api/answers", (b"[" * 2000 + b"]" * 2000, js), 400),
        "oversized": ("POST", "/api/answers", {**ok, "pad": "x" * 5000}, 413),
        "not JSON content type": ("POST", "/api/answers", (json.dumps(ok).encode(), "text/plain"),
                                  415),
        "missing field": ("POST", "/api/answers", {k: v for k, v in ok.items() if k != "choice"},
                          400),
        "extra field": ("POST", "/api/answers", {**ok, "is_admin": True}, 400),
        "choice as text": ("POST", "/api/answers", {**ok, "choice": "1"}, 400),
        "choice as bool": ("POST", "/api/answers", {**ok, "choice": True}, 400),
        "choice out of range": ("POST", "/api/answers", {**ok, "choice": 10}, 400),
        "negative time": ("POST", "/api/answers", {**ok, "response_ms": -5}, 400),
        "SQL in participant": ("POST", "/api/answers",
                               {**ok, "participant": "x' OR '1'='1'; DROP TABLE responses;--"},
                               400),
        "SQL in stimulus": ("POST", "/api/answers", {**ok, "stimulus": "' OR 1=1 --"}, 400),
        "SQL in participant path": ("GET", "/api/participants/1%27%20OR%20%271%27=%271", None, 400),
        "SQL-like id of valid shape": ("GET", "/api/participants/" + "DROP_TABLE_responses", None,
                                       404),
        "consent missing": ("POST", "/api/participants", {}, 400),
        "consent false": ("POST", "/api/participants", {"consent": False}, 400),
        "GET answers": ("GET", "/api/answers", None, 405),
        "PUT answers": ("PUT", "/api/answers", ok, 405),
        "DELETE participant": ("DELETE", f"/api/participants/{pid}", None, 405),
        "POST image": ("POST", f"{state['trial']['image']}", ok, 405),
        "unknown image": ("GET", "/img/0123456789abcdef.png", None, 404),
        "image path traversal": ("GET", "/img/..%2Fmanifest.json", None, 404),
        "admin without token": ("GET", "/admin/api/summary", None, 401),
        "export without token": ("GET", "/admin/export.csv", None, 401),
        "token in the URL": ("GET", "/admin/export.csv?token=" + "b" * 22, None, 400),
        "export with a wrong bearer": ("GET", "/admin/export.csv", ("bearer", "b" * 22), 403),
        "admin page with a wrong bearer": ("GET", "/admin", ("bearer", "x" * 22), 403),
    }


def test_bad_requests_get_4xx_and_change_nothing(client, app):
    state = _register(client)
    other = _register(client)
    assert _answer(client, state, choice=1).status_code == 201
    before = _snapshot(app)
    for name, (method, path, body, expected) in _cases(state, other).items():
        headers = {}
        if isinstance(body, tuple) and body[0] == "bearer":
            headers, kwargs = {"Authorization": f"Bearer {body[1]}"}, {}
        elif isinstance(body, tuple):
            kwargs = {"data": body[0], "content_type": body[1]}
        else:
            kwargs = {} if body is None else {"json": body}
        r = client.open(path, method=method, headers=headers, **kwargs)
        assert r.status_code == expected, (name, r.status_code, r.get_data(as_text=True)[:200])
        assert r.is_json and "error" in r.get_json(), name
        assert _snapshot(app) == before, f"{name} changed the database"


def test_admin_routes_need_the_token_never_in_a_url(client, app, monkeypatch):
    calls = []
    real = server.hmac.compare_digest
    monkeypatch.setattr(server.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    state = _register(client)
    _answer(client, state, choice=3)
    assert 'name="token"' in client.get("/admin").get_data(as_text=True)  # the log-in form
    for path in ("/admin/api/summary", "/admin/export.csv"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer " + TOKEN[:-1] + "X"}
                          ).status_code == 403
        assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    for path in ("/admin", "/admin/api/summary", "/admin/export.csv"):
        assert client.get(path + "?token=" + TOKEN).status_code == 400  # even the right one
    assert len(calls) == 4  # every token check goes through hmac.compare_digest
    assert client.post("/admin/login", data={"token": "x" * 30}).status_code == 403
    r = client.post("/admin/login", data={"token": TOKEN})
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    page = client.get("/admin").get_data(as_text=True)  # the cookie now authorises
    assert 'id="counts"' in page and TOKEN not in page and "token=" not in page
    summary = client.get("/admin/api/summary").get_json()
    assert summary["participants_started"] == 1
    assert sum(c["answers"] for c in summary["conditions"]) == 1
    csv_text = client.get("/admin/export.csv").get_data(as_text=True)
    assert csv_text.count("\n") == 2 and state["participant"] in csv_text


def test_a_new_app_gets_a_random_admin_token(study, tmp_path):
    a = server.create_app(study.root, db_path=tmp_path / "a.sqlite3", protocol=PROTOCOL)
    b = server.create_app(study.root, db_path=tmp_path / "a.sqlite3", protocol=PROTOCOL)
    assert a.config["ADMIN_TOKEN"] != b.config["ADMIN_TOKEN"]
    assert len(a.config["ADMIN_TOKEN"]) >= 32
    with pytest.raises(ValueError, match="at least 16 characters"):
        server.create_app(study.root, db_path=tmp_path / "a.sqlite3", protocol=PROTOCOL,
                          admin_token="short")
    with pytest.raises(ValueError, match="multiple of the 5 conditions"):
        server.create_app(study.root, db_path=tmp_path / "b.sqlite3",
                          protocol=design.Protocol(trials=12))


def test_pages_are_self_contained_and_headers_strict(client):
    r = client.get("/")
    assert r.status_code == 200
    assert "What is this?" in r.get_data(as_text=True)
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"
    for path in ("/static/study.js", "/static/study.css"):
        assert client.get(path).status_code == 200
    for f in list((STUDY_PACKAGE / "static").iterdir()) + list(
            (STUDY_PACKAGE / "templates").iterdir()):
        text = f.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, f
    assert "image-rendering: pixelated" in (STUDY_PACKAGE / "static" / "study.css").read_text()


def test_participant_ids_are_random(client):
    ids = {_register(client)["participant"] for _ in range(4)}
    assert len(ids) == 4 and all(len(i) == 22 for i in ids)


def test_choice_keys():
    assert server.choice_keys([str(i) for i in range(10)]) == ([str(i) for i in range(10)], "x")
    assert server.choice_keys(list("ABCDEFGHIJ")) == (list("abcdefghij"), "x")
    assert server.choice_keys(["cat", "x"]) == (["", "x"], "?")


def test_the_server_silences_waitress_per_request_queue_warnings_unless_configured(app):
    """waitress warns "Task queue depth is N" for every request that waits for a thread (a line
    per answer under a crowd of participants); the server raises that logger to ERROR, but a
    level the caller set is kept."""
    import logging

    queue_logger = logging.getLogger(server.QUEUE_LOGGER)
    previous = queue_logger.level
    try:
        queue_logger.setLevel(logging.NOTSET)
        with server.running(app):
            assert queue_logger.level == logging.ERROR
        queue_logger.setLevel(logging.INFO)
        with server.running(app):
            assert queue_logger.level == logging.INFO
    finally:
        queue_logger.setLevel(previous)
