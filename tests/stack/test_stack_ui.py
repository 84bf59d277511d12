"""The UI as a person uses it: headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium) logs in, opens the nightly DAG, triggers it from the typed form and saves a screenshot of
the grid with the run's tasks to artifacts/ui-grid.png (git-ignored; kept by CI as an artifact).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stack_support import ROOT, Stack

pytestmark = [pytest.mark.slow, pytest.mark.stack]
NIGHTLY = "gauntlet_nightly"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1920,1080",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gauntlet-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.timeout(1800)
def test_trigger_from_the_form_and_screenshot_the_grid(local_stack: Stack, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    stack, wait = local_stack, WebDriverWait(browser, 90)
    stack.unpause(NIGHTLY)
    before = {r["dag_run_id"] for r in stack.runs(NIGHTLY)}

    browser.get(f"{stack.url}/auth/login")
    wait.until(ready.presence_of_element_located((By.NAME, "username"))).send_keys(stack.user)
    browser.find_element(By.NAME, "password").send_keys(stack.password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda driver: "/auth/login" not in driver.current_url)

    browser.get(f"{stack.url}/dags/{NIGHTLY}")
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Trigger Dag']"))).click()
    # The params form is grouped by section; the Training section holds epochs and workers.
    section = "//button[normalize-space(.)='Training' or .//*[normalize-space(text())='Training']]"
    wait.until(ready.element_to_be_clickable((By.XPATH, section))).click()
    for name, value in (("element_epochs", "2"), ("element_workers", "1")):
        field = wait.until(ready.element_to_be_clickable((By.NAME, name)))
        field.clear()
        field.send_keys(value)
    browser.find_elements(By.XPATH, "//button[normalize-space(.)='Trigger']")[-1].click()

    def new_run(_: Any) -> dict[str, Any] | None:
        return next(
            (r for r in stack.runs(NIGHTLY) if r["dag_run_id"] not in before and r["run_type"] == "manual"), None
        )

    run = wait.until(new_run)
    assert run["conf"].get("epochs") == 2 and run["conf"].get("workers") == 1, run["conf"]
    finished = stack.wait_for_run(NIGHTLY, run["dag_run_id"], timeout=900)
    assert finished["state"] == "success"

    browser.get(f"{stack.url}/dags/{NIGHTLY}/runs/{run['dag_run_id']}")
    wait.until(ready.presence_of_element_located((By.XPATH, "//*[normalize-space(text())='publish_champion']")))
    wait.until(ready.presence_of_element_located((By.XPATH, "//*[normalize-space(text())='train']")))
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "ui-grid.png"
    assert browser.save_screenshot(str(shot))
    assert Path(shot).stat().st_size > 20_000
