"""training.faults: the fault-injection hook fires only where planned, once per marker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gauntlet.training import faults


def test_fault_hook_fires_only_where_planned_and_once_per_marker(tmp_path: Path) -> None:
    marker = tmp_path / "fired"
    script = "from gauntlet.training import faults\nfor e in (1, 2):\n    h = faults.batch_hook(0, e)\n"
    script += "    for b in range(5):\n        h and h(b)\nprint('finished')\n"
    env = {**os.environ, "GAUNTLET_FAULT_KILL": "0:2:3", "GAUNTLET_FAULT_MARKER": str(marker)}
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 137 and "finished" not in first.stdout and marker.exists()
    again = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0 and "finished" in again.stdout  # the retry runs clean


def test_fault_hook_is_absent_without_a_plan_for_this_rank_and_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAUNTLET_FAULT_KILL", raising=False)
    monkeypatch.delenv("GAUNTLET_FAULT_STOP", raising=False)
    assert faults.batch_hook(0, 1) is None
    monkeypatch.setenv("GAUNTLET_FAULT_STOP", "1:3:4")
    assert faults.batch_hook(0, 3) is None and faults.batch_hook(1, 2) is None
    assert faults.batch_hook(1, 3) is not None
