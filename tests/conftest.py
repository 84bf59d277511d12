"""Shared fixtures: a real S3-compatible server (moto's) on 127.0.0.1, and fresh buckets.

Every test that touches S3 speaks HTTP to that server through gauntlet.storage, exactly as the
pipeline does in production; nothing is mocked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testkit import ROOT

from gauntlet.embedded_s3 import moto_server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Start moto's S3 server on loopback for the whole session and point AWS settings at it."""
    os.environ["GAUNTLET_HOME"] = str(ROOT)
    with moto_server(credentials="testing") as endpoint:
        yield endpoint


@pytest.fixture
def store(s3_endpoint: str) -> str:
    """A fresh, empty bucket for one test."""
    from gauntlet import storage

    bucket = f"gauntlet-test-{uuid.uuid4().hex[:10]}"
    storage.ensure_bucket(bucket)
    return f"s3://{bucket}"


@pytest.fixture
def seeded_store(store: str) -> str:
    """A bucket with the demo's seven daily digits partitions (2026-11-01 .. 2026-11-07)."""
    import datetime as dt

    from gauntlet import demo

    demo.seed(store, "raw/digits", dt.date(2026, 11, 1), 7)
    return store


@pytest.fixture
def project_protocol() -> Iterator[Callable[[str], Path]]:
    """Unique paths in include/protocols (the only folder a run takes protocols from) for protocol
    files a test writes; they are removed after the test."""
    made: list[Path] = []

    def new(stem: str) -> Path:
        made.append(ROOT / "include" / "protocols" / f"test-{stem}-{uuid.uuid4().hex[:8]}.yaml")
        return made[-1]

    yield new
    for path in made:
        path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> dict[str, str]:
    """A throwaway AIRFLOW_HOME (SQLite) with the project's dags/ and plugins/, migrated once.

    Returns the environment to run `airflow` commands with.
    """
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "GAUNTLET_HOME": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env
