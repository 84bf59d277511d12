"""The local stack as the tests' Airflow: `scripts/stack.sh up` on a temporary AIRFLOW_HOME and free
ports, once per session, and `scripts/stack.sh down` after."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from stack_support import ROOT, Stack, base_env, free_port


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stack: tests against a running local Airflow stack (scripts/stack.sh)")


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("stack-home")
    password = uuid.uuid4().hex[:12]
    env = {
        **base_env(),
        "AIRFLOW_HOME": str(home),
        "GAUNTLET_API_PORT": str(free_port()),
        "GAUNTLET_S3_PORT": str(free_port()),
        "GAUNTLET_STORE": "s3://gauntlet-stack",
        "GAUNTLET_ADMIN_PASSWORD": password,
    }
    script = ROOT / "scripts" / "stack.sh"
    up = subprocess.run([str(script), "up"], capture_output=True, text=True, env=env, timeout=600)
    try:
        assert up.returncode == 0, f"stack up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        assert f"password: {password}" in up.stdout, "up must print how to log in"
        stack = Stack.from_up(up.stdout, home, password, "s3://gauntlet-stack")
        stack.login()
        yield stack
    finally:
        down = subprocess.run([str(script), "down"], capture_output=True, text=True, env=env, timeout=180)
        print(down.stderr)
