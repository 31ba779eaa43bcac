"""The study for real participants (issue 21), through the HTTP API (Flask test client):
recruitment platforms, completion, practice, order and timing, opaque images, the Host
allow-list, simulated labelling and the configuration's language."""

import csv
import io
import json
import sqlite3
import zlib

import pytest

pytest.importorskip("flask", reason="the study server needs the `study` extra (flask)")

from gradreg_study import config, design, server, simulation, storage  # noqa: E402

PROTOCOL = design.Protocol(trials=10, attention_share=0.1)  # 11 trials (+ practice)
CONSENT = {k: f"the {k.replace('_', ' ')}" for k in config.CONSENT_FIELDS}
PROLIFIC = {"name": "prolific", "completion_code": "C0DE42",
            "completion_url": "https://app.prolific.com/submissions/complete?cc={code}"}
PROLIFIC_IDS = {"PROLIFIC_PID": "5f1a2b3c4d5e6f7a8b9c0d1e", "STUDY_ID": "60aabbccddeeff0011223344",
                "SESSION_ID": "s3ss10n0001"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return simulation.toy_study(tmp_path_factory.mktemp("study") / "toy", n_items=20)


def _app(study, tmp_path, *, simulated=False, clock=None, **cfg):
    cfg = config.parse({"consent": CONSENT, **cfg})
    return server.create_app(study.root, db_path=tmp_path / "db.sqlite3", protocol=PROTOCOL,
                             config=cfg, simulated=simulated, clock=clock)


def _register(client, ids=None, status=201, **extra):
    r = client.post("/api/participants", json={"consent": True, "platform_ids": ids or {},
                                                **extra})
    assert r.status_code == status, r.get_json()
    return r.get_json()


def _answer(client, state, choice=1, response_ms=800, **extra):
    return client.post("/api/answers", json={
        "participant": state["participant"], "stimulus": state["trial"]["stimulus"],
        "choice": choice, "response_ms": response_ms, **extra})


def _finish(client, state, choice=1):
    while not state["done"]:
        r = _answer(client, state, choice)
        assert r.status_code == 201, r.get_json()
        state = r.get_json()["state"]
    return state


def _export(app):
    text = app.test_client().get(
        "/admin/export.csv", headers={"Authorization": f"Bearer {app.config['ADMIN_TOKEN']}"}
    ).get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(text)))


