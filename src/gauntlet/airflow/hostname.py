"""The name a task instance records as its host (Airflow's `[core] hostname_callable`).

Several Celery workers on one machine would all record the machine's name; GAUNTLET_WORKER_HOSTNAME
(set per worker by scripts/stack.sh) tells them apart in the UI and the REST API. Unset, it is the
fully qualified name Airflow records by default.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """GAUNTLET_WORKER_HOSTNAME if set, else this machine's fully qualified name."""
    return os.environ.get("GAUNTLET_WORKER_HOSTNAME") or socket.getfqdn()
