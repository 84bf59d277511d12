"""Single-function checks for the operating pieces: the sweep plan, the form's CLI options, the
"no new data" rule, presigned links and the settings loader's environment expansion."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from testkit import ROOT, run_cli

from gauntlet import storage
from gauntlet.contract import EXIT_NOTHING_TO_DO
from gauntlet.errors import ConfigError
from gauntlet.steps import sweep


def test_sweep_plan_pairs_every_config_with_every_date() -> None:
    grid = [{"name": "cnn", "overrides": {}}, {"name": "mlp", "overrides": {"model.kind": "mlp"}}]
    planned = sweep.plan(grid, ["2026-11-05", "2026-11-03"], "include/configs/digits.yaml")
    assert planned["count"] == 4
    assert [p["label"] for p in planned["pairs"]] == [
        "cnn @ 2026-11-03",
        "cnn @ 2026-11-05",
        "mlp @ 2026-11-03",
        "mlp @ 2026-11-05",
    ]
    # The snapshot of date D is the nightly run of D + 1: partitions dated up to D.
    assert (planned["pairs"][0]["start"], planned["pairs"][0]["end"]) == ("2026-11-03", "2026-11-04")
    assert planned["pairs"][3]["options"] == {
        "config": "include/configs/digits.yaml",
        "overrides": {"model.kind": "mlp"},
    }


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ([{"name": "x", "overrides": {"model.kind": "transformer"}}], "unknown"),
        ([{"name": "x"}, {"name": "x"}], "unique name"),
        ([{"name": "x", "overrides": {"nosuch.key": 1}}], "no section"),
    ],
)
def test_sweep_plan_refuses_bad_grids_before_anything_runs(grid: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sweep.plan(grid, ["2026-11-05"], "include/configs/digits.yaml")


def test_cli_options_lay_free_form_overrides_last() -> None:
    from gauntlet.airflow.params import cli_options

    options = cli_options({"epochs": 3, "overrides": {"training.lr": 0.05, "model.kind": "mlp"}})
    assert options == [
        "--config",
        "include/configs/digits.yaml",
        "--set",
        "training.epochs=3",
        "--set",
        "training.lr=0.05",
        "--set",
        "model.kind=mlp",
    ]


def test_validate_require_new_exits_99_when_the_interval_is_empty(seeded_store: str) -> None:
    process, outputs = run_cli(
        seeded_store,
        "--run-id",
        "night-without-data",
        "validate",
        "--start",
        "2026-11-09",
        "--end",
        "2026-11-10",
        "--require-new",
        check=False,
    )
    assert process.returncode == EXIT_NOTHING_TO_DO, process.stderr
    assert "skip: no new data" in process.stderr and "[2026-11-09, 2026-11-10)" in process.stderr
    assert outputs == {}


def test_presigned_url_opens_in_a_browser_without_credentials(store: str) -> None:
    from gauntlet import storage

    uri = f"{store}/reports/r.html"
    storage.put_bytes(uri, b"<h1>report</h1>")  # stored as a generic binary, as commit_directory does
    response = requests.get(storage.presigned_url(uri, 60), timeout=10)
    assert response.status_code == 200 and response.text == "<h1>report</h1>"
    assert response.headers["Content-Type"].startswith("text/html")


def test_step_links_point_at_the_outputs_each_step_wrote() -> None:
    from gauntlet.airflow.links import DataDocsLink, ExperimentLink, links_for

    assert [link.name for link in links_for("evaluate")] == ["Evaluation report"]
    assert links_for("plan") == []

    ran = SimpleNamespace(
        outputs={"experiment_uri": "s3://b/experiments/k"},
        cli_run_id="gauntlet_nightly__manual__2026-11-23T19:29:03+00:00",
    )
    assert ExperimentLink().target(ran) == "s3://b/experiments/k/RECORD.json"
    # A failed validation has no outputs, but its Data Docs exist under the run's id.
    assert (
        DataDocsLink()
        .target(ran)
        .endswith(  # type: ignore[union-attr]
            "/runs/gauntlet_nightly__manual__2026-11-23T19_29_03_00_00/validation/docs/index.html"
        )
    )


def test_settings_loader_expands_environment_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location(
        "load_airflow_settings", ROOT / "scripts" / "load_airflow_settings.py"
    )
    assert spec and spec.loader
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    monkeypatch.setenv("GAUNTLET_S3_ENDPOINT", "http://127.0.0.1:4242")
    monkeypatch.delenv("GAUNTLET_UNSET", raising=False)
    assert loader.expand({"a": ["${GAUNTLET_S3_ENDPOINT:-x}", "${GAUNTLET_UNSET:-fallback}"], "n": 1}) == {
        "a": ["http://127.0.0.1:4242", "fallback"],
        "n": 1,
    }
    settings = Path(ROOT / "airflow_settings.yaml").read_text()
    assert "conn_id: gauntlet_s3" in settings and "pool_name: training" in settings


def test_links_carry_no_credentials_and_open_only_the_pipelines_store(store: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gauntlet.airflow.links import browser_url, presign_for_user

    monkeypatch.delenv("GAUNTLET_LINK_BASE_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080")
    uri = f"{store}/runs/r/validation/docs/index.html"
    link = browser_url(uri)
    assert link.startswith("http://127.0.0.1:8080/gauntlet/open?uri=s3%3A%2F%2F")
    assert "X-Amz" not in link and os.environ["AWS_ACCESS_KEY_ID"] not in link
    storage.put_bytes(uri, b"<html>docs</html>")
    target = presign_for_user(uri, store=store)
    assert requests.get(target, timeout=10).content == b"<html>docs</html>"
    with pytest.raises(PermissionError):
        presign_for_user("s3://someone-elses-bucket/secret.csv", store=store)
    with pytest.raises(PermissionError):
        presign_for_user(f"{store}/../other/key", store=store)
