"""The suite `gauntlet init` writes passes both validation engines (GX and the vectorised checks) on
the data it was made from, for a table as real tables come and for the shipped wine and diabetes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gauntlet import cli, demo, layout, storage
from gauntlet.config import config_file, load_config
from gauntlet.steps import validate

FIRST_DAY = dt.date(2026, 11, 1)


@pytest.fixture(autouse=True)
def no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "setup_logging", lambda: None)


def own_table(n: int, start: int) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    return pd.DataFrame(
        {
            "patient": [f"P{i:05d}" for i in range(start, start + n)],
            "outcome": rng.choice(["healthy", "sick", "unknown"], n),
            "region": rng.choice(["east", "north", "west"], n),
            "age": rng.integers(18, 90, n),
            "cholesterol": np.where(np.arange(n) % 7 == 0, np.nan, rng.normal(200, 30, n).round(1)),
            "smoker": pd.array([None if i % 9 == 0 else bool(v) for i, v in enumerate(rng.random(n) < 0.3)], "boolean"),
            "visits": pd.array(
                [None if i % 11 == 0 else int(v) for i, v in enumerate(rng.integers(0, 12, n))], "Int64"
            ),
            "referral_note": [f"seen on visit {i}" for i in range(start, start + n)],
        }
    )


def run_both_engines(config_path: str, store: str, days: int) -> dict[str, dict[str, object]]:
    """validate.run on every landed day with each engine; the vectorised run must pass on its own."""
    results = {}
    for engine in ("gx", "vectorised"):
        config = load_config(config_file(config_path), [f"dataset.validation={engine}"])
        run_id = f"init-{engine}"
        end = FIRST_DAY + dt.timedelta(days=days)
        outputs = validate.run(config, store, FIRST_DAY, end, run_id)
        result = storage.get_json(layout.validation_result_uri(store, run_id))
        assert outputs["verdict"] == "passed" and outputs["quarantined_rows"] == 0, outputs
        assert result["engine"]["engine"] == engine  # the vectorised engine did not fall back to GX
        results[engine] = result
    return results


def test_init_on_a_real_looking_table_writes_a_suite_both_engines_pass(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for day in range(3):
        fmt = "csv" if day == 1 else "parquet"  # upstream may land either; validate reads both
        uri = layout.raw_partition_uri(store, "raw/clinic", FIRST_DAY + dt.timedelta(days=day), fmt)
        demo.write_partition(uri, own_table(70, start=day * 70))
    monkeypatch.setenv("GAUNTLET_HOME", str(tmp_path))
    source = layout.raw_root(store, "raw/clinic") + "/"
    argv = ["--store", store, "init", "clinic", "--from", source, "--id", "patient", "--label", "outcome"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    suite = json.loads((tmp_path / "include/expectations/clinic.json").read_text())
    kinds = {e["type"] for e in suite["expectations"]}
    assert {"expect_column_values_to_be_in_set", "expect_column_values_to_be_between"} <= kinds
    results = run_both_engines("include/configs/clinic.yaml", store, 3)
    assert results["gx"]["rows"] == results["vectorised"]["rows"] == 210


@pytest.mark.parametrize("name", ["wine", "diabetes"])
def test_the_shipped_suites_pass_both_engines_on_the_seeded_tables(store: str, name: str) -> None:
    demo.seed(store, f"raw/{name}", FIRST_DAY, 7, dataset=name)
    results = run_both_engines(f"include/configs/{name}.yaml", store, 7)
    assert results["vectorised"]["rows"] == len(demo.dataset_frame(name))
