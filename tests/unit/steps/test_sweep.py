"""steps.sweep: the plan expands configs x snapshot dates into labelled pairs with their intervals."""

from __future__ import annotations

from typing import Any

import pytest

from gauntlet import layout, storage
from gauntlet.errors import BadInput, ConfigError
from gauntlet.steps import sweep

CONFIG = "include/configs/digits.yaml"


def test_plan_pairs_every_config_with_every_date_in_date_order() -> None:
    grid = [{"name": "base"}, {"name": "fast", "overrides": {"training.lr": 0.1}}]
    planned = sweep.plan(grid, ["2026-11-05", " 2026-11-03"], CONFIG)
    assert planned["count"] == 4
    assert [p["label"] for p in planned["pairs"]] == [
        "base @ 2026-11-03",
        "base @ 2026-11-05",
        "fast @ 2026-11-03",
        "fast @ 2026-11-05",
    ]
    fast = planned["pairs"][3]
    assert (fast["start"], fast["end"]) == ("2026-11-05", "2026-11-06")  # the snapshot of D is read on D + 1
    assert fast["options"] == {"config": CONFIG, "overrides": {"training.lr": 0.1}}


def test_plan_refuses_duplicate_or_missing_names() -> None:
    for grid in ([{"name": "a"}, {"name": "a"}], [{"name": "a"}, {}]):
        with pytest.raises(ConfigError, match="unique name") as raised:
            sweep.plan(grid, ["2026-11-05"], CONFIG)
        assert isinstance(raised.value, BadInput)


def test_plan_fails_on_a_bad_override_before_anything_runs() -> None:
    with pytest.raises(BadInput, match=r"training\.lr"):
        sweep.plan([{"name": "typo", "overrides": {"training.lr": "fast"}}], ["2026-11-05"], CONFIG)
    with pytest.raises(ConfigError, match="at least one"):
        sweep.plan([{"name": "a"}], [], CONFIG)


def _recorded(store: str, key: str, train: float, dev: float) -> dict[str, Any]:
    """A train output whose record holds what the sweep table reads."""
    uri = layout.experiment_uri(store, key)
    record = {
        "key": key,
        "dataset_version": "v1",
        "params": {"model": {"kind": "mlp"}, "epochs": 30, "lr": 0.05},
        "final": {"train_error": train, "dev_error": dev},
        "wall_seconds": 1.0,
        "curve": [{"step": 100, "dev_error": dev}],
    }
    storage.put_json(layout.record_uri(uri), record)
    return {"experiment_uri": uri, "cache_hit": False}


def test_the_comparison_table_shows_train_dev_test_error_and_the_diagnosis(store: str) -> None:
    trained = [_recorded(store, "a" * 16, 0.01, 0.06), _recorded(store, "b" * 16, 0.02, 0.03)]
    report_uri = f"{store}/reports/a.json"
    storage.put_json(
        report_uri,
        {
            "protocol_id": "p1",
            "test_set_id": "t1",
            "metrics": {"candidate": {"error_rate": 0.065}},
            "gate": {"passed": False},
            "diagnosis": {"errors": {"test": 0.065}, "findings": ["high variance"]},
        },
    )
    # The second pair's evaluation predates the diagnosis: its cells stay blank.
    old_uri = f"{store}/reports/b.json"
    storage.put_json(
        old_uri,
        {
            "protocol_id": "p1",
            "test_set_id": "t1",
            "metrics": {"candidate": {"error_rate": 0.03}},
            "gate": {"passed": True},
        },
    )
    pairs = sweep.plan([{"name": "a"}, {"name": "b"}], ["2026-11-05"], CONFIG)["pairs"]
    evaluated = [{"report_uri": report_uri}, {"report_uri": old_uri}]
    outputs = sweep.report(store, "sweep-1", pairs, trained, evaluated)

    table = storage.get_bytes(outputs["table_uri"]).decode().splitlines()
    header = [cell.strip() for cell in table[2].strip("|").split("|")]
    assert header[5:9] == ["train error", "dev error", "test error", "diagnosis"]
    first = [cell.strip() for cell in table[4].strip("|").split("|")]
    assert first[5:9] == ["0.0100", "0.0600", "0.0650", "high variance"]
    second = [cell.strip() for cell in table[5].strip("|").split("|")]
    assert second[5:9] == ["0.0200", "0.0300", "", ""]
    rows = storage.get_json(outputs["json_uri"])["rows"]
    assert rows[0]["diagnosis"] == ["high variance"] and rows[0]["train_error"] == 0.01
