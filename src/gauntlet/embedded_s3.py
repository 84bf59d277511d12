"""The embedded S3-compatible server: moto's, on a free loopback port, for tests and benchmarks.

It binds 127.0.0.1 (moto's default is every interface) and is spoken to over HTTP through
gauntlet.storage like any S3; `make demo` and `make up` start the same server from their scripts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server(credentials: str = "embedded", start_timeout_s: float = 30) -> Iterator[str]:
    """Run moto's server while the block runs, with the AWS settings of this process pointing at it.

    Yields the endpoint URL. The credentials are placeholders moto accepts; the previous
    AWS_ENDPOINT_URL is put back afterwards.
    """
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    previous = os.environ.get("AWS_ENDPOINT_URL")
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start on 127.0.0.1:{port}") from None
                time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}"
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID=credentials,
            AWS_SECRET_ACCESS_KEY=credentials,
            AWS_DEFAULT_REGION="us-east-1",
        )
        from gauntlet import storage

        storage.client.cache_clear()  # a client made earlier would still point elsewhere
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
        if previous is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = previous