def _count(app, table):
    with sqlite3.connect(server.context(app).store.path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_prolific_ids_are_stored_once_and_the_code_comes_only_at_the_end(study, tmp_path):
    app = _app(study, tmp_path, platform=PROLIFIC)
    client = app.test_client()
    assert _register(client, status=400)["error"] == "needs_platform"  # not from Prolific
    assert _register(client, {**PROLIFIC_IDS, "pid": "x"}, status=400)["error"] == \
        "bad_platform_ids"
    assert _register(client, {**PROLIFIC_IDS, "PROLIFIC_PID": "a b"}, status=400)["error"] == \
        "bad_platform_ids"
    assert _count(app, "participants") == 0
    state = _register(client, PROLIFIC_IDS, screen=[1920, 1080], viewport=[1200, 800])
    assert state["completion"] is None and not state["done"]
    again = _register(client, PROLIFIC_IDS, status=200)  # a second visit resumes
    assert again["participant"] == state["participant"] and _count(app, "participants") == 1
    state = _finish(client, state)
    assert state["completion"] == {
        "code": "C0DE42", "url": "https://app.prolific.com/submissions/complete?cc=C0DE42"}
    rows = _export(app)
    assert len(rows) == PROTOCOL.n_total
    row = rows[0]
    assert (row["platform"], row["platform_pid"], row["platform_study_id"],
            row["platform_session_id"]) == ("prolific", *PROLIFIC_IDS.values())
    assert {r["completed"] for r in rows} == {"1"} and row["completed_at"] >= row["started_at"]
    assert (row["screen_w"], row["screen_h"], row["mode"]) == ("1920", "1080", "human")


def test_a_platform_id_can_be_refused_a_second_time(study, tmp_path):
    app = _app(study, tmp_path, platform={**PROLIFIC, "repeat": "refuse"})
    client = app.test_client()
    _register(client, PROLIFIC_IDS)
    assert _register(client, PROLIFIC_IDS, status=409)["error"] == "already_participated"
    other = _register(client, {**PROLIFIC_IDS, "PROLIFIC_PID": "another0participant"})
    assert other["participant"] and _count(app, "participants") == 2


def test_mturk_preview_stores_nothing_and_only_mturk_may_frame_the_page(study, tmp_path):
    app = _app(study, tmp_path, platform={"name": "mturk", "mturk_sandbox": True})
    client = app.test_client()
    ids = {"workerId": "A1WORKER", "hitId": "3HIT", "assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"}
    page = client.get("/?" + "&".join(f"{k}={v}" for k, v in ids.items()))
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors https://workersandbox.mturk.com;" in csp
    assert "form-action 'self' https://workersandbox.mturk.com" in csp
    assert "X-Frame-Options" not in page.headers
    assert _register(client, ids, status=403)["error"] == "preview"
    preview = {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "3HIT"}  # no worker yet
    assert _register(client, preview, status=403)["error"] == "preview"
    assert _count(app, "participants") == 0 and _count(app, "responses") == 0
    state = _finish(client, _register(client, {**ids, "assignmentId": "3ASSIGN"}))
    assert state["completion"]["mturk"] == {
        "action": "https://workersandbox.mturk.com/mturk/externalSubmit", "assignmentId": "3ASSIGN"}
    plain = _app(study, tmp_path / "plain").test_client().get("/")
    assert "frame-ancestors 'none'" in plain.headers["Content-Security-Policy"]
    assert plain.headers["X-Frame-Options"] == "DENY"


def test_generic_pid_fills_the_completion_url(study, tmp_path):
    app = _app(study, tmp_path, platform={"name": "pid", "completion_url":
                                          "https://panel.example.org/done?p={pid}"})
    client = app.test_client()
    state = _finish(client, _register(client, {"pid": "panel-77"}))
    assert state["completion"] == {"code": "", "url": "https://panel.example.org/done?p=panel-77"}


def test_practice_comes_first_with_feedback_and_is_marked_in_the_export(study, tmp_path):
    app = _app(study, tmp_path, practice={"trials": 3, "feedback": True})
    client = app.test_client()
    state = _register(client)
    assert state["n_practice"] == 3 and state["n_trials"] == PROTOCOL.n_total + 3
    truth = server.context(app).store.stimuli()
    for i in range(3):
        assert state["trial"]["practice"] is True
        label = truth[state["trial"]["stimulus"]]["original_label"]
        reply = _answer(client, state, choice=label if i == 0 else (label + 1) % 10).get_json()
        assert reply["feedback"]["correct"] is (i == 0)
        assert study.class_names[label] in reply["feedback"]["text"]
        state = reply["state"]
    assert state["trial"]["practice"] is False
    reply = _answer(client, state).get_json()
    assert "feedback" not in reply  # never on a real trial
    _finish(client, reply["state"])
    rows = _export(app)
    practice = [r for r in rows if r["practice"] == "1"]
    assert [r["position"] for r in practice] == ["0", "1", "2"]
    assert {r["kind"] for r in practice} == {"practice"} and {r["condition"] for r in practice} == {""}
    checks = {r["stimulus_id"] for r in rows if r["kind"] == "attention"}
    assert not checks & {r["stimulus_id"].split(":", 1)[1] for r in practice}  # other images


def test_answers_only_in_order_with_server_timing_and_too_fast_flags(study, tmp_path):
    now = [1000.0]
    app = _app(study, tmp_path, clock=lambda: now[0], quality={"min_response_ms": 300})
    client = app.test_client()
    state = _register(client)
    store = server.context(app).store
    with sqlite3.connect(store.path) as conn:
        second = conn.execute(
            "SELECT s.public_id FROM assignments a JOIN stimuli s USING (stimulus_id) "
            "WHERE a.participant_id = ? AND a.position = 1", (state["participant"],)).fetchone()[0]
    assert second != state["trial"]["stimulus"]
    r = client.post("/api/answers", json={"participant": state["participant"], "stimulus": second,
                                          "choice": 1, "response_ms": 900})
    assert r.status_code == 409 and r.get_json()["error"] == "out_of_order"
    now[0] += 2.0  # a person: 2 s on the server, 1.5 s in the browser
    reply = _answer(client, state, response_ms=1500, viewport=[800, 600]).get_json()
    now[0] += 0.1  # a bot: 100 ms on the server although it claims 2 s
    reply = _answer(client, reply["state"], response_ms=2000).get_json()
    now[0] += 5.0  # the browser reports 50 ms
    _answer(client, reply["state"], response_ms=50)
    rows = _export(app)
    assert [(r["server_rt_ms"], r["too_fast"]) for r in rows] == [
        ("2000", "0"), ("100", "1"), ("5000", "1")]
    assert (rows[0]["viewport_w"], rows[0]["viewport_h"]) == ("800", "600")
    assert _answer(client, reply["state"] | {"trial": {"stimulus": second}},
                   viewport=[0, 5]).status_code == 400


def test_abandoned_latin_square_rows_go_to_newcomers_and_completers_stay_balanced(study, tmp_path):
    """25% of participants leave early; with reassignment every item is seen by completers in
    every condition equally often (without it, abandoned rows leave holes)."""
    import numpy as np

    def run(abandon_minutes):
        now = [0.0]
        app = _app(study, tmp_path / str(abandon_minutes), clock=lambda: now[0],
                   abandon_after_minutes=abandon_minutes)
        client = simulation.FlaskClient(app)
        truth = server.context(app).store.stimuli()
        rng = np.random.default_rng(0)
        completers = 0
        while completers < 20:  # two full rounds of the 2 blocks x 5 rows
            leaves = rng.random() < 0.25
            now[0] += 120.0  # two minutes between arrivals
            simulation.run_participant(client, simulation.ResponseModel(), truth, rng,
                                       n_classes=10, stop_after=int(rng.integers(2, 8))
                                       if leaves else None)
            completers += not leaves
        rows = [r for r in _export(app) if r["completed"] == "1" and r["kind"] == "adversarial"]
        seen = {}
        for r in rows:
            seen[(r["item_id"], r["condition"])] = seen.get((r["item_id"], r["condition"]), 0) + 1
        cells = [seen.get((it["item_id"], c), 0) for it in study.items for c in study.conditions]
        return cells

    balanced = run(abandon_minutes=1)
    # 20 completers = 2 full rounds of 10 slots: every (item, condition) cell seen twice
    assert set(balanced) == {2}, sorted(set(balanced))
    unbalanced = run(abandon_minutes=600)
    assert set(unbalanced) != {2}  # the check can fail: without reassignment it does


def test_image_responses_reveal_nothing_about_the_stimulus(study, tmp_path):
    app = _app(study, tmp_path)
    client = app.test_client()
    store = server.context(app).store
    for public_id, s in store.stimuli().items():
        r = client.get(f"/img/{public_id}.png")
        assert r.status_code == 200
        headers = " ".join(f"{k}: {v}" for k, v in r.headers.items()).lower()
        for secret in (s["file"], s["file"].rsplit("/", 1)[-1], s["stimulus_id"],
                       "content-disposition", "last-modified", "etag",
                       *(x for x in (s["condition"], s["item_id"]) if x)):
            assert secret.lower() not in headers, (secret, headers)
        png, chunks, i = r.data, [], 8
        while i < len(png):  # no text chunks in the image itself
            n = int.from_bytes(png[i:i + 4], "big")
            chunks.append(png[i + 4:i + 8])
            i += 12 + n
        assert set(chunks) <= {b"IHDR", b"IDAT", b"IEND", b"PLTE"}, chunks
        assert zlib.crc32(png) is not None


def test_requests_for_unknown_hosts_are_refused_before_anything_is_stored(study, tmp_path):
    app = _app(study, tmp_path, public_hosts=["study.example.edu"])
    client = app.test_client()
    for host in ("evil.example", "evil.example:8000", "127.0.0.2"):
        r = client.post("/api/participants", json={"consent": True}, headers={"Host": host})
        assert r.status_code == 421 and r.get_json()["error"] == "misdirected_request"
        assert client.get("/", headers={"Host": host}).status_code == 421
    assert _count(app, "participants") == 0
    for host in ("localhost", "127.0.0.1:8000", "[::1]:8000", "study.example.edu",
                 "STUDY.example.edu:443"):
        assert client.get("/", headers={"Host": host}).status_code == 200, host
    _register(client)
    assert _count(app, "participants") == 1


def test_simulated_databases_say_so_in_every_export_row(study, tmp_path):
    app = _app(study, tmp_path, simulated=True)
    client = app.test_client()
    _finish(client, _register(client))
    assert {r["mode"] for r in _export(app)} == {"simulated"}


def test_the_page_speaks_the_configured_language(study, tmp_path):
    app = _app(study, tmp_path, language="de", texts={"question": "Welche Ziffer ist das?"},
               practice={"trials": 2})
    page = app.test_client().get("/").get_data(as_text=True)
    assert '<html lang="de">' in page
    for text in ("Ich stimme zu, weiter", "Welche Ziffer ist das?", "Weiß nicht",
                 "Zuerst kommen 2 Übungsbilder", "Ethikvotum", "the approval"):
        assert text in page, text
    texts = json.loads(page.split('id="texts">', 1)[1].split("</script>", 1)[0])
    assert texts["progress"] == "Bild {n} von {total}"
    for english in ("I agree", "What is this?", "Can’t tell", "Instructions"):
        assert english not in page, english


def test_configuration_errors_name_the_key_and_the_value():
    cases = {
        "unknown keys ['consnt']": {"consnt": {}},
        "platform.name must be one of": {"platform": {"name": "prolifc"}},
        "Prolific needs platform.completion_code": {"platform": {"name": "prolific"}},
        "completion_url: expected an http(s) URL, received 'javascript:alert(1)'":
            {"platform": {"name": "pid", "completion_url": "javascript:alert(1)"}},
        "practice.trials must be in [0, 20], received 50": {"practice": {"trials": 50}},
        "quality.min_attention must be in [0, 1], received 2": {"quality": {"min_attention": 2}},
        "text 'progress' must use the placeholders ['n', 'total'], received ['count']":
            {"texts": {"progress": "Bild {count}"}},
        "language 'fr' is not built in": {"language": "fr"},
        "kiosk mode is for a lab": {"mode": "kiosk", "platform": PROLIFIC},
        "public_hosts holds 'https://x.org'": {"public_hosts": ["https://x.org"]},
    }
    for message, raw in cases.items():
        with pytest.raises(config.ConfigError) as info:
            config.parse(raw, source="cfg.json")
        assert message in str(info.value) and "cfg.json" in str(info.value), str(info.value)
    with pytest.raises(config.ConfigError, match=r"fill in consent \['contact'\]"):
        config.parse({"consent": {**CONSENT, "contact": "<e-mail>"}}).check_ready()
    config.parse({"consent": CONSENT, "platform": PROLIFIC}).check_ready()
    assert config.parse(config.TEMPLATE).missing_consent() == list(config.CONSENT_FIELDS)


def test_kiosk_mode_is_passed_to_the_page(study, tmp_path):
    page = _app(study, tmp_path, mode="kiosk").test_client().get("/").get_data(as_text=True)
    assert 'data-mode="kiosk"' in page
    assert storage.EXPORT_FIELDS[:4] == ("participant_id", "participant_index", "slot", "mode")


def test_the_readme_example_configuration_is_valid_and_complete():
    import pathlib

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("A filled-in example for Prolific:", 1)[1]
    raw = json.loads(block.split("```json", 1)[1].split("```", 1)[0])
    cfg = config.parse(raw, source="README")
    cfg.check_ready()
    assert cfg.platform.name == "prolific" and cfg.practice_trials == 3
