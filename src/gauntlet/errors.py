"""The validate step's outcomes that the CLI turns into exit codes.

Kept apart from steps/validate.py (which imports pandas and pyarrow) so that every command can
catch them without paying for those imports: a step's process starts ~0.2 s sooner.
"""

from __future__ import annotations


class ValidationFailed(RuntimeError):
    """The raw data broke the expectation suite; the message lists what failed."""


class NoNewData(RuntimeError):
    """No partition landed in the run's data interval: nothing to retrain on."""
