"""gauntlet.quarantine: a few bad rows set aside in S3, with their reasons, instead of failing the night."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
import pytest
from testkit import object_keys

from gauntlet import quarantine, storage

IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
SUITE = {"meta": {"row_quarantine": {"expectations": [IN_SET, BETWEEN]}}, "expectations": []}
PARTITION = {"uri": "s3://b/raw/d/date=2026-11-01/part-00000.csv", "etag": '"e1"', "date": "2026-11-01"}


def _frame(rows: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"row_id": [f"r{i:03d}" for i in range(rows)], "label": [i % 3 for i in range(rows)]})


def _failed(**rows: list[int]) -> list[dict[str, Any]]:
    kinds = {"label": IN_SET, "pixel": BETWEEN}
    return [{"expectation": kinds[column], "column": column, "rows": found} for column, found in rows.items()]


def test_only_the_rules_the_suite_names_may_quarantine_rows() -> None:
    assert quarantine.row_rules(SUITE) == {IN_SET, BETWEEN}
    assert quarantine.row_rules({"expectations": []}) == set()
    assert quarantine.offending_rows(_failed(label=[1, 4], pixel=[4]), {IN_SET, BETWEEN}) == {
        1: [f"{IN_SET} on column 'label'"],
        4: [f"{IN_SET} on column 'label'", f"{BETWEEN} on column 'pixel'"],
    }
    schema = {"expectation": "expect_table_columns_to_match_set", "column": None, "rows": [0]}
    assert quarantine.offending_rows([*_failed(label=[1]), schema], {IN_SET}) is None  # a broken file fails
    assert quarantine.offending_rows([{"expectation": IN_SET, "column": "label", "rows": []}], {IN_SET}) is None


def test_the_same_file_and_suite_quarantine_to_one_place() -> None:
    one = quarantine.quarantine_id(PARTITION["uri"], '"e1"', "suite")
    assert one == quarantine.quarantine_id(PARTITION["uri"], '"e1"', "suite")
    assert one != quarantine.quarantine_id(PARTITION["uri"], '"e2"', "suite")  # the file changed
    assert one != quarantine.quarantine_id(PARTITION["uri"], '"e1"', "other-suite")


def test_rows_over_the_limit_add_a_quarantine_limit_failure_and_write_nothing(store: str) -> None:
    failed = _failed(label=[1, 2])
    result = quarantine.apply(store, "digits", SUITE, "suite", 0.1, PARTITION, _frame(), failed, "row_id")
    assert result is None
    assert failed[-1]["expectation"] == "quarantine_limit" and failed[-1]["unexpected_count"] == 2
    assert "dataset.quarantine_max_fraction=0.1" in failed[-1]["error"]
    assert not object_keys(store)


def test_rows_under_the_limit_go_to_s3_with_their_reasons_keyed_by_row_id(store: str) -> None:
    failed = _failed(label=[3], pixel=[3, 7])
    result = quarantine.apply(store, "digits", SUITE, "suite", 0.2, PARTITION, _frame(), failed, "row_id")
    assert result is not None and len(failed) == 2  # no failure added: the partition counts as passed
    assert (result["count"], result["rows"], result["row_ids"]) == (2, [3, 7], ["r003", "r007"])
    assert result["reasons"] == sorted({f"{IN_SET} on column 'label'", f"{BETWEEN} on column 'pixel'"})
    manifest = storage.read_manifest(result["uri"])
    assert (manifest["kind"], manifest["rows"], manifest["of_rows"], manifest["source"]) == (
        "quarantine",
        2,
        10,
        PARTITION,
    )
    reasons = json.loads(storage.read_committed_file(result["uri"], "reasons.json"))
    assert reasons == {
        "r003": [f"{IN_SET} on column 'label'", f"{BETWEEN} on column 'pixel'"],
        "r007": [f"{BETWEEN} on column 'pixel'"],
    }
    rows = pd.read_parquet(io.BytesIO(storage.read_committed_file(result["uri"], "rows.parquet")))
    assert rows["row_id"].tolist() == ["r003", "r007"] and rows["_source_uri"].unique().tolist() == [PARTITION["uri"]]


@pytest.mark.parametrize("max_fraction", [0.0, 0.05])
def test_a_zero_or_tiny_limit_quarantines_nothing(store: str, max_fraction: float) -> None:
    failed = _failed(label=[0])
    assert quarantine.apply(store, "d", SUITE, "s", max_fraction, PARTITION, _frame(), failed, "row_id") is None
    assert failed[-1]["expectation"] == "quarantine_limit"
