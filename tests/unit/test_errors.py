"""gauntlet.errors: every error class sits under exactly one of BadInput, NothingToDo, Retryable, and
that base alone decides the step's exit code, in the CLI as the orchestrator sees it."""

from __future__ import annotations

import ast
import builtins
import inspect
import socket
from pathlib import Path

import pytest
from testkit import run_cli

from gauntlet import errors
from gauntlet.contract import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOTHING_TO_DO, exit_code

PACKAGE = Path(errors.__file__).resolve().parent
BASES = (errors.BadInput, errors.NothingToDo, errors.Retryable)

# Every class's exit code, decided once: a new class has to be added here with its own answer.
EXPECTED = {
    "BadInput": EXIT_BAD_INPUT,
    "ConfigError": EXIT_BAD_INPUT,
    "ProtocolError": EXIT_BAD_INPUT,
    "RawDataError": EXIT_BAD_INPUT,
    "RowIdError": EXIT_BAD_INPUT,
    "ValidationFailed": EXIT_BAD_INPUT,
    "PreprocessError": EXIT_BAD_INPUT,
    "EvaluationError": EXIT_BAD_INPUT,
    "NotComparable": EXIT_BAD_INPUT,
    "ProtocolMismatch": EXIT_BAD_INPUT,
    "TestSetMismatch": EXIT_BAD_INPUT,
    "RegistryError": EXIT_BAD_INPUT,
    "ObjectNotFound": EXIT_BAD_INPUT,
    "NotCommitted": EXIT_BAD_INPUT,
    "IntegrityError": EXIT_BAD_INPUT,
    "DataConfigMismatch": EXIT_BAD_INPUT,
    "InitError": EXIT_BAD_INPUT,
    "OverBudget": EXIT_BAD_INPUT,
    "NothingToDo": EXIT_NOTHING_TO_DO,
    "NoNewData": EXIT_NOTHING_TO_DO,
    "Retryable": EXIT_FAILED,
    "StorageError": EXIT_FAILED,
    "PreconditionFailed": EXIT_FAILED,
    "RegistryConflict": EXIT_FAILED,
    "ClaimPending": EXIT_FAILED,
    "TrainingFailed": EXIT_FAILED,
    "LeaseTimeout": EXIT_FAILED,
    "MirrorError": EXIT_FAILED,
}
CLASSES = {
    name: cls
    for name, cls in vars(errors).items()
    if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == errors.__name__
}


def test_every_error_class_has_a_decided_exit_code() -> None:
    assert set(CLASSES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exit_code_of_each_error_class(name: str) -> None:
    cls = CLASSES[name]
    assert exit_code(cls("message")) == EXPECTED[name]
    # Exactly one base: no class may be both "never retry" and "retry".
    assert sum(issubclass(cls, base) for base in BASES) == 1, f"{name} derives from {cls.__mro__}"


def test_bad_input_is_never_retryable_and_the_reverse() -> None:
    assert not issubclass(errors.BadInput, errors.Retryable) and not issubclass(errors.Retryable, errors.BadInput)
    # The storage failures are split by meaning, not by where they are raised.
    assert issubclass(errors.PreconditionFailed, errors.StorageError)
    assert not issubclass(errors.IntegrityError, errors.StorageError)
    assert not issubclass(errors.NotCommitted, errors.StorageError)


def test_errors_that_are_not_gauntlet_errors_are_retried() -> None:
    """A builtin error is a bug or an unforeseen failure, not a verdict on the input."""
    for error in (ValueError("x"), RuntimeError("x"), KeyError("x"), OSError("x")):
        assert exit_code(error) == EXIT_FAILED


def test_a_missing_object_is_bad_input_and_still_a_file_not_found_error() -> None:
    error = errors.ObjectNotFound("no object at s3://b/k")
    assert isinstance(error, FileNotFoundError) and exit_code(error) == EXIT_BAD_INPUT
    assert str(error) == "no object at s3://b/k"


def _names_an_exception(base: ast.expr) -> bool:
    name = ast.unparse(base).split(".")[-1]
    builtin = getattr(builtins, name, None)
    return (
        name in CLASSES
        or (inspect.isclass(builtin) and issubclass(builtin, BaseException))
        or name.endswith(("Error", "Exception"))
    )


def test_no_error_class_is_defined_outside_errors_py() -> None:
    """One home for error classes: a new kind of failure is declared in errors.py, under its base."""
    strays = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "errors.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and any(_names_an_exception(base) for base in node.bases)
    ]
    assert not strays, f"error classes outside gauntlet/errors.py: {strays}"


# --- through the CLI, as Airflow runs a step -----------------------------------------------------


def test_cli_exits_2_for_an_experiment_that_never_finished(store: str) -> None:
    """A missing record stays missing on retry: bad input, not a retryable failure."""
    process, outputs = run_cli(store, "evaluate", "--experiment", f"{store}/experiments/never-trained", check=False)
    assert process.returncode == EXIT_BAD_INPUT and not outputs, process.stderr[-2000:]
    assert "error: " in process.stderr and "training did not finish" in process.stderr
    assert "Traceback" not in process.stderr


def test_cli_exits_2_for_a_dataset_that_was_never_committed(store: str) -> None:
    process, outputs = run_cli(store, "train", "--dataset", f"{store}/datasets/digits/none", check=False)
    assert process.returncode == EXIT_BAD_INPUT and not outputs, process.stderr[-2000:]
    assert "it was never committed" in process.stderr and "Traceback" not in process.stderr


def test_cli_exits_1_when_s3_cannot_be_reached(store: str) -> None:
    """A network failure that outlasted the retries: Airflow retries the task."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "GAUNTLET_S3_MAX_ATTEMPTS": "1"}
    process, outputs = run_cli(store, "registry", "list", check=False, env=unreachable, timeout=120)
    assert process.returncode == EXIT_FAILED and not outputs, process.stderr[-2000:]
    assert f"127.0.0.1:{port}" in process.stderr and "Traceback" not in process.stderr
