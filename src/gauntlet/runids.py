"""Run ids as they appear in S3 keys: an orchestrator's run id made safe for a key segment."""

from __future__ import annotations

import re


def safe_run_id(run_id: str) -> str:
    """Airflow run ids contain ':' and '+'; keep S3 keys to a portable character set."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("_")
