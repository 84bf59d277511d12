"""gauntlet.scoring.compare: reports compare only under one protocol, on one test set."""

from __future__ import annotations

from typing import Any

import pytest

from gauntlet.errors import ProtocolMismatch
from gauntlet.scoring import compare


def _report(key: str, protocol: str = "p1", test_set: str = "t1", error: float = 0.1) -> dict[str, Any]:
    return {
        "experiment_key": key,
        "protocol_id": protocol,
        "test_set_id": test_set,
        "test_rows": 100,
        "metrics": {"candidate": {"error_rate": error, "log_loss": 0.3}},
    }


def test_the_test_set_id_ignores_row_order() -> None:
    assert compare.test_set_id(["b", "a", "c"]) == compare.test_set_id(["c", "b", "a"])
    assert compare.test_set_id(["a", "b"]) != compare.test_set_id(["a", "b", "c"])


def test_compare_reports_subtracts_b_from_a() -> None:
    result = compare.compare_reports(_report("k1", error=0.1), _report("k2", error=0.15))
    assert result["protocol_id"] == "p1" and (result["a"], result["b"]) == ("k1", "k2")
    assert result["metrics"]["error_rate"]["diff"] == pytest.approx(-0.05)
    assert "| error_rate | 0.1000 | 0.1500 | -0.0500 |" in compare.comparison_text(result)


def test_different_protocols_or_test_sets_are_not_comparable() -> None:
    with pytest.raises(ProtocolMismatch, match="p2"):
        compare.require_same_protocol(_report("k1"), _report("k2", protocol="p2"))
    why = compare.why_not_comparable(_report("k1"), _report("k2", test_set="t2"))
    assert why is not None and "t2" in why
    assert compare.why_not_comparable(_report("k1"), _report("k2")) is None


def test_split_difference_names_the_fields_that_moved() -> None:
    expected = {"id_column": "id", "salt": "s", "test_fraction": 0.2, "dev_fraction": 0.1}
    assert compare.split_difference(dict(expected), expected) == []
    assert compare.split_difference({**expected, "salt": "t"}, expected) == ["salt"]
    assert compare.split_difference(None, expected) == list(compare.SPLIT_FIELDS)
    assert compare.describe_split(None) == "an unrecorded split"
