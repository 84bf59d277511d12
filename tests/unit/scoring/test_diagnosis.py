"""gauntlet.scoring.diagnosis: training, dev and test error side by side, the finding and the chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest
import yaml
from testkit import ROOT

from gauntlet.errors import ProtocolError
from gauntlet.hashing import content_hash
from gauntlet.protocol import Protocol, load_protocol
from gauntlet.scoring import diagnosis
from gauntlet.scoring.report import evaluation_html, evaluation_markdown

DIGITS = ROOT / "include" / "protocols" / "digits-v1.yaml"
ROWS = 200


@pytest.fixture(scope="module")
def digits() -> Protocol:
    return load_protocol(DIGITS)


def with_diagnosis(**settings: Any) -> Protocol:
    raw = yaml.safe_load(DIGITS.read_text())
    return Protocol.from_dict({**raw, "diagnosis": settings})


def record(train: float, dev: float, metric: str = "error_rate") -> dict[str, Any]:
    return {"key": "k" * 16, "curve_metric": metric, "final": {"train_error": train, "dev_error": dev}}


def wrong_on(fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities over 10 classes whose error rate is exactly `fraction` of ROWS rows."""
    labels = np.arange(ROWS) % 10
    predicted = labels.copy()
    wrong = round(fraction * ROWS)
    predicted[:wrong] = (labels[:wrong] + 1) % 10
    proba = np.full((ROWS, 10), 0.01)
    proba[np.arange(ROWS), predicted] = 0.91
    return labels, proba


def diagnosed(protocol: Protocol, train: float, dev: float, test: float, baseline: float = 0.1) -> dict[str, Any]:
    labels, candidate = wrong_on(test)
    _, base = wrong_on(baseline)
    return diagnosis.diagnose(protocol, record(train, dev), labels, candidate, base)


@pytest.mark.parametrize(
    ("train", "dev", "test", "finding", "advice"),
    [
        (0.08, 0.09, 0.09, "high avoidable bias", "bigger model or train longer"),
        (0.01, 0.06, 0.06, "high variance", "more training data or regularise"),
        (0.01, 0.02, 0.08, "dev-set overfitting", "refresh the dev set"),
        (0.01, 0.02, 0.03, "healthy", None),
    ],
)
def test_each_gap_names_its_finding_and_what_to_do(
    digits: Protocol, train: float, dev: float, test: float, finding: str, advice: str | None
) -> None:
    result = diagnosed(digits, train, dev, test)
    assert result["findings"] == [finding]
    assert result["errors"] == {"train": train, "dev": dev, "test": pytest.approx(test), "baseline_test": 0.1}
    assert result["sentence"].startswith(f"Diagnosis: {finding}")
    if advice:
        assert advice in result["sentence"]


def test_the_sentence_quotes_the_numbers_and_thresholds(digits: Protocol) -> None:
    sentence = diagnosed(digits, 0.01, 0.06, 0.065)["sentence"]
    assert sentence == (
        "Diagnosis: high variance (get more training data or regularise). "
        "Training error_rate 0.0100 is 0.0100 above the reference level 0.0000 (within bias_gap 0.0200); "
        "dev error_rate 0.0600 is 0.0500 above training 0.0100 (over variance_gap 0.0200); "
        "test error_rate 0.0650 is 0.0050 above dev 0.0600 (within dev_test_gap 0.0200); "
        "the baseline's test error_rate is 0.1000 (thresholds from defaults)."
    )


def test_the_protocol_sets_the_reference_and_the_gaps() -> None:
    protocol = with_diagnosis(reference_error=0.05, bias_gap=0.01, variance_gap=0.1, dev_test_gap=0.1)
    # 0.08 training error: within the default 0.02 of 0 it is not; against a reference of 0.05 it is 0.03 over 0.01.
    result = diagnosed(protocol, 0.08, 0.15, 0.16)
    assert result["findings"] == ["high avoidable bias"]
    assert "above the reference level 0.0500 (over bias_gap 0.0100)" in result["sentence"]
    assert "(within variance_gap 0.1000)" in result["sentence"]
    assert "thresholds from the protocol's diagnosis section" in result["sentence"]
    both = diagnosed(with_diagnosis(variance_gap=0.001), 0.08, 0.09, 0.09)
    assert both["findings"] == ["high avoidable bias", "high variance"]


