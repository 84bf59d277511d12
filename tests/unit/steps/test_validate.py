"""steps.validate: a night's snapshot, what counts as new, and the refusals before any work."""

from __future__ import annotations

import datetime as dt

import pytest

from gauntlet import storage
from gauntlet.config import PipelineConfig, load_config, resolve
from gauntlet.errors import BadInput, NoNewData
from gauntlet.steps import validate

DAY = dt.date(2026, 11, 7)


def _config(*overrides: str) -> PipelineConfig:
    return load_config(resolve("include/configs/digits.yaml"), ["dataset.validation=vectorised", *overrides])


def test_one_night_validates_the_whole_snapshot_and_counts_one_new_partition(seeded_store: str) -> None:
    out = validate.run(_config(), seeded_store, DAY, DAY + dt.timedelta(days=1), "unit-night")
    assert (out["verdict"], out["partitions"], out["new_partitions"]) == ("passed", 7, 1)
    result = storage.get_json(out["result_uri"])
    assert result["interval"] == {"start": "2026-11-07", "end": "2026-11-08"} and result["rows"] == out["rows"] > 0


def test_a_night_without_new_data_ends_before_any_work_when_new_data_is_required(seeded_store: str) -> None:
    later = dt.date(2026, 12, 1)
    with pytest.raises(NoNewData, match="no new data"):
        validate.run(_config(), seeded_store, later, later + dt.timedelta(days=1), "unit-empty", require_new=True)


def test_a_mistyped_raw_prefix_is_bad_input_naming_the_key(seeded_store: str) -> None:
    with pytest.raises(BadInput, match=r"dataset\.raw_prefix"):
        validate.run(_config("dataset.raw_prefix=raw/digitz"), seeded_store, DAY, DAY + dt.timedelta(days=1), "typo")
