"""gauntlet.cli: `python -m gauntlet <command>`, its exit codes, outputs line and run summary."""

from __future__ import annotations

import datetime as dt
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


def _land_own_table(store: str) -> str:
    """Two days of a table as real tables come: text ids and labels, a category, a numeric column with nulls."""
    import numpy as np
    import pandas as pd

    from gauntlet import demo

    for day in range(2):
        n, rng = 40, np.random.default_rng(day)
        frame = pd.DataFrame(
            {
                "patient": [f"P{day}{i:04d}" for i in range(n)],
                "outcome": rng.choice(["healthy", "sick"], n),
                "region": rng.choice(["east", "west"], n),
                "blood_pressure": np.where(np.arange(n) % 6 == 0, np.nan, rng.normal(120, 10, n).round()),
            }
        )
        demo.write_partition(layout.raw_partition_uri(store, "raw/clinic", dt.date(2026, 11, 1 + day)), frame)
    return layout.raw_root(store, "raw/clinic") + "/"


def test_init_prints_the_profile_and_its_decisions_and_writes_three_files(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GAUNTLET_HOME", str(tmp_path))
    source = _land_own_table(store)
    argv = ["--store", store, "init", "clinic", "--from", source, "--id", "patient", "--label", "outcome"]
    assert cli.main(argv) == contract.EXIT_OK
    out = capsys.readouterr().out
    assert f"read 80 rows from 2 of 2 files under {source}" in out
    assert "  blood_pressure: numeric, double, " in out and "label 'outcome': 'healthy'" in out
    assert "  task: classification (2 distinct text label values" in out
    assert "  features: 2 columns, 1 of them categorical (region)" in out
    assert "then trigger the nightly DAG with config=include/configs/clinic.yaml" in out
    files = contract.parse_outputs(out)["files"]  # type: ignore[index]
    assert files == {
        "config": "include/configs/clinic.yaml",
        "suite": "include/expectations/clinic.json",
        "protocol": "include/protocols/clinic-v1.yaml",
    }
    assert all((tmp_path / path).is_file() for path in files.values())
    # A second init would replace the reviewed files: refused (exit 2) unless forced.
    assert cli.main(argv) == contract.EXIT_BAD_INPUT
    assert "include/configs/clinic.yaml, include/expectations/clinic.json" in capsys.readouterr().err
    assert cli.main([*argv, "--force"]) == contract.EXIT_OK


def test_init_with_an_unknown_label_exits_2_naming_the_columns_and_writes_nothing(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GAUNTLET_HOME", str(tmp_path))
    source = _land_own_table(store)
    argv = ["--store", store, "init", "clinic", "--from", source, "--id", "patient", "--label", "label"]
    assert cli.main(argv) == contract.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "--label column 'label' is not in the data; its columns are: patient, outcome, region, blood_pressure" in err
    assert not (tmp_path / "include").exists()


def test_seed_with_a_dataset_lands_it_under_raw_name(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--store", store, "seed", "--dataset", "diabetes", "--days", "2"]) == contract.EXIT_OK
    landed = contract.parse_outputs(capsys.readouterr().out)["partitions"]  # type: ignore[index]
    assert [item["uri"] for item in landed] == [
        layout.raw_partition_uri(store, "raw/diabetes", dt.date(2026, 11, 1 + i)) for i in range(2)
    ]
    assert sum(item["rows"] for item in landed) == 442


def test_summary_names_the_curve_metric_of_a_regression(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = "scheduled__2026-11-03T00_00_00_00_00"
    train = {"key": "k" * 12, "cache_hit": False, "dev_error": 6.25, "curve_metric": "rmse", "wall_seconds": 3.0}
    storage.put_json(layout.step_outputs_uri(store, run, "train"), train)
    assert cli.main(["--store", store, "--run-id", run, "summary"]) == contract.EXIT_OK
    assert f"train      : experiment {'k' * 12} — dev rmse 6.2500, 3.0s" in capsys.readouterr().out
