"""Errors whose class decides the step's exit code, so the orchestrator knows whether to retry.

Kept apart from the steps (which import pandas and pyarrow) so that every command can catch them
without paying for those imports: a step's process starts ~0.2 s sooner.
"""

from __future__ import annotations


class BadInput(ValueError):
    """Input that no retry can fix (a file changed since validation, a forbidden path, a protocol
    mismatch): the step exits 2 and Airflow fails the task without retrying it."""


class ValidationFailed(RuntimeError):
    """The raw data broke the expectation suite; the message lists what failed."""


class NoNewData(RuntimeError):
    """No partition landed in the run's data interval: nothing to retrain on."""
