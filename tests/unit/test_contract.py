"""gauntlet.contract: the outputs line a step prints and every runtime reads, the exit codes, and the
outputs record of each step."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from testkit import run_cli

from gauntlet import contract


def test_the_exit_codes_are_the_documented_numbers() -> None:
    """Airflow task settings, Docker's and Kubernetes' skip codes and the docs name these numbers."""
    assert (contract.EXIT_OK, contract.EXIT_FAILED, contract.EXIT_BAD_INPUT, contract.EXIT_NOTHING_TO_DO) == (
        0,
        1,
        2,
        99,
    )
    assert contract.OUTPUTS_MARKER == "GAUNTLET_OUTPUTS "


def test_outputs_line_round_trip() -> None:
    outputs: dict[str, Any] = {"dataset_uri": "s3://b/datasets/d/v", "rows": {"train": 3}, "cache_hit": False}
    stream = io.StringIO()
    contract.write_outputs(outputs, stream)
    text = stream.getvalue()
    assert text.startswith("GAUNTLET_OUTPUTS ") and text.endswith("\n") and text.count("\n") == 1
    assert contract.parse_outputs(text) == outputs
    assert contract.parse_outputs(text.splitlines()) == outputs


def test_values_json_cannot_hold_are_written_as_text() -> None:
    line = contract.outputs_line({"day": dt.date(2026, 11, 1)})
    assert contract.parse_outputs([line]) == {"day": "2026-11-01"}


def test_the_last_outputs_line_wins_among_log_lines() -> None:
    lines = [
        "2026-11-01 INFO starting",
        contract.outputs_line({"attempt": 1}),
        "GAUNTLET_OUTPUTS_NOT {}",  # the marker includes its space
        contract.outputs_line({"attempt": 2}),
        "done",
    ]
    assert contract.parse_outputs(lines) == {"attempt": 2}


def test_no_outputs_line_is_none_and_a_malformed_one_is_an_error() -> None:
    assert contract.parse_outputs("error: the input is bad\n") is None
    assert contract.parse_outputs([]) is None
    with pytest.raises(ValueError, match="not a JSON object"):
        contract.parse_outputs(["GAUNTLET_OUTPUTS [1, 2]"])


def test_last_message_finds_the_error_or_skip_line() -> None:
    lines = ["error: first", "more", "error: second", "skip: nothing"]
    assert contract.last_message(lines, contract.ERROR_PREFIX) == "error: second"
    assert contract.last_message(lines, contract.SKIP_PREFIX) == "skip: nothing"
    assert contract.last_message(["ok"], contract.ERROR_PREFIX) is None


def _keys(record: Any) -> tuple[set[str], set[str]]:
    return set(record.__required_keys__), set(record.__optional_keys__)


def test_each_step_has_an_outputs_record() -> None:
    assert set(contract.STEP_OUTPUTS) == {"validate", "preprocess", "train", "evaluate", "register"}
    for record in contract.STEP_OUTPUTS.values():
        required, optional = _keys(record)
        assert required and "step_seconds" in optional


def test_the_cli_prints_what_the_validate_and_preprocess_records_name(seeded_store: str) -> None:
    """The records are the steps' real outputs: run two steps through the CLI, compare the keys."""
    _, validated = run_cli(
        seeded_store, "--run-id", "contract", "validate", "--start", "2026-11-01", "--end", "2026-11-08"
    )
    _, built = run_cli(seeded_store, "preprocess", "--validation", validated["result_uri"])
    for outputs, record in ((validated, contract.ValidateOutputs), (built, contract.PreprocessOutputs)):
        required, optional = _keys(record)
        assert required <= set(outputs) <= required | optional, (record.__name__, sorted(outputs))
