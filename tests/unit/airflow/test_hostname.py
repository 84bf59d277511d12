"""gauntlet.airflow.hostname: the host name a task instance records."""

from __future__ import annotations

import socket

import pytest

from gauntlet.airflow.hostname import worker_hostname


def test_a_named_worker_records_its_own_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_WORKER_HOSTNAME", "worker-2")
    assert worker_hostname() == "worker-2"


def test_without_a_name_it_is_the_machine_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAUNTLET_WORKER_HOSTNAME", raising=False)
    assert worker_hostname() == socket.getfqdn()


def test_airflow_loads_it_as_its_hostname_callable(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.utils.net import get_hostname

    monkeypatch.setenv("AIRFLOW__CORE__HOSTNAME_CALLABLE", "gauntlet.airflow.hostname.worker_hostname")
    monkeypatch.setenv("GAUNTLET_WORKER_HOSTNAME", "worker-1")
    assert get_hostname() == "worker-1"
