"""steps.sweep: the plan expands configs x snapshot dates into labelled pairs with their intervals."""

from __future__ import annotations

import pytest

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
