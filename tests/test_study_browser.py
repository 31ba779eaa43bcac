"""A real browser (headless Chromium via Selenium) completes whole sessions on the study page.

Skipped only when Chromium, chromedriver or selenium are not installed (``.ci/run`` installs
them: ``apt-get install chromium chromium-driver``, ``pip install -e .[study]``).
"""

import contextlib
import http.server
import pathlib
import sqlite3
import threading

import pytest

from study_support import browser

_REASON = browser.unavailable()
if _REASON:
    pytest.skip(f"no browser: {_REASON}", allow_module_level=True)
pytest.importorskip("flask", reason="the study server needs the `study` extra (flask)")

from gradreg_study import config, design, server, simulation  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
PROTOCOL = design.Protocol(trials=10, attention_share=0.1)  # 11 trials


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return simulation.toy_study(tmp_path_factory.mktemp("study") / "toy", n_items=20)


def _choose(n):
    return (n * 7) % 11 - 1  # every class and "can't tell" (-1)


def _answers_in_db(db, pid):
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT s.public_id, r.choice FROM responses r JOIN stimuli s USING (stimulus_id) "
            "WHERE r.participant_id = ? ORDER BY r.position", (pid,)).fetchall()


def _participant(driver):
    return driver.execute_script(
        "return localStorage.getItem(document.body.dataset.storageKey)")


def test_sessions_by_clicking_and_by_keyboard_are_stored_exactly(study, tmp_path):
    from selenium.webdriver.common.by import By

    db = tmp_path / "db.sqlite3"
    app = server.create_app(study.root, db_path=db, protocol=PROTOCOL)
    with server.running(app) as url:
        with browser.chromium() as driver:  # clicking, with a reload in the middle
            browser.start_session(driver, url)
            clicked = browser.answer_trials(driver, choose=_choose, mode="click", limit=4)
            browser.wait_trial(driver, 4)
            assert driver.find_element(By.ID, "progress-text").text == "Image 5 of 11"
            driver.refresh()  # resumes at trial 5, not at the consent page
            assert browser.wait_trial(driver, 4) == server.context(app).store.state(
                _participant(driver)).next_public_id
            clicked += browser.answer_trials(driver, choose=_choose, mode="click", start=4)
            assert driver.find_element(By.ID, "done").is_displayed()
            pid_click = _participant(driver)
            driver.refresh()  # a finished participant sees the closing page again
            browser.wait_screen(driver, "done")
        with browser.chromium() as driver:  # keyboard only, a new participant
            browser.start_session(driver, url)
            keyed = browser.answer_trials(driver, choose=lambda n: _choose(n + 3), mode="keys")
            pid_keys = _participant(driver)
    assert pid_click != pid_keys
    assert len(clicked) == len(keyed) == PROTOCOL.n_total
    assert _answers_in_db(db, pid_click) == clicked
    assert _answers_in_db(db, pid_keys) == keyed
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute("SELECT COUNT(*) FROM responses").fetchone()
        agents = {r[0] for r in conn.execute("SELECT DISTINCT user_agent FROM responses")}
        times = [r[0] for r in conn.execute("SELECT response_ms FROM responses")]
    assert n == 2 * PROTOCOL.n_total
    assert len(agents) == 1 and "Chrome" in agents.pop()
    assert all(0 <= t < 60_000 for t in times)


def test_screenshot_writes_the_trial_page(study, tmp_path):
    png = tmp_path / "trial_page.png"
    app = server.create_app(study.root, db_path=tmp_path / "screenshot.sqlite3", protocol=PROTOCOL)
    with server.running(app) as url:
        browser.screenshot_trial_page(url, png)
    from PIL import Image

    with Image.open(png) as img:
        width, height = img.size
        # the page background is #fafafa; the 280 x 280 px stimulus (random grey levels in
        # the toy study) covers ~78,000 pixels that are not
        not_background = sum(img.convert("L").histogram()[:240])
    assert width >= 800 and height >= 600 and not_background > 60_000


CONSENT = {k: f"The {k.replace('_', ' ')} of this study" for k in config.CONSENT_FIELDS}
PROLIFIC_IDS = {"PROLIFIC_PID": "5f1a2b3c4d5e6f7a8b9c0d1e", "STUDY_ID": "60aabbccddeeff0011223344",
                "SESSION_ID": "s3ss10n0001"}


