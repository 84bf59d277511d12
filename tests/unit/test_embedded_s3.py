"""gauntlet.embedded_s3: moto's S3 server on a free loopback port, with this process pointed at it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from gauntlet import embedded_s3, storage


@pytest.fixture
def restore_session_s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Put the session's S3 settings and client back once a test has started a server of its own."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, os.environ[name])
    yield s3_endpoint
    storage.client.cache_clear()


def test_a_free_port_is_on_loopback_and_can_be_bound() -> None:
    port = embedded_s3.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nobody holds it after free_port returns


def test_the_server_serves_s3_and_the_previous_endpoint_comes_back(restore_session_s3: str) -> None:
    with embedded_s3.moto_server() as endpoint:
        assert endpoint.startswith("http://127.0.0.1:") and endpoint != restore_session_s3
        assert os.environ["AWS_ENDPOINT_URL"] == endpoint
        storage.ensure_bucket("embedded")
        storage.put_bytes("s3://embedded/a", b"x")
        assert storage.get_bytes("s3://embedded/a") == b"x"
    assert os.environ["AWS_ENDPOINT_URL"] == restore_session_s3
    port = int(endpoint.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()  # the server was stopped
