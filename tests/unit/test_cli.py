"""gauntlet.cli: `python -m gauntlet <command>`, its exit codes, outputs line and run summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gauntlet import cli, contract, layout, storage


@pytest.fixture(autouse=True)
def no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() sets up the root logger once per process; in pytest's process that would replace the
    capture handlers (tests/unit/test_logs.py covers the setup itself)."""
    monkeypatch.setattr(cli, "setup_logging", lambda: None)


def test_a_step_without_a_run_id_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--store", "s3://nowhere", "validate", "--start", "2026-11-01", "--end", "2026-11-02"])
    assert code == contract.EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == f"{contract.ERROR_PREFIX} validate needs --run-id"


def test_a_bad_input_error_exits_2_with_one_message_and_no_outputs_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--store", "s3://nowhere", "registry", "promote"]) == contract.EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert contract.parse_outputs(out) is None
    assert err.strip() == f"{contract.ERROR_PREFIX} registry promote needs a version number, e.g. `registry promote 3`"


def test_a_command_prints_its_outputs_line_and_writes_the_outputs_file(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outputs.json"
    assert cli.main(["--store", store, "--outputs-file", str(path), "registry", "list"]) == contract.EXIT_OK
    out = capsys.readouterr().out
    assert contract.parse_outputs(out) == {"versions": [], "champion": None} == json.loads(path.read_text())
    assert out.splitlines()[-1].startswith(contract.OUTPUTS_MARKER)  # the last stdout line, for the orchestrator


def test_summary_reads_the_runs_step_outputs(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = "scheduled__2026-11-02T00_00_00_00_00"
    validate = {"verdict": "passed", "rows": 10, "partitions": 2, "new_partitions": 1, "docs_uri": "s3://d"}
    register = {"registered": False, "reason": "gate failed", "step_seconds": 1.5}
    storage.put_json(layout.step_outputs_uri(store, run, "validate"), {**validate, "step_seconds": 2.0})
    storage.put_json(layout.step_outputs_uri(store, run, "register"), register)
    assert cli.latest_run(store) == run
    assert cli.main(["--store", store, "--run-id", "latest", "summary"]) == contract.EXIT_OK
    out = capsys.readouterr().out
    assert f"=== gauntlet run summary: {run} ===" in out
    assert "validate   : passed — 10 rows in 2 partitions (1 new); Data Docs s3://d" in out
    assert "step times : validate 2.0s, register 1.5s (total 3.5s)" in out
    assert "register   : not registered — gate failed" in out
    assert contract.parse_outputs(out) == {"steps": ["validate", "register"]}


def test_summary_of_an_empty_store_is_bad_input_naming_where_it_looked(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--store", store, "--run-id", "latest", "summary"]) == contract.EXIT_BAD_INPUT
    assert f"no runs under {layout.runs_root(store)}" in capsys.readouterr().err


def test_the_store_defaults_to_the_layouts_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layout.STORE_ENV, "s3://from-env")
    assert cli.build_parser().parse_args(["summary"]).store == "s3://from-env"
    assert cli.build_parser().parse_args(["--store", "s3://given", "summary"]).store == "s3://given"