def test_a_regression_run_is_judged_in_rmse_with_gaps_scaled_by_the_baseline(digits: Protocol) -> None:
    raw = yaml.safe_load((ROOT / "include" / "protocols" / "digits-v1.yaml").read_text())
    raw.update(task="regression", metrics={"primary": "rmse", "report": ["rmse"]}, baseline={"kind": "ridge"})
    protocol = Protocol.from_dict(raw)
    y = np.linspace(0.0, 100.0, 50)
    candidate, baseline = (y + 12.0).reshape(-1, 1), (y + 40.0).reshape(-1, 1)
    result = diagnosis.diagnose(protocol, record(5.0, 6.0, "rmse"), y, candidate, baseline)
    assert result["metric"] == "rmse" and result["errors"]["test"] == pytest.approx(12.0)
    assert result["thresholds"]["variance_gap"] == pytest.approx(4.0)  # 0.1 x the baseline's test rmse of 40
    assert result["findings"] == ["dev-set overfitting"]  # test 12 is 6 above dev 6, over 4
    assert "no reference level is set (diagnosis.reference_error)" in result["sentence"]
    assert "default gap 0.1 x the baseline's test rmse" in result["sentence"]


def test_a_record_without_curves_is_diagnosed_on_the_test_error_alone(digits: Protocol) -> None:
    labels, proba = wrong_on(0.05)
    result = diagnosis.diagnose(digits, {"key": "old", "curve": []}, labels, proba, proba)
    assert result["errors"]["train"] is None and result["findings"] == ["healthy"]
    assert "high variance not judged: the run's error_rate curve is not recorded" in result["sentence"]


def test_the_protocol_refuses_a_bad_diagnosis_section() -> None:
    with pytest.raises(ProtocolError, match=r"unknown field\(s\): diagnosis.bias_gapp"):
        with_diagnosis(bias_gapp=0.1)
    with pytest.raises(ProtocolError, match=r"diagnosis.variance_gap must be >= 0"):
        with_diagnosis(variance_gap=-0.1)
    with pytest.raises(ProtocolError, match=r"diagnosis.reference_error must be a number"):
        with_diagnosis(reference_error="human")
    raw = yaml.safe_load(DIGITS.read_text())
    with pytest.raises(ProtocolError, match="diagnosis must be a mapping"):
        Protocol.from_dict({**raw, "diagnosis": [0.02]})


def test_a_protocol_without_the_section_keeps_its_id(digits: Protocol) -> None:
    raw = yaml.safe_load(DIGITS.read_text())
    assert "diagnosis" not in digits.raw and digits.diagnosis == {}
    assert digits.id == content_hash(raw)  # the id hashes only what the file says
    assert with_diagnosis(bias_gap=0.02).id != digits.id  # setting thresholds is a new protocol version


def test_the_chart_is_a_real_bar_chart(tmp_path: Path, digits: Protocol) -> None:
    result = diagnosed(digits, 0.01, 0.06, 0.065)
    path = diagnosis.write_chart(tmp_path, result, "abcdef1234567890")
    assert path.name == "bias_variance.png" and path.read_bytes().startswith(b"\x89PNG")
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (500, 600)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 20


def test_the_report_shows_the_section_with_its_chart(digits: Protocol) -> None:
    result = diagnosed(digits, 0.01, 0.06, 0.065)
    report = {
        "experiment_key": "k" * 16,
        "protocol_id": digits.id,
        "protocol_name": digits.name,
        "dataset_version": "v1",
        "test_rows": ROWS,
        "champion_version": None,
        "champion_retrained": None,
        "anchor": {"version": None},
        "off_protocol": None,
        "gate": {"passed": True, "reason": "Passed: fine."},
        "diagnosis": result,
        "tables": {},
        "plots": [],
    }
    page = evaluation_html(report)
    assert '<section id="bias-variance"><h2>Bias / variance</h2>' in page
    assert '<img src="bias_variance.png"' in page and "Diagnosis: high variance" in page
    markdown = evaluation_markdown(report)
    assert "## Bias / variance" in markdown and "| dev error_rate | 0.0600 |" in markdown
