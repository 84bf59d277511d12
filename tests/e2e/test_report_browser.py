"""The demo's evaluation report as a person reads it: headless Chromium opens report.html beside its
committed files and every diagnosis section renders, with its images decoded."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import evaluate, shared_dataset, train
from testkit import ROOT

from gauntlet import storage

pytestmark = pytest.mark.slow
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1400,1000"]
# Section headings the report has: the bias / variance diagnosis and the test set's resolution, then
# the error analysis, the newest day's domain-shift check, the drift validate measured in the data, the
# training's compute estimate beside what it took, and the kept predictions.
HEADINGS = (
    "Bias / variance",
    "Is the test set big enough?",
    "Error analysis",
    "Domain shift (newest day vs the test set)",
    "Drift of new data (measured by validate)",
    "Compute",
    "Predictions",
)


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(chromium).exists() and Path(driver_path).exists()):
        pytest.skip("headless Chromium is not installed: run `make browser`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gauntlet-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def download_report(report_uri: str, folder: Path) -> Path:
    """Every committed file of the evaluation (the page and what it links) into `folder`."""
    prefix = report_uri.rsplit("/", 1)[0]
    for name in storage.read_manifest(prefix)["files"]:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(storage.read_committed_file(prefix, name))
    return folder / "report.html"


def test_the_demo_report_renders_every_diagnosis_section(s3_endpoint: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    store, dataset = shared_dataset(s3_endpoint)
    options = ["--set", "model.name=browser-digits"]  # the demo's model and protocol, its own registry
    _, trained = train(store, dataset, *options)
    _, evaluated = evaluate(store, trained["experiment_uri"], *options)
    report = storage.get_json(evaluated["report_uri"])

    browser.get(download_report(evaluated["report_uri"], tmp_path).as_uri())
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
    for heading in HEADINGS:
        assert any(h.startswith(heading) for h in headings), f"no {heading!r} section in {headings}"

    section = browser.find_element(By.ID, "bias-variance")
    assert section.is_displayed() and report["diagnosis"]["sentence"] in section.text
    assert section.text.count("Diagnosis: ") == 1 and "variance_gap" in section.text
    page = browser.find_element(By.TAG_NAME, "body").text
    assert report["drift"]["line"] in page and "actual / estimate" in page
    size = browser.find_element(By.ID, "test-set-size")
    assert report["test_set_power"]["sentence"] in size.text and f"With {report['test_rows']} test rows" in size.text
    # Every image on the page decoded: a broken link or a corrupt PNG has no natural width.
    images = browser.find_elements(By.TAG_NAME, "img")
    widths = {
        img.get_attribute("src").rsplit("/", 1)[-1]: browser.execute_script("return arguments[0].naturalWidth", img)
        for img in images
    }
    assert widths["bias_variance.png"] == 600 and all(widths.values()), widths

    artifacts = ROOT / "artifacts"  # git-ignored; kept by CI, and a person can look at the page
    artifacts.mkdir(exist_ok=True)
    browser.save_screenshot(str(artifacts / "report-diagnosis.png"))
    print(f"\n{report['diagnosis']['sentence']}\n{report['test_set_power']['sentence']}\n{report['gate']['reason']}")
