"""gauntlet.fastchecks: the suite's rules evaluated on Arrow batches, conservative where unsure."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from testkit import ROOT

from gauntlet import fastchecks

DIGITS_SUITE = json.loads((ROOT / "include" / "expectations" / "digits.json").read_text())
SUITE: dict[str, Any] = {
    "expectations": [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["row_id", "label", "x"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "min_value": 0, "max_value": 16}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "label", "value_set": [0, 1]}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "row_id"}},
    ]
}


def _batch(ids: list[Any], labels: list[int], x: list[float | None]) -> pa.RecordBatch:
    return pa.record_batch({"row_id": ids, "label": labels, "x": x})


def _verdict(*parts: pa.RecordBatch, suite: dict[str, Any] = SUITE) -> tuple[bool, list[str]]:
    checker = fastchecks.SuiteChecker(suite, id_column="row_id", label_column="label")
    for i, batch in enumerate(parts):
        checker.start_partition(f"s3://b/p{i}.parquet")
        checker.add(batch)
    return checker.verdict()


def test_the_demo_suite_is_evaluated_whole_and_an_unknown_rule_is_left_to_gx() -> None:
    assert fastchecks.unsupported(DIGITS_SUITE) == []
    odd = {"expectations": [{"type": "expect_column_values_to_match_regex", "kwargs": {"column": "x"}}]}
    extra = {
        "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x", "mostly": 0.9}}]
    }
    assert fastchecks.unsupported(odd) == ["expect_column_values_to_match_regex"]
    assert fastchecks.unsupported(extra) == ["expect_column_values_to_not_be_null"]  # an argument it cannot honour
    passed, problems = _verdict(_batch(["a"], [0], [1.0]), suite=odd)
    assert not passed and "not evaluated by the vectorised engine" in problems[0]


def test_clean_batches_pass() -> None:
    assert _verdict(_batch(["a", "b"], [0, 1], [0.0, 16.0]), _batch(["c"], [1], [3.0])) == (True, [])


def test_each_broken_rule_is_reported_across_batches() -> None:
    passed, problems = _verdict(_batch(["a", "b"], [0, 2], [1.0, None]), _batch(["c"], [1], [17.0]))
    assert not passed
    text = "\n".join(problems)
    assert "to_not_be_null on 'x': 1 missing values" in text
    assert "to_be_between on 'x': observed [1.0, 17.0]" in text
    assert "to_be_in_set on 'label': values [2]" in text


def test_a_row_id_in_two_files_fails_by_its_text_and_names_both_files() -> None:
    passed, problems = _verdict(_batch(["7", "a"], [0, 0], [1.0, 1.0]), _batch(["7"], [1], [1.0]))
    assert not passed
    assert any("'7' in s3://b/p0.parquet and s3://b/p1.parquet" in p for p in problems)
    assert any("carry different labels" in p for p in problems)
    keys = [fastchecks.Keys("f1", [pa.array([7])], []), fastchecks.Keys("f2", [pa.array(["7"])], [])]
    failures = fastchecks.snapshot_failures(keys, "row_id", None)
    assert [f["expectation"] for f in failures] == ["expect_column_values_to_be_unique"]  # 7 and "7" are one row
    assert failures[0]["examples"] == ["7"] and failures[0]["kwargs"] == {"scope": "snapshot"}
