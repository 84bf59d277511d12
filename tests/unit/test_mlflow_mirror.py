"""gauntlet.mlflow_mirror: what a record becomes in MLflow, and that a mirror failure only warns.

The mirror against a real `mlflow server` is tests/e2e/test_mlflow_mirror.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from gauntlet import mlflow_mirror
from gauntlet.airflow.connection import mlflow_environment
from gauntlet.errors import MirrorError

RECORD = {
    "key": "k" * 64,
    "uri": "s3://store/experiments/" + "k" * 64,
    "started": "2026-11-08T01:00:00+00:00",
    "finished": "2026-11-08T01:05:00+00:00",
    "dataset_version": "d1",
    "dataset_uri": "s3://store/datasets/digits/d1",
    "protocol_id": "p1",
    "code_version": "c1",
    "model_uri": "s3://store/experiments/k/model.pt",
    "params": {"model": {"kind": "mlp", "hidden": [32]}, "epochs": 2, "lr": 0.1, "patience": None},
    "curve": [
        {"epoch": 1, "step": 900, "train_loss": 1.5, "dev_loss": 1.2, "dev_error": 0.3},
        {"epoch": 2, "step": 1800, "train_loss": 0.9, "dev_loss": float("nan"), "dev_error": 0.2},
    ],
    "wall_seconds": 12.5,
    "cpu_seconds": 20.0,
    "cost_usd": 0.0001,
}


def test_params_are_flat_text_with_nested_keys_dotted() -> None:
    params = mlflow_mirror.run_params({**RECORD, "params": {**RECORD["params"], "long": "x" * 7000}})
    assert params["model.kind"] == "mlp" and params["model.hidden"] == "[32]"
    assert params["epochs"] == "2" and params["lr"] == "0.1" and params["patience"] == "null"
    assert len(params["long"]) == 6000  # MLflow refuses a longer param value


def test_curve_metrics_sit_at_their_epoch_with_timestamps_from_the_record() -> None:
    metrics = mlflow_mirror.run_metrics(RECORD)
    by_key = {(m["key"], m["step"]): m["value"] for m in metrics}
    assert by_key[("dev_loss", 1)] == 1.2 and by_key[("train_loss", 2)] == 0.9 and by_key[("dev_error", 2)] == 0.2
    assert ("dev_loss", 2) not in by_key  # NaN has no JSON form in MLflow's API
    assert not {m["key"] for m in metrics} & {"epoch", "step"}  # axes, not metrics
    assert by_key[("wall_seconds", 0)] == 12.5 and by_key[("cost_usd", 0)] == 0.0001
    # Logged again, the same entries (MLflow keeps one copy of an identical metric entry).
    assert mlflow_mirror.run_metrics(RECORD) == metrics
    finished = dt.datetime(2026, 11, 8, 1, 5, tzinfo=dt.UTC)
    assert {m["timestamp"] for m in metrics} == {int(finished.timestamp() * 1000)}


def test_tags_name_the_experiment_dataset_and_protocol() -> None:
    tags = mlflow_mirror.run_tags(RECORD)
    assert tags[mlflow_mirror.KEY_TAG] == RECORD["key"]
    assert tags["gauntlet.dataset_version"] == "d1" and tags["gauntlet.protocol_id"] == "p1"
    assert tags["gauntlet.record_uri"].endswith("/RECORD.json")
    assert "gauntlet.off_protocol" not in tags  # empty values are left out


def test_batches_keep_to_mlflows_limits_per_request() -> None:
    params = {f"p{i}": "v" for i in range(250)}
    metrics = [{"key": "m", "value": 1.0, "timestamp": 0, "step": i} for i in range(2500)]
    batches = list(mlflow_mirror._batches(params, metrics, {"t": "v"}))
    assert all(len(b["params"]) <= 100 and len(b["tags"]) <= 100 and len(b["metrics"]) <= 1000 for b in batches)
    assert sum(len(b["params"]) for b in batches) == 250 and sum(len(b["metrics"]) for b in batches) == 2500
    assert sum(len(b["tags"]) for b in batches) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # free again once closed: nothing listens there


def test_an_unreachable_server_is_a_warning_naming_what_was_missed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:secret@127.0.0.1:{_closed_port()}")
    with caplog.at_level(logging.WARNING, logger="gauntlet.mlflow"):
        mlflow_mirror.mirror_experiment(RECORD, "digits")  # returns: never raises
    (warning,) = [r.getMessage() for r in caplog.records]
    assert f"experiment {RECORD['key']} not mirrored to http://127.0.0.1:" in warning
    assert "back-fills" in warning and "secret" not in warning


def test_a_non_http_tracking_uri_is_a_warning_saying_what_the_mirror_speaks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:///tmp/mlruns")
    with caplog.at_level(logging.WARNING, logger="gauntlet.mlflow"):
        mlflow_mirror.mirror_evaluation("s3://store/evaluations/x/report.json")
    assert "must be an http(s) tracking server" in caplog.text


def test_no_tracking_uri_no_mirror(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with caplog.at_level(logging.DEBUG, logger="gauntlet.mlflow"):
        mlflow_mirror.mirror_registration("s3://no-such-store", "digits", "s3://no-such-store/report.json")
    assert caplog.text == ""  # nothing read from the store, nothing said


def test_credentials_come_from_mlflows_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    basic = mlflow_mirror.Client.from_environment("http://mlflow.local:5000")
    assert basic.headers["Authorization"] == "Basic " + base64.b64encode(b"ann:pw").decode()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    assert mlflow_mirror.Client.from_environment("https://mlflow.local").headers["Authorization"] == "Bearer tok"


class _Answers(BaseHTTPRequestHandler):
    """Answers as MLflow does when an experiment is missing, then exists (a lost creation race)."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path.split('?')[0]}")
        if len([s for s in self.seen if s.startswith("GET")]) == 1:
            self._answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Could not find experiment"})
        else:
            self._answer(200, {"experiment": {"experiment_id": "7"}})

    def do_POST(self) -> None:
        self.seen.append(f"POST {self.path}")
        self._answer(
            400, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": "Experiment(name=digits) already exists"}
        )

    def _answer(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answers() -> Iterator[str]:
    _Answers.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_experiment_created_by_another_writer_meanwhile_is_used(answers: str) -> None:
    client = mlflow_mirror.Client.from_environment(answers)
    assert mlflow_mirror.experiment_id(client, "digits") == "7"
    assert _Answers.seen == [
        "GET /api/2.0/mlflow/experiments/get-by-name",
        "POST /api/2.0/mlflow/experiments/create",
        "GET /api/2.0/mlflow/experiments/get-by-name",
    ]
    with pytest.raises(MirrorError) as refused:
        client.call("POST", "runs", "create", {"experiment_id": "7"})
    assert refused.value.error_code == "RESOURCE_ALREADY_EXISTS" and "400" in str(refused.value)


def test_the_airflow_connection_becomes_mlflows_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_GAUNTLET_MLFLOW_NONE", raising=False)
    assert mlflow_environment("gauntlet_mlflow_none") == {}
    monkeypatch.setenv("AIRFLOW_CONN_GAUNTLET_MLFLOW_URI", "http://ann:pw@mlflow.local:5000")
    assert mlflow_environment("gauntlet_mlflow_uri") == {
        "MLFLOW_TRACKING_URI": "http://mlflow.local:5000",
        "MLFLOW_TRACKING_USERNAME": "ann",
        "MLFLOW_TRACKING_PASSWORD": "pw",
    }
    conn = {"conn_type": "http", "extra": {"tracking_uri": "https://mlflow.example/team", "token": "tok"}}
    monkeypatch.setenv("AIRFLOW_CONN_GAUNTLET_MLFLOW_JSON", json.dumps(conn))
    assert mlflow_environment("gauntlet_mlflow_json") == {
        "MLFLOW_TRACKING_URI": "https://mlflow.example/team",
        "MLFLOW_TRACKING_TOKEN": "tok",
    }
