"""gauntlet.airflow.connection: S3 settings from an Airflow connection, for a step's environment."""

from __future__ import annotations

import json

import pytest

from gauntlet.airflow.connection import s3_environment


def test_no_connection_leaves_the_standard_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_GAUNTLET_TEST_NONE", raising=False)
    assert s3_environment("gauntlet_test_none") == {}


def test_a_connection_gives_keys_endpoint_region_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "aws",
        "login": "AKIDEXAMPLE",
        "password": "secret-value",
        "extra": {"endpoint_url": "http://s3.local:9000", "region_name": "eu-west-1", "aws_session_token": "tok"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_GAUNTLET_TEST_FULL", json.dumps(conn))
    assert s3_environment("gauntlet_test_full") == {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-value",
        "AWS_ENDPOINT_URL": "http://s3.local:9000",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_SESSION_TOKEN": "tok",
    }


def test_a_connection_without_login_sets_only_what_it_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "aws", "extra": {"endpoint_url": "http://s3.local:9000"}}
    monkeypatch.setenv("AIRFLOW_CONN_GAUNTLET_TEST_ENDPOINT", json.dumps(conn))
    assert s3_environment("gauntlet_test_endpoint") == {"AWS_ENDPOINT_URL": "http://s3.local:9000"}