@contextlib.contextmanager
def _platform_site():
    """A stand-in for the recruitment platform's completion page on another port."""
    visits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server interface
            visits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>submission complete</body></html>")

        def log_message(self, *args):
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}", visits
    finally:
        site.shutdown()


def test_a_prolific_participant_consents_practises_finishes_and_is_redirected(study, tmp_path):
    from selenium.webdriver.common.by import By

    with _platform_site() as (site, visits):
        cfg = config.parse({
            "consent": CONSENT, "practice": {"trials": 2, "feedback": True},
            "platform": {"name": "prolific", "completion_code": "C0DE42",
                         "completion_url": site + "/submissions/complete?cc={code}"}})
        app = server.create_app(study.root, db_path=tmp_path / "db.sqlite3", protocol=PROTOCOL,
                                config=cfg)
        query = "&".join(f"{k}={v}" for k, v in PROLIFIC_IDS.items())
        with server.running(app) as url, browser.chromium() as driver:
            driver.get(f"{url}/?{query}")
            browser.wait_screen(driver, "consent")
            text = driver.find_element(By.ID, "consent").text
            assert all(v in text for v in CONSENT.values())
            browser.screenshot(driver, tmp_path / "consent.png")
            driver.find_element(By.ID, "consent-yes").click()
            browser.wait_screen(driver, "instructions")
            assert "2 practice images" in driver.find_element(By.ID, "instructions").text
            driver.find_element(By.ID, "start").click()
            practice = browser.answer_trials(driver, choose=_choose, limit=2)
            assert browser.wait_text(driver, "feedback").startswith(("Correct", "It shows"))
            browser.wait_screen(driver, "practice-done")
            driver.find_element(By.ID, "continue").click()
            browser.wait_trial(driver, 2)
            assert driver.find_element(By.ID, "progress-text").text == "Image 1 of 11"
            assert driver.switch_to.active_element.get_attribute("data-choice") == "0"  # focus
            trials = browser.answer_trials(driver, choose=_choose, start=2, until_done=False)
            browser.wait_url(driver, site + "/submissions/complete?cc=C0DE42")
        assert [v for v in visits if v != "/favicon.ico"] == ["/submissions/complete?cc=C0DE42"]
    rows = server.context(app).store.rows()
    assert [(r["stimulus_id"].startswith("practice:"), r["choice"]) for r in rows] == \
        [(True, c) for _, c in practice] + [(False, c) for _, c in trials]
    assert len(trials) == PROTOCOL.n_total
    assert {(r["platform"], r["platform_pid"], r["platform_study_id"], r["platform_session_id"],
             r["completed"]) for r in rows} == {("prolific", *PROLIFIC_IDS.values(), 1)}
    assert all(r["viewport_w"] and r["screen_w"] and r["server_rt_ms"] is not None for r in rows)


def test_an_mturk_preview_shows_the_task_and_stores_nothing(study, tmp_path):
    from selenium.webdriver.common.by import By

    cfg = config.parse({"consent": CONSENT, "platform": {"name": "mturk"}})
    app = server.create_app(study.root, db_path=tmp_path / "db.sqlite3", protocol=PROTOCOL,
                            config=cfg)
    with server.running(app) as url, browser.chromium() as driver:
        driver.get(f"{url}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=3HIT")
        browser.wait_screen(driver, "consent")
        assert driver.find_element(By.ID, "preview").is_displayed()
        button = driver.find_element(By.ID, "consent-yes")
        assert not button.is_enabled()
        driver.execute_script("arguments[0].disabled = false; arguments[0].click()", button)
        browser.wait_screen(driver, "consent")
    assert server.context(app).store.participants() == []


def test_a_kiosk_starts_afresh_for_the_next_person(study, tmp_path):
    from selenium.webdriver.common.by import By

    cfg = config.parse({"consent": CONSENT, "mode": "kiosk"})
    app = server.create_app(study.root, db_path=tmp_path / "db.sqlite3", protocol=PROTOCOL,
                            config=cfg)
    with server.running(app) as url, browser.chromium() as driver:
        browser.start_session(driver, url)
        browser.answer_trials(driver, choose=_choose)
        assert _participant(driver) is None  # the browser forgot the participant
        driver.find_element(By.ID, "next-participant").click()
        browser.wait_screen(driver, "consent")
        browser.start_session(driver, url)
        browser.answer_trials(driver, choose=_choose, limit=1)
    people = server.context(app).store.participants()
    assert len(people) == 2 and [p["completed"] for p in people] == [1, 0]
