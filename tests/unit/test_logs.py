"""gauntlet.logs: the one logger setup (plain lines on stderr), idempotent per process."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from gauntlet.logs import get_logger, setup_logging


@pytest.fixture
def fresh_root() -> Iterator[logging.Logger]:
    """The root logger as setup_logging has never seen it; the test's changes are undone after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, getattr(root, "_gauntlet_configured", None))
    noisy = logging.getLogger("botocore")
    noisy_level = noisy.level
    root.handlers[:] = []
    if hasattr(root, "_gauntlet_configured"):
        del root._gauntlet_configured
    yield root
    root.handlers[:], root.level = saved[0], saved[1]
    if saved[2] is None:
        root.__dict__.pop("_gauntlet_configured", None)
    else:
        root._gauntlet_configured = saved[2]  # type: ignore[attr-defined]
    noisy.setLevel(noisy_level)


def test_setup_installs_one_stderr_handler_and_a_second_call_changes_nothing(
    fresh_root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GAUNTLET_LOG_LEVEL", raising=False)
    setup_logging()
    handlers = fresh_root.handlers[:]
    assert len(handlers) == 1 and fresh_root.level == logging.INFO
    setup_logging("DEBUG")  # a second setup (another import path) must not add or replace handlers
    assert fresh_root.handlers == handlers and fresh_root.level == logging.INFO


def test_level_comes_from_the_environment_and_chatty_libraries_are_kept_to_warnings(
    fresh_root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAUNTLET_LOG_LEVEL", "DEBUG")
    setup_logging()
    assert fresh_root.level == logging.DEBUG
    assert logging.getLogger("botocore").level == logging.WARNING


def test_lines_name_the_level_and_the_logger(fresh_root: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO")
    get_logger("gauntlet.example").warning("disk %s", "full")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith("WARNING gauntlet.example: disk full")
