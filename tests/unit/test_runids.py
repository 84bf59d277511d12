"""gauntlet.runids: an orchestrator's run id made safe for one S3 key segment."""

from __future__ import annotations

import re

import pytest

from gauntlet.runids import safe_run_id


@pytest.mark.parametrize(
    ("run_id", "expected"),
    [
        ("scheduled__2026-11-02T00:00:00+00:00", "scheduled__2026-11-02T00_00_00_00_00"),
        ("manual__2026-11-02T03:04:05.123456+00:00", "manual__2026-11-02T03_04_05.123456_00_00"),
        ("plain-id_1.2", "plain-id_1.2"),
    ],
)
def test_airflow_run_ids_keep_only_the_portable_characters(run_id: str, expected: str) -> None:
    assert safe_run_id(run_id) == expected


def test_no_slash_or_space_survives_so_a_run_id_stays_one_key_segment() -> None:
    safe = safe_run_id("../a b/c:d?e\u00e9")
    assert re.fullmatch(r"[A-Za-z0-9._-]+", safe), safe
    assert safe == ".._a_b_c_d_e"


def test_leading_and_trailing_unsafe_runs_are_dropped_not_turned_into_underscores() -> None:
    assert safe_run_id("::run 1::") == "run_1"
    assert safe_run_id("a::::b") == "a_b"  # a run of unsafe characters becomes one underscore
