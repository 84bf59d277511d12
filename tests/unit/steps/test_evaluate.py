"""steps.evaluate: what keys an evaluation and why an earlier one is not reused."""

from __future__ import annotations

import numpy as np

from gauntlet import storage
from gauntlet.steps import evaluate


def test_the_evaluation_key_names_its_code_and_numeric_libraries() -> None:
    parts = evaluate.evaluation_key_parts()
    assert set(parts) == {"evaluate_code", "scikit-learn", "numpy"} and parts["numpy"] == np.__version__
    assert parts == evaluate.evaluation_key_parts()  # stable within one installation


def test_no_earlier_evaluation_means_no_explanation(store: str) -> None:
    assert evaluate.explain_evaluation_miss(f"{store}/evaluations/p/k/against", evaluate.evaluation_key_parts()) is None


def test_a_miss_names_what_changed_since_the_nearest_earlier_evaluation(store: str) -> None:
    against = f"{store}/evaluations/p/k/against"
    parts = evaluate.evaluation_key_parts()
    storage.put_json(f"{against}/old/report.json", {"evaluation_key_parts": {**parts, "numpy": "1.0.0"}})
    storage.put_json(
        f"{against}/older/report.json", {"evaluation_key_parts": {**parts, "numpy": "0.9", "scikit-learn": "0.1"}}
    )
    assert (
        evaluate.explain_evaluation_miss(against, parts)
        == f"an earlier evaluation differs in: numpy 1.0.0 -> {parts['numpy']}"
    )
    storage.put_json(f"{store}/evaluations/p/k2/against/x/report.json", {"outputs": {}})
    assert "predates evaluation keys" in (
        evaluate.explain_evaluation_miss(f"{store}/evaluations/p/k2/against", parts) or ""
    )
