"""A real browser on the study page: headless Chromium driven by Selenium.

Used by the browser test (a whole session by clicking and by keyboard) and to make the README's
screenshot. Chromium and chromedriver come from the distribution's packages
(``apt-get install chromium chromium-driver``: ``/usr/bin/chromium``, ``/usr/bin/chromedriver``);
``SE_OFFLINE=true`` keeps Selenium from downloading a browser of its own.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
from typing import Callable, Iterator

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync",
         "--disable-dev-shm-usage")  # containers often have a tiny /dev/shm


def unavailable() -> str | None:
    """Why no browser session can run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'gradreg_tf[study]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return (f"{path} is not installed (apt-get install chromium chromium-driver)")
    return None


@contextlib.contextmanager
def chromium(*, width: int = 900, height: int = 1000) -> Iterator:
    """A headless Chromium WebDriver with a fresh profile; quits on exit.

    Raises:
        RuntimeError: when :func:`unavailable` gives a reason.
    """
    reason = unavailable()
    if reason:
        raise RuntimeError(reason)
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition: Callable, timeout: float, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)
    except TimeoutException:
        raise TimeoutError(f"the page did not {what} within {timeout} s (screen "
                           f"{_data(driver, 'screen')!r}).") from None


def _data(driver, key: str) -> str:
    return driver.execute_script("return document.body.dataset[arguments[0]] || ''", key)


def wait_screen(driver, screen: str, *, timeout: float = 30) -> None:
    """Waits until the page shows ``screen`` (consent, instructions, trial, done, error)."""
    _wait(driver, lambda d: _data(d, "screen") == screen, timeout, f"show {screen!r}")


def wait_trial(driver, answered: int, *, timeout: float = 30) -> str:
    """Waits until trial ``answered + 1`` is shown and answerable; returns its stimulus id."""
    _wait(driver, lambda d: (_data(d, "screen") == "done" or (
        _data(d, "screen") == "trial" and _data(d, "ready") == "1"
        and _data(d, "answered") == str(answered))), timeout, f"show trial {answered + 1}")
    return _data(driver, "stimulus")


def start_session(driver, base_url: str) -> None:
    """Opens the page, consents and starts (a new participant in a fresh profile)."""
    from selenium.webdriver.common.by import By

    driver.get(base_url + "/")
    wait_screen(driver, "consent")
    driver.find_element(By.ID, "consent-yes").click()
    wait_screen(driver, "instructions")
    driver.find_element(By.ID, "start").click()


def answer_trials(driver, *, choose: Callable[[int], int], mode: str = "click",
                  limit: int | None = None, start: int = 0,
                  until_done: bool = True) -> list[tuple[str, int]]:
    """Answers the shown trials by clicking buttons or pressing their keys.

    Args:
        driver: a WebDriver on the trial screen.
        choose: ``choose(trial_number) -> choice`` (class index or -1 for can't tell).
        mode: ``"click"`` or ``"keys"``.
        limit: stop after this many answers (default: until the closing page).
        start: trials already answered.
        until_done: without ``limit``, wait for the closing page after the last answer
            (False: the page may already have moved on, e.g. to a completion redirect).

    Returns:
        ``[(public stimulus id, choice)]`` in answer order.

    Raises:
        ValueError: an unknown ``mode`` or a choice without a button or key.
    """
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    if mode not in ("click", "keys"):
        raise ValueError(f"mode must be 'click' or 'keys', received {mode!r}.")
    done = []
    n = start
    while limit is None or len(done) < limit:
        stimulus = wait_trial(driver, n)
        if _data(driver, "screen") == "done":
            break
        choice = choose(n)
        buttons = driver.find_elements(By.CSS_SELECTOR, f'#choices button[data-choice="{choice}"]')
        if len(buttons) != 1:
            raise ValueError(f"no button for choice {choice!r}.")
        if mode == "click":
            buttons[0].click()
        else:
            key = buttons[0].get_attribute("data-key")
            if not key:
                raise ValueError(f"choice {choice!r} has no keyboard shortcut.")
            ActionChains(driver).send_keys(key).perform()
        done.append((stimulus, choice))
        n += 1
    if limit is None and until_done:
        wait_screen(driver, "done")
    return done


def wait_text(driver, element_id: str, *, timeout: float = 30) -> str:
    """Waits until the element ``element_id`` shows some text; returns it."""
    from selenium.webdriver.common.by import By

    return _wait(driver, lambda d: d.find_element(By.ID, element_id).text, timeout,
                 f"show text in #{element_id}")


def wait_url(driver, url: str, *, timeout: float = 30) -> None:
    """Waits until the browser has navigated to ``url``."""
    _wait(driver, lambda d: d.current_url == url, timeout, f"navigate to {url}")


def screenshot(driver, path) -> pathlib.Path:
    """Saves a PNG of the current page (a temporary name, then renamed)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    driver.save_screenshot(str(tmp))
    shutil.move(tmp, path)
    return path


def screenshot_trial_page(base_url: str, path, *, answered: int = 2, choose=lambda n: n % 10,
                          width: int = 900, height: int = 760) -> pathlib.Path:
    """Saves a PNG of the trial page after ``answered`` trials (a new participant).

    Returns:
        The written path (written to a temporary name, then renamed).
    """
    with chromium(width=width, height=height) as driver:
        start_session(driver, base_url)
        answer_trials(driver, choose=choose, limit=answered)
        wait_trial(driver, answered)
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        # move the pointer off the buttons (no hover highlight in the picture)
        ActionChains(driver).move_to_element(driver.find_element(By.ID, "progress-text")).perform()
        return screenshot(driver, path)


def screenshot_consent_page(base_url: str, path, *, query: str = "", width: int = 900,
                            height: int = 1100) -> pathlib.Path:
    """Saves a PNG of the consent page as a new participant sees it (``query``: e.g. the
    recruitment platform's URL parameters)."""
    with chromium(width=width, height=height) as driver:
        driver.get(base_url + "/" + (f"?{query}" if query else ""))
        wait_screen(driver, "consent")
        return screenshot(driver, path)
