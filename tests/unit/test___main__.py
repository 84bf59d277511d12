"""gauntlet.__main__: `python -m gauntlet` runs the CLI and exits with its code; importing it runs nothing."""

from __future__ import annotations

import importlib
import subprocess
import sys

from testkit import ROOT

from gauntlet import contract


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gauntlet", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_the_cli_exit_code_is_the_process_exit_code() -> None:
    process = _run("--store", "s3://nowhere", "registry", "promote")
    assert process.returncode == contract.EXIT_BAD_INPUT
    assert process.stderr.strip().endswith("registry promote needs a version number, e.g. `registry promote 3`")
    assert _run("--help").returncode == contract.EXIT_OK


def test_importing_the_entry_point_does_not_run_it() -> None:
    module = importlib.import_module("gauntlet.__main__")
    assert callable(module.main)
