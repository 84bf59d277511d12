"""The registry view as a person reaches it: headless Chromium logs in to the local stack, clicks the
view's entry in the Airflow navigation and reads the registry the register step wrote, inside the
UI's iframe; screenshots go to artifacts/ui-registry.png and artifacts/ui-registry-experiments.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import test_stack_ui
from registry_seed import MODEL, PROTOCOL, seed_registry
from stack_support import ROOT, Stack

from gauntlet.airflow.registry_view import URL_PREFIX, VIEW_NAME

pytestmark = [pytest.mark.slow, pytest.mark.stack]
ARTIFACTS = ROOT / "artifacts"
browser = test_stack_ui.browser  # the same headless Chromium as the grid test


@pytest.fixture
def seeded(local_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The registry seeded through the stack's own S3 server (this process's storage client, repointed)."""
    from gauntlet import storage

    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, local_stack.env[name])
    storage.client.cache_clear()
    try:
        yield seed_registry(local_stack.store)
    finally:
        storage.client.cache_clear()


def _log_in(browser: Any, stack: Stack, wait: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    browser.get(f"{stack.url}/auth/login")
    wait.until(ready.presence_of_element_located((By.NAME, "username"))).send_keys(stack.user)
    browser.find_element(By.NAME, "password").send_keys(stack.password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda driver: "/auth/login" not in driver.current_url)


@pytest.mark.timeout(600)
def test_open_the_registry_from_the_navigation(local_stack: Stack, seeded: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    stack, wait = local_stack, WebDriverWait(browser, 90)
    # Without an Airflow login the page is refused; with the API's token it is served.
    assert requests.get(f"{stack.url}{URL_PREFIX}/", timeout=30).status_code == 401
    assert stack.session.get(f"{stack.url}{URL_PREFIX}/", timeout=60).status_code == 200

    _log_in(browser, stack, wait)
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, f"a[aria-label='{VIEW_NAME}']"))).click()
    wait.until(lambda driver: "/plugin/gauntlet-registry" in driver.current_url)
    frame = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, f"iframe[title='{VIEW_NAME}']")))
    browser.switch_to.frame(frame)
    wait.until(ready.presence_of_element_located((By.XPATH, f"//h2[normalize-space(.)='Model {MODEL}']")))
    text = browser.find_element(By.TAG_NAME, "body").text
    if f"Experiments under protocol {PROTOCOL}" not in text:
        # Other stack tests register models of their own: choose the seeded protocol, as a reader would.
        browser.find_element(By.XPATH, f"//p[starts-with(., 'Protocols:')]/a[.='{PROTOCOL[:12]}']").click()
        wait.until(ready.presence_of_element_located((By.XPATH, f"//h2[contains(., '{PROTOCOL}')]")))
        text = browser.find_element(By.TAG_NAME, "body").text
    assert "Champion: v2" in text and "better than v1" in text and "worse than v2" in text
    assert f"Experiments under protocol {PROTOCOL}" in text and f"{MODEL} v2 (champion)" in text
    curves = browser.find_element(By.CSS_SELECTOR, "img[alt='learning curves']")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", curves) > 300

    browser.switch_to.default_content()
    ARTIFACTS.mkdir(exist_ok=True)
    shots = [ARTIFACTS / "ui-registry.png", ARTIFACTS / "ui-registry-experiments.png"]
    assert browser.save_screenshot(str(shots[0]))
    browser.switch_to.frame(frame)
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.XPATH, "//h2[last()]"))
    browser.switch_to.default_content()
    assert browser.save_screenshot(str(shots[1]))
    assert all(Path(shot).stat().st_size > 40_000 for shot in shots)
