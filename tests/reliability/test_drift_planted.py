"""A night whose new partition drifted: validate warns (or fails, past the suite's fail_psi), naming
the feature, and leaves the drift table and its PNG beside the result; an ordinary night says no drift."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from testkit import ROOT

from gauntlet import demo, layout, rawdata, storage
from gauntlet.config import PipelineConfig, load_config, resolve
from gauntlet.errors import BadInput, ValidationFailed
from gauntlet.steps import validate

NIGHT = dt.date(2026, 11, 7)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _config(*overrides: str) -> PipelineConfig:
    return load_config(resolve("include/configs/digits.yaml"), list(overrides))


def _plant_shift(store: str, column: str = "pixel_20", by: int = 8) -> None:
    """The night's partition with one pixel brighter (still inside the suite's 0..16)."""
    uri = layout.raw_partition_uri(store, "raw/digits", NIGHT)
    frame = rawdata.read_partition(uri)
    frame[column] = np.minimum(frame[column] + by, 16)
    demo.write_partition(uri, frame)


@pytest.fixture
def drift_suite() -> Iterator[Callable[[dict[str, object]], str]]:
    """A copy of the digits suite with the given meta.drift, in include/expectations (removed after)."""
    made: list[Path] = []

    def new(settings: dict[str, object]) -> str:
        suite = json.loads((ROOT / "include/expectations/digits.json").read_text())
        suite["meta"]["drift"] = settings
        made.append(ROOT / "include" / "expectations" / f"test-drift-{uuid.uuid4().hex[:8]}.json")
        made[-1].write_text(json.dumps(suite))
        return f"include/expectations/{made[-1].name}"

    yield new
    for path in made:
        path.unlink(missing_ok=True)


def _night(store: str, config: PipelineConfig, run_id: str) -> dict[str, object]:
    return validate.run(config, store, NIGHT, NIGHT + dt.timedelta(days=1), run_id)


@pytest.mark.parametrize("engine", ["vectorised", "gx"])
def test_a_shifted_feature_in_the_new_partition_is_a_warning_in_the_result(seeded_store: str, engine: str) -> None:
    _plant_shift(seeded_store)
    outputs = _night(seeded_store, _config(f"dataset.validation={engine}"), f"drift-{engine}")
    assert outputs["verdict"] == "passed"
    assert str(outputs["drift"]).startswith("drift: 1 of 64 features and the label") and "pixel_20" in outputs["drift"]
    result = storage.get_json(str(outputs["result_uri"]))
    assert list(result["drift"]["drifted"]) == ["pixel_20"] and result["drift"]["drifted"]["pixel_20"] > 0.2
    table = storage.get_json(layout.drift_table_uri(seeded_store, f"drift-{engine}"))
    assert table["columns"][0]["column"] == "pixel_20" and table["columns"][0]["level"] == "warn"
    assert (table["new"]["partitions"], table["reference"]["partitions"]) == (1, 6)
    assert table["new"]["rows"] + table["reference"]["rows"] == result["rows"]
    assert storage.get_bytes(layout.drift_plot_uri(seeded_store, f"drift-{engine}")).startswith(PNG_MAGIC)


def test_past_the_suites_fail_psi_the_run_fails_naming_the_feature(
    seeded_store: str, drift_suite: Callable[[dict[str, object]], str]
) -> None:
    _plant_shift(seeded_store)
    suite = drift_suite({"warn_psi": 0.1, "fail_psi": 0.5})
    config = _config("dataset.validation=vectorised", f"dataset.expectation_suite={suite}")
    with pytest.raises(
        ValidationFailed, match=r"drift: pixel_20 PSI \d+\.\d{3} at or above meta\.drift\.fail_psi"
    ) as info:
        _night(seeded_store, config, "drift-fail")
    assert isinstance(info.value, BadInput) and suite in str(info.value)
    result = storage.get_json(layout.validation_result_uri(seeded_store, "drift-fail"))
    assert result["verdict"] == "failed" and list(result["drift"]["failed"]) == ["pixel_20"]


def test_an_ordinary_night_says_no_drift(seeded_store: str) -> None:
    outputs = _night(seeded_store, _config("dataset.validation=vectorised"), "drift-none")
    assert str(outputs["drift"]).startswith("no drift: largest PSI")
    assert storage.get_json(str(outputs["drift_uri"]))["status"] == "no drift"


def test_a_snapshot_of_new_partitions_only_measures_nothing(seeded_store: str) -> None:
    outputs = validate.run(_config(), seeded_store, dt.date(2026, 11, 1), NIGHT + dt.timedelta(days=1), "drift-all")
    assert outputs["verdict"] == "passed"
    assert (
        outputs["drift"]
        == "not measured: no earlier partition to compare with (every partition of the snapshot is new)"
    )


def test_unusable_drift_settings_are_refused_before_any_work(
    seeded_store: str, drift_suite: Callable[[dict[str, object]], str]
) -> None:
    suite = drift_suite({"warn_psi": -1})
    with pytest.raises(BadInput, match=r"meta\.drift\.warn_psi must be a positive number"):
        _night(seeded_store, _config(f"dataset.expectation_suite={suite}"), "drift-bad")
    assert not storage.exists(layout.validation_result_uri(seeded_store, "drift-bad"))
