"""A corpus of bad raw partitions, each built from the demo digits and landed beside a good one.

Every case lands a good partition for 2026-11-07 and a bad one for the night of 2026-11-08 under a
raw prefix of its own, and says what the pipeline must do with it: fail with a message naming the
file, the column and the rule, or quarantine exactly the rows it broke.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

GOOD_DAY, BAD_DAY = "2026-11-07", "2026-11-08"
ROWS = 200


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[pd.DataFrame], dict[str, bytes]]  # bad frame -> {file name under the prefix: bytes}
    expect: str  # "fail" | "quarantine" | "no_new_data" | "vanished"
    message: tuple[str, ...] = ()  # each must appear in the error (besides the file's URI)
    quarantined: tuple[str, ...] = field(default=())  # row ids that must land in quarantine


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    from gauntlet.demo import digits_frame

    frame = digits_frame()
    return frame.iloc[:ROWS].reset_index(drop=True), frame.iloc[ROWS : 2 * ROWS].reset_index(drop=True)


def parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def bad_file(data: bytes, suffix: str = "parquet", day: str = BAD_DAY) -> dict[str, bytes]:
    return {f"date={day}/part-00000.{suffix}": data}


def _set(frame: pd.DataFrame, rows: list[int], column: str, value: object) -> pd.DataFrame:
    frame = frame.copy()
    if not isinstance(value, int | np.integer):
        frame[column] = frame[column].astype(object)
    frame.loc[rows, column] = value
    return frame


def _ragged(frame: pd.DataFrame) -> bytes:
    lines = csv(frame).decode().splitlines()
    lines[7] += ",17"  # one row with a field too many
    return ("\n".join(lines) + "\n").encode()


def _non_utf8(frame: pd.DataFrame) -> bytes:
    data = csv(frame)
    row_id = frame.loc[5, "row_id"].encode()
    return data.replace(row_id, row_id[:-1] + b"\xff", 1)


OUTLIER_ROWS, UNKNOWN_ROWS, FLOOD_ROWS = [3, 50, 120], [10, 11], list(range(0, ROWS, 10))


def cases(bad: pd.DataFrame) -> list[Case]:
    ids = bad["row_id"].tolist()
    return [
        Case("missing_file", lambda f: {}, "no_new_data", ("no partition landed", f"[{BAD_DAY}, 2026-11-09)")),
        Case("vanished_after_validation", lambda f: bad_file(parquet(f)), "vanished", ("no object at",)),
        Case("empty_file", lambda f: bad_file(b""), "fail", ("file is empty",)),
        Case(
            "empty_table",
            lambda f: bad_file(parquet(f.iloc[:0])),
            "fail",
            ("expect_table_row_count_to_be_between", "table"),
        ),
        Case(
            "truncated_parquet",
            lambda f: bad_file(parquet(f)[: len(parquet(f)) // 2]),
            "fail",
            ("not a readable Parquet file",),
        ),
        Case(
            "ragged_csv_row", lambda f: bad_file(_ragged(f), "csv"), "fail", ("not a readable UTF-8 CSV file", "line 8")
        ),
        Case(
            "renamed_column",
            lambda f: bad_file(parquet(f.rename(columns={"label": "target"}))),
            "fail",
            ("expect_table_columns_to_match_set", "missing columns ['label']", "unexpected columns ['target']"),
        ),
        Case(
            "extra_column",
            lambda f: bad_file(parquet(f.assign(comment="ok"))),
            "fail",
            ("expect_table_columns_to_match_set", "unexpected columns ['comment']"),
        ),
        Case(
            "wrong_dtype",
            lambda f: bad_file(parquet(f.assign(pixel_5=f["pixel_5"].astype(str) + "px"))),
            "fail",
            ("expect_column_values_to_be_in_type_list", "column 'pixel_5'"),
        ),
        Case(
            "nulls_in_label",
            lambda f: bad_file(parquet(_set(f, [4, 9], "label", None))),
            "fail",
            ("expect_column_values_to_not_be_null", "column 'label'"),
        ),
        Case(
            "duplicated_row_ids",
            lambda f: bad_file(parquet(_set(f, [20, 21], "row_id", f.loc[19, "row_id"]))),
            "fail",
            ("expect_column_values_to_be_unique", "column 'row_id'"),
        ),
        Case(
            "unknown_label_class",
            lambda f: bad_file(parquet(_set(f, UNKNOWN_ROWS, "label", 11))),
            "quarantine",
            quarantined=tuple(ids[i] for i in UNKNOWN_ROWS),
        ),
        Case(
            "extreme_outliers",
            lambda f: bad_file(parquet(_set(f, OUTLIER_ROWS, "pixel_10", 1_000_000))),
            "quarantine",
            quarantined=tuple(ids[i] for i in OUTLIER_ROWS),
        ),
        Case(
            "outliers_over_quarantine_limit",
            lambda f: bad_file(parquet(_set(f, FLOOD_ROWS, "pixel_10", 99))),
            "fail",
            ("quarantine_limit", "20 of 200 rows", "dataset.quarantine_max_fraction=0.05"),
        ),
        Case(
            "partition_for_an_invalid_date",
            lambda f: bad_file(parquet(f), day="2026-11-31"),
            "fail",
            ("rule partition_date", "date=2026-11-31"),
        ),
        Case(
            "non_utf8_string_column",
            lambda f: bad_file(_non_utf8(f), "csv"),
            "fail",
            ("rule utf8_text", "column 'row_id'", "line 7"),
        ),
    ]
