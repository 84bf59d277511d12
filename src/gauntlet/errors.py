"""Every error a step raises on purpose, each under the one base class that says what a retry can do.

- `BadInput` (exit 2): no retry can fix it (bad data, config or protocol; a missing or damaged
  input); Airflow fails the task at once.
- `NothingToDo` (exit 99): the step has no work; Airflow skips the task.
- `Retryable` (exit 1): a retry may succeed (a lost race, a flaky network, a dead rank); Airflow retries.

The CLI maps an error to its exit code by these three classes only (`gauntlet.contract.exit_code`).
Kept free of heavy imports so every command can catch them without loading pandas or pyarrow.
"""

from __future__ import annotations

# --- the three bases ---------------------------------------------------------------------------


class BadInput(ValueError):
    """Input that no retry can fix: the step exits 2 and Airflow fails the task without retrying it."""


class NothingToDo(Exception):
    """The step has no work to do: it exits 99 and Airflow skips the task (and those after it)."""


class Retryable(RuntimeError):
    """A failure a later try may not meet: the step exits 1 and Airflow retries the task."""


# --- bad input (exit 2) ------------------------------------------------------------------------


class ConfigError(BadInput):
    """A config file or override is invalid; the message names the field."""


class ProtocolError(BadInput):
    """A protocol file that is malformed; the message names the offending field."""


class RawDataError(BadInput):
    """A raw partition cannot be read; the message names the file and the problem."""


class RowIdError(BadInput):
    """Row ids of a type that has no exact text form (float, bool, missing); the message names them."""


class ValidationFailed(BadInput):
    """The raw data broke the expectation suite; the message lists what failed."""


class DataConfigMismatch(ValidationFailed):
    """The config and the raw data disagree (a configured column missing, a label outside
    dataset.classes, text where numbers are expected); the message names the key, column and file."""


class PreprocessError(BadInput):
    """The validated input cannot become a dataset; the message says why. A retry meets the same
    input (a file changed since validation, mismatched columns, a bad setting), so none is made."""


class EvaluationError(BadInput):
    """The candidate cannot be evaluated under this protocol (no record, slices the test set lacks)."""


class NotComparable(BadInput):
    """Two results were scored under different conditions and must not be compared."""


class ProtocolMismatch(NotComparable):
    """Two results were scored under different protocol versions."""


class TestSetMismatch(NotComparable):
    """Two results were scored on different test rows (another dataset version or other rows)."""

    __test__ = False  # not a pytest class, despite the name


class RegistryError(BadInput):
    """A registry operation that is refused (no such version, off-protocol, nothing to roll back) or
    that found a state a person must look at (a duplicated version): running it again changes nothing."""


class ObjectNotFound(BadInput, FileNotFoundError):
    """No object at an S3 URI a step was given: no retry makes it appear. Still a FileNotFoundError,
    so code that probes for an object with `except FileNotFoundError` keeps working."""


class NotCommitted(BadInput):
    """A multi-object output has no manifest, so it does not exist (yet, or ever): the step that
    commits it has to run first; retrying the reader does not."""


class InitError(BadInput):
    """`gauntlet init` cannot scaffold a dataset from this table (an unknown id or label column,
    repeated ids, a label with one value, files it would overwrite); the message says what to change."""


class OverBudget(BadInput):
    """The compute preflight's estimate of a training run exceeds training.max_hours or training.max_cost:
    the run is refused before any rank starts; the message names the key and the estimate."""


class IntegrityError(BadInput):
    """An object's bytes do not match the sha256 its manifest or record promises. Storage already
    re-reads a cut-off body, so the stored bytes themselves are damaged: a retry reads them again."""


# --- nothing to do (exit 99) -------------------------------------------------------------------


class NoNewData(NothingToDo):
    """No partition landed in the run's data interval: nothing to retrain on."""


# --- retryable (exit 1) ------------------------------------------------------------------------


class StorageError(Retryable):
    """An S3 operation still failed after botocore's retries (network, throttling, a 5xx)."""


class PreconditionFailed(StorageError):
    """A conditional write lost a race: the object exists, or changed since it was read; a retry re-reads."""


class RegistryConflict(Retryable):
    """Other writers kept moving the registry (version numbers, an alias) past this one's tries."""


class ClaimPending(Retryable):
    """Another registration of the same experiment is under way; a later retry will find its version."""


class TrainingFailed(Retryable):
    """The Horovod job exited non-zero (a dead rank, a lost peer); the retry resumes from the checkpoint."""


class LeaseTimeout(Retryable):
    """Another process held the lease for longer than this one was willing to wait; a later try
    finds its result or the lease expired."""


class MirrorError(Retryable):
    """The MLflow server refused a mirror request or did not answer. The mirror logs it as a warning
    and never fails a step; a later run back-fills what it missed."""

    def __init__(self, message: str, error_code: str = "") -> None:
        super().__init__(message)
        self.error_code = error_code  # MLflow's own, e.g. RESOURCE_ALREADY_EXISTS
