"""Every case of the bad-input corpus, end to end against the S3 server: the expected error (naming
file, column and rule) or row-level quarantine, and nothing else changed in S3: no dataset, model
or registry entry is written from bad data.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from corpus import BAD_DAY, GOOD_DAY, ROWS, Case, cases, frames, parquet
from testkit import run_cli

from gauntlet import errors, storage
from gauntlet.config import load_config, resolve
from gauntlet.contract import EXIT_BAD_INPUT
from gauntlet.protocol import load_protocol
from gauntlet.steps import preprocess, validate

GOOD, BAD = frames()
CASES = cases(BAD)
RESULTS: dict[str, str] = {}


def _snapshot(store: str) -> dict[str, str]:
    return {o["key"]: o["etag"] for o in storage.list_objects(store + "/")}


def _land(store: str, case: Case) -> tuple[Any, str]:
    prefix = f"raw/cases/{case.name}"
    storage.put_bytes(f"{store}/{prefix}/date={GOOD_DAY}/part-00000.parquet", parquet(GOOD))
    for name, data in case.build(BAD).items():
        storage.put_bytes(f"{store}/{prefix}/{name}", data)
    return load_config(resolve("include/configs/digits.yaml"), [f"dataset.raw_prefix={prefix}"]), prefix


def _validate(config: Any, store: str, run_id: str, require_new: bool = False) -> dict[str, Any]:
    return validate.run(
        config, store, dt.date.fromisoformat(BAD_DAY), dt.date(2026, 11, 9), run_id, require_new=require_new
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_case(case: Case, store: str) -> None:
    config, prefix = _land(store, case)
    bad_uri = next((f"{store}/{prefix}/{name}" for name in case.build(BAD)), None)
    run_id = f"case-{case.name}"
    before = _snapshot(store)
    allowed = (f"runs/{run_id}/validation/",)
    protocol = load_protocol(resolve(config.protocol))

    if case.expect == "no_new_data":
        with pytest.raises(errors.NoNewData) as error:
            _validate(config, store, run_id, require_new=True)
    elif case.expect == "vanished":
        outputs = _validate(config, store, run_id)
        storage.client().delete_object(Bucket=store[5:], Key=bad_uri.split("/", 3)[3])  # type: ignore[union-attr]
        before = _snapshot(store)
        with pytest.raises(FileNotFoundError) as error:
            preprocess.run(config, protocol, store, outputs["result_uri"])
    elif case.expect == "fail":
        with pytest.raises((errors.ValidationFailed, errors.RawDataError)) as error:
            _validate(config, store, run_id)
    else:
        outputs = _validate(config, store, run_id)
        assert outputs["quarantined_rows"] == len(case.quarantined)
        [quarantine_uri] = outputs["quarantine_uris"]
        held = pd.read_parquet(io.BytesIO(storage.read_committed_file(quarantine_uri, "rows.parquet")))
        assert sorted(held["row_id"]) == sorted(case.quarantined)
        assert held["_reason"].str.startswith("expect_column_values_to_be_").all()
        assert (held["_source_uri"] == bad_uri).all()
        built = preprocess.run(config, protocol, store, outputs["result_uri"])
        assert built["quarantined_rows"] == len(case.quarantined)
        assert sum(built["rows"].values()) == 2 * ROWS - len(case.quarantined)
        dataset_ids: set[str] = set()
        with storage.temp_dir() as tmp:
            storage.fetch_committed(built["dataset_uri"], tmp)
            for split in ("train", "dev", "test"):
                for path in Path(tmp, split).glob("*.parquet"):  # one file per raw partition
                    dataset_ids |= set(pd.read_parquet(path)["row_id"])
        assert not dataset_ids & set(case.quarantined), "a quarantined row reached the dataset"
        # The dataset, and the partition outputs it references (no failed build leaves any).
        allowed += ("quarantine/", "dataset-parts/", built["dataset_uri"].split("/", 3)[3] + "/")
        RESULTS[case.name] = f"quarantined {len(case.quarantined)} rows, dataset of {len(dataset_ids)} clean rows"

    if case.expect != "quarantine":
        message = str(error.value)
        missing = [part for part in (*case.message, *([bad_uri] if bad_uri else [])) if part not in message]
        assert not missing, f"the error does not name {missing}:\n{message}"
        RESULTS[case.name] = message.splitlines()[1 if message.startswith("validation failed") else 0][:160]
    after = _snapshot(store)
    changed = {k for k in before if before[k] != after.get(k)}
    new = {k for k in after.keys() - before.keys() if not k.startswith(allowed)}
    assert not changed and not new, f"bad input changed S3: changed {changed}, new {new}"
    assert not any(k.startswith(("experiments/", "registry/", "evaluations/")) for k in after)
    print(f"RELIABILITY case {case.name}: {RESULTS[case.name]}")


def test_cli_reports_bad_input_with_exit_code_2(store: str) -> None:
    """Through the CLI, as Airflow runs it: exit 2 (no retry) and the message on stderr."""
    renamed = next(c for c in CASES if c.name == "renamed_column")
    _, prefix = _land(store, renamed)
    process, outputs = run_cli(
        store,
        "--set",
        f"dataset.raw_prefix={prefix}",
        "--run-id",
        "cli-bad",
        "validate",
        "--start",
        BAD_DAY,
        "--end",
        "2026-11-09",
        check=False,
    )
    assert process.returncode == EXIT_BAD_INPUT and not outputs
    assert f"{store}/{prefix}/date={BAD_DAY}/part-00000.parquet" in process.stderr
    assert "missing columns ['label']" in process.stderr and "expect_table_columns_to_match_set" in process.stderr
    assert storage.exists(f"{store}/runs/cli-bad/validation/result.json")
    assert not storage.exists(f"{store}/runs/cli-bad/steps/validate.json")
