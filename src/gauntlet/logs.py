"""The one logger setup: plain lines on stderr that read well in an Airflow task log."""

from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str | None = None) -> None:
    level = level or os.environ.get("GAUNTLET_LOG_LEVEL", "INFO")
    root = logging.getLogger()
    if getattr(root, "_gauntlet_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    root.handlers[:] = [handler]
    root.setLevel(level)
    # boto and GX are chatty at INFO; their warnings still come through.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    root._gauntlet_configured = True  # type: ignore[attr-defined]


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
