"""A fault-injecting HTTP proxy in front of an S3 server, for reliability tests.

Clients point AWS_ENDPOINT_URL at the proxy. It forwards every request to the upstream server and,
with a seeded probability, injects one of the faults S3 clients meet in production instead:

- `5xx`: answer 500 InternalError or 503 SlowDown without forwarding (the server never saw it);
- `drop`: close the connection without an answer, before forwarding;
- `lost`: forward a GET/HEAD, then drop the connection instead of relaying the answer;
- `lost_put`: forward a PUT (the server applies it), then drop the connection instead of relaying
  the answer, so the client retries a write that already happened (a conditional one then gets 412).
  Opt-in through `kinds`: the default mix leaves it out.

Every request is logged (method, key, status, fault, arrival and completion times), so a test can
check what was read when, and the counters say how many faults were injected.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
_ERRORS = [
    (500, "InternalError", "We encountered an internal error. Please try again."),
    (503, "SlowDown", "Please reduce your request rate."),
]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hang up on dropped connections; that is the point, not an error


@dataclass
class Request:
    method: str
    bucket: str
    key: str
    query: str
    arrived: float
    completed: float = 0.0
    status: int = 0  # 0: no answer reached the client
    fault: str = ""
    upstream_status: int = 0  # what the server answered, relayed or not (0: never forwarded)


@dataclass
class FaultPlan:
    """Which requests may fail and how often; `only` narrows faults to matching requests."""

    rate: float = 0.15
    seed: int = 0
    only: Callable[[Request], bool] | None = None
    kinds: tuple[str, ...] = ("5xx", "drop", "lost")


@dataclass
class FaultyS3Proxy:
    upstream: str
    plan: FaultPlan = field(default_factory=FaultPlan)
    log: list[Request] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.plan.seed)
        self._lock = threading.Lock()
        upstream = urlsplit(self.upstream)
        self._upstream_host, self._upstream_port = upstream.hostname or "127.0.0.1", upstream.port or 80
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-s3-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultyS3Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def choose_fault(self, request: Request) -> str:
        with self._lock:
            roll, pick = self._random.random(), self._random.random()
        if (self.plan.only is not None and not self.plan.only(request)) or roll >= self.plan.rate:
            return ""
        kinds = [k for k in self.plan.kinds if _fits(k, request.method)]
        return kinds[int(pick * len(kinds))] if kinds else ""

    def record(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)
            if request.fault:
                self.injected[request.fault] += 1

    def summary(self) -> dict[str, float]:
        with self._lock:
            total, faults = len(self.log), sum(self.injected.values())
            return {
                "requests": total,
                "faults": faults,
                "fault_rate": faults / total if total else 0.0,
                **{f"faults_{kind}": n for kind, n in sorted(self.injected.items())},
            }

    def forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=120)
        try:
            connection.request(
                method, target, body=body if body or method in ("PUT", "POST") else None, headers=dict(headers)
            )
            response = connection.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            connection.close()


def _fits(kind: str, method: str) -> bool:
    if kind == "lost":
        return method in ("GET", "HEAD")
    if kind == "lost_put":
        return method == "PUT"
    return True


def _handler_for(proxy: FaultyS3Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # the proxy's own log is the record

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
            request = Request(self.command, bucket, key, parts.query, time.monotonic())
            body = self._body()
            request.fault = proxy.choose_fault(request)
            try:
                if request.fault == "drop":
                    self._drop()
                    return
                if request.fault == "5xx":
                    status, code, message = _ERRORS[len(proxy.log) % len(_ERRORS)]
                    payload = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                        f"<Message>{message}</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    request.status = status
                    return
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                    headers.append(("Content-Length", str(len(body))))
                status, reason, response_headers, data = proxy.forward(self.command, self.path, headers, body)
                request.upstream_status = status
                if request.fault in ("lost", "lost_put"):
                    self._drop()
                    return
                self.send_response(status, reason)
                for name, value in response_headers:
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                content_length = next((v for k, v in response_headers if k.lower() == "content-length"), None)
                self.send_header(
                    "Content-Length", content_length if self.command == "HEAD" and content_length else str(len(data))
                )
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                request.status = status
            finally:
                request.completed = time.monotonic()
                proxy.record(request)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    return Handler
