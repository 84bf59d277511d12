"""The step process contract: how `python -m gauntlet <step>` talks to whatever runs it.

A step process prints its outputs as JSON on one stdout line that starts with `OUTPUTS_MARKER` (the
last such line counts) and ends with an exit code the orchestrator acts on:

- 0: done; the outputs line holds the step's outputs (one of the `*Outputs` records below).
- 1 (`EXIT_FAILED`): failed; a retry may succeed (`errors.Retryable`, or an error nobody foresaw).
- 2 (`EXIT_BAD_INPUT`): bad input; fail without retrying (`errors.BadInput`).
- 99 (`EXIT_NOTHING_TO_DO`): nothing to do; skip the task (`errors.NothingToDo`).

On failure the step prints `error: <message>` (or `skip: <message>` for exit 99) on stderr, which the
runtimes quote in the task's failure. The CLI and every runtime (local, docker, kubernetes, MPIJob)
use this module, so the contract changes in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import IO, Any, TypedDict

from gauntlet.errors import BadInput, NothingToDo

OUTPUTS_MARKER = "GAUNTLET_OUTPUTS "
ERROR_PREFIX = "error:"
SKIP_PREFIX = "skip:"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOTHING_TO_DO = 99


def exit_code(error: BaseException) -> int:
    """The exit code for an error, by its base class alone; anything unforeseen may be retried."""
    if isinstance(error, NothingToDo):
        return EXIT_NOTHING_TO_DO
    if isinstance(error, BadInput):
        return EXIT_BAD_INPUT
    return EXIT_FAILED  # errors.Retryable, and whatever nobody foresaw


def outputs_json(outputs: Mapping[str, Any]) -> str:
    """The outputs as the JSON text the outputs line and `--outputs-file` carry."""
    return json.dumps(outputs, default=str)


def outputs_line(outputs: Mapping[str, Any]) -> str:
    return OUTPUTS_MARKER + outputs_json(outputs)


def write_outputs(outputs: Mapping[str, Any], stream: IO[str]) -> None:
    """Print the outputs line, flushed at once: the orchestrator may read it before the process ends."""
    print(outputs_line(outputs), file=stream, flush=True)


def parse_outputs(output: str | Iterable[str]) -> dict[str, Any] | None:
    """The outputs from a step process's output (its text, or its lines): the last outputs line
    wins; None when it printed none (it failed, or it is no step)."""
    lines = output.splitlines() if isinstance(output, str) else list(output)
    for line in reversed(lines):
        if line.startswith(OUTPUTS_MARKER):
            parsed = json.loads(line[len(OUTPUTS_MARKER) :])
            if not isinstance(parsed, dict):
                raise ValueError(f"the outputs line holds {type(parsed).__name__}, not a JSON object: {line[:200]}")
            return parsed
    return None


def last_message(lines: Iterable[Any], prefix: str) -> str | None:
    """The last line starting with `prefix` (`ERROR_PREFIX`, `SKIP_PREFIX`), if any."""
    return next((str(ln) for ln in reversed(list(lines)) if str(ln).startswith(prefix)), None)


# --- the outputs of each step ------------------------------------------------------------------


# Optional keys come from `total=False` classes: NotRequired[...] is lost in this module's string annotations.
class StepOutputs(TypedDict, total=False):
    """What the CLI adds to every step's outputs."""

    step_seconds: float


class ValidateOutputs(StepOutputs):
    verdict: str  # "passed" (a failed validation raises ValidationFailed instead)
    result_uri: str
    docs_uri: str
    rows: int
    partitions: int
    new_partitions: int
    quarantined_rows: int
    quarantine_uris: list[str]
    drift: str  # one line: the new partitions' drift against the earlier ones (gauntlet.drift)
    drift_uri: str | None  # the drift table, none when nothing was measured


class PreprocessOutputs(StepOutputs):
    dataset_uri: str
    version: str
    rows: dict[str, int]  # per split: train, dev, test
    cache_hit: bool
    quarantined_rows: int


class TrainOutputs(StepOutputs):
    experiment_uri: str
    key: str
    cache_hit: bool
    dev_error: float  # the curve metric's final dev value: error rate, or RMSE for a regression
    curve_metric: str
    wall_seconds: float


class EvaluateOutputs(StepOutputs):
    report_uri: str
    report_html_uri: str
    gate_passed: bool
    gate_reason: str
    experiment_key: str
    experiment_uri: str
    off_protocol: bool
    cache_hit: bool


class _RegisterVerdict(StepOutputs):
    registered: bool
    champion: bool
    promoted: bool
    version: int | None
    registry_uri: str
    gate_passed: bool
    reason: str
    report_uri: str
    approval: str  # the protocol's gate.approval: automatic | required
    awaiting_approval: bool  # registered, gate passed, champion left for a person to approve


class ApprovalRequest(TypedDict):
    """What the approval task shows a person (register's outputs, when awaiting approval)."""

    champion_version: int | None
    protocol: str | None
    test_rows: int | None
    metrics_table: str  # Markdown, one row per model
    intervals_table: str  # Markdown, paired-bootstrap differences with their intervals
    report_html_uri: str


class RegisterOutputs(_RegisterVerdict, total=False):
    # Only when registered:
    created: bool
    already_registered_as: int | None
    version_uri: str
    # Only when awaiting approval:
    approval_request: ApprovalRequest


class PromoteOutputs(TypedDict):
    """`promote` (run on an approval; not one of the pipeline's five steps)."""

    version: int
    champion: bool
    promoted: bool
    approved_by: str
    version_uri: str
    registry_uri: str
    report_uri: str


STEP_OUTPUTS: dict[str, type[StepOutputs]] = {
    "validate": ValidateOutputs,
    "preprocess": PreprocessOutputs,
    "train": TrainOutputs,
    "evaluate": EvaluateOutputs,
    "register": RegisterOutputs,
}
