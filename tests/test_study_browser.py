"""A real browser (headless Chromium via Selenium) completes whole sessions on the study page.

Skipped only when Chromium, chromedriver or selenium are not installed (``.ci/run`` installs
them: ``apt-get install chromium chromium-driver``, ``pip install -e .[study]``).
"""

import importlib
import pathlib
import sqlite3

import pytest

from study_support import browser

_REASON = browser.unavailable()
if _REASON:
    pytest.skip(f"no browser: {_REASON}", allow_module_level=True)
pytest.importorskip("flask", reason="the study server needs the `study` extra (flask)")

from gradreg_study import design, server, simulation  # noqa: E402

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
