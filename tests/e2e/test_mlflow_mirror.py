"""The MLflow mirror against a real `mlflow server` (SQLite backend, its own virtualenv, on loopback).

The CLI chain runs with MLFLOW_TRACKING_URI pointing at it; everything is read back through MLflow's
REST API. A repeat mirrors nothing twice; with the server stopped every step still succeeds and
warns; once it is back, the next run back-fills the run, the model version and the champion alias.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipeline_support import MLP, build_dataset, log_of, new_store, seed
from testkit import ROOT, run_cli

from gauntlet import layout, registry

pytestmark = pytest.mark.slow
SCRIPT = ROOT / "scripts" / "mlflow_server.sh"
MODEL = "mirror-digits"
PROTOCOL_NAME = "mlflow-mirror-digits"


class MlflowServer:
    """`scripts/mlflow_server.sh serve` in its own process group, so stop() ends it and its workers."""

    def __init__(self, port: int, data: Path) -> None:
        self.port, self.data = port, data
        self.uri = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.data / "server.log").open("ab")
        self.process = subprocess.Popen(
            ["bash", str(SCRIPT), "serve", str(self.port), str(self.data)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError("mlflow server did not start:\n" + (self.data / "server.log").read_text()[-3000:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    # Builds .venv-mlflow once (about a minute and a half cold; a stamp makes it instant after).
    built = subprocess.run(["bash", str(SCRIPT), "install"], capture_output=True, text=True, timeout=1200)
    if built.returncode != 0:
        pytest.skip(
            f"the MLflow virtualenv could not be built (scripts/mlflow_server.sh install):\n{built.stderr[-1500:]}"
        )
    server = MlflowServer(_free_port(), tmp_path_factory.mktemp("mlflow"))
    server.start()
    yield server
    server.stop()


def api(server: MlflowServer, method: str, endpoint: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
    url = f"{server.uri}/api/2.0/mlflow/{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"{}")


def runs_by_key(server: MlflowServer) -> dict[str, list[dict[str, Any]]]:
    experiment = api(server, "GET", "experiments/get-by-name", experiment_name=PROTOCOL_NAME)["experiment"]
    runs = api(server, "POST", "runs/search", {"experiment_ids": [experiment["experiment_id"]]}).get("runs", [])
    out: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
        out.setdefault(tags["gauntlet.experiment_key"], []).append({**run, "tags": tags})
    return out


def model_versions(server: MlflowServer) -> dict[str, dict[str, Any]]:
    """gauntlet version -> MLflow model version."""
    found = api(server, "GET", "model-versions/search", filter=f"name='{MODEL}'")["model_versions"]
    return {next(t["value"] for t in v["tags"] if t["key"] == "gauntlet.version"): v for v in found}


def champion_alias(server: MlflowServer) -> str | None:
    model = api(server, "GET", "registered-models/get", name=MODEL)["registered_model"]
    return next((a["version"] for a in model.get("aliases", []) if a["alias"] == "champion"), None)


def test_runs_versions_and_champion_are_mirrored_idempotently_and_back_filled(
    s3_endpoint: str, mlflow_server: MlflowServer, project_protocol: Callable[[str], Path]
) -> None:
    del s3_endpoint
    raw = yaml.safe_load((ROOT / "include/protocols/digits-v1.yaml").read_text())
    raw["name"] = PROTOCOL_NAME
    raw["training"]["epochs"] = 3  # the protocol's own budget, so the runs may be promoted
    raw["baseline"]["C"] = 0.0001  # a weak baseline: the first candidate passes the gate against it
    protocol_file = project_protocol("mlflow")
    protocol_file.write_text(yaml.safe_dump(raw))
    options = ["--protocol", str(protocol_file), "--set", f"model.name={MODEL}", *MLP]
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri}
    store = new_store()
    seed(store)
    dataset = build_dataset(store, *options, run_id="m1")
    reg = layout.registry_root(store, MODEL)

    def chain(run_id: str, *extra: str, force: bool = False) -> dict[str, dict[str, Any]]:
        steps: dict[str, dict[str, Any]] = {}
        logs: dict[str, str] = {}
        process, steps["train"] = run_cli(store, *options, *extra, "train", "--dataset", dataset, env=env)
        logs["train"] = log_of(process)
        process, steps["evaluate"] = run_cli(
            store, *options, *extra, "evaluate", "--experiment", steps["train"]["experiment_uri"], env=env
        )
        logs["evaluate"] = log_of(process)
        report = steps["evaluate"]["report_uri"]
        args = ["--run-id", run_id, *options, *extra, "register", "--report", report, *(["--force"] if force else [])]
        process, steps["register"] = run_cli(store, *args, env=env)
        logs["register"] = log_of(process)
        steps["logs"] = logs
        return steps

    # 1. One nightly chain: one run with the key, params, per-epoch metrics, the report; one version, champion.
    first = chain("m1")
    key = first["train"]["key"]
    assert first["register"]["registered"] and first["register"]["champion"], first["register"]
    runs = runs_by_key(mlflow_server)
    assert list(runs) == [key] and len(runs[key]) == 1, runs
    run = runs[key][0]
    assert run["info"]["status"] == "FINISHED"
    assert run["tags"]["gauntlet.protocol_id"] and run["tags"]["gauntlet.dataset_version"] in dataset
    assert run["tags"]["gauntlet.gate"] == "passed"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["epochs"] == "3" and params["model.kind"] == "mlp" and params["model.hidden"] == "[32]", params
    history = api(mlflow_server, "GET", "metrics/get-history", run_id=run["info"]["run_id"], metric_key="dev_loss")
    assert sorted(m["step"] for m in history["metrics"]) == [1, 2, 3]
    assert any(m["key"] == "test_error_rate" for m in run["data"]["metrics"])
    artifacts = api(mlflow_server, "GET", "artifacts/list", run_id=run["info"]["run_id"], path="gauntlet")
    assert {f["path"] for f in artifacts["files"]} == {"gauntlet/RECORD.json", "gauntlet/curve.json"}
    evaluations = api(mlflow_server, "GET", "artifacts/list", run_id=run["info"]["run_id"], path="evaluation")
    against = evaluations["files"][0]["path"]
    report_folder = api(mlflow_server, "GET", "artifacts/list", run_id=run["info"]["run_id"], path=against)["files"]
    (evaluation_folder,) = [f["path"] for f in report_folder]
    names = {
        f["path"].rsplit("/", 1)[-1]
        for f in api(mlflow_server, "GET", "artifacts/list", run_id=run["info"]["run_id"], path=evaluation_folder)[
            "files"
        ]
    }
    assert {"report.html", "report.json", "report.md"} <= names, names
    versions = model_versions(mlflow_server)
    assert list(versions) == ["1"] and versions["1"]["run_id"] == run["info"]["run_id"]
    assert champion_alias(mlflow_server) == versions["1"]["version"]

    # 2. The same chain again (a re-run, a backfill of the night): nothing new in MLflow.
    chain("m1-again")
    assert [len(r) for r in runs_by_key(mlflow_server).values()] == [1]
    assert list(model_versions(mlflow_server)) == ["1"]

    # 3. Server down: a new experiment trains, is evaluated and registered; each step warns and succeeds.
    mlflow_server.stop()
    down = chain("m2", "--set", "training.lr=0.05", force=True)
    for step in ("train", "evaluate", "register"):
        assert "MLflow mirror:" in down["logs"][step] and "back-fills" in down["logs"][step], down["logs"][step][-2000:]
    second = down["register"]["version"]
    if not down["register"]["champion"]:
        run_cli(store, *options, "registry", "promote", str(second), "--reason", "test: champion moved while down")
    assert registry.get_alias(reg)[0]["version"] == second

    # 4. Server back: the next run back-fills. Train (a cache hit) brings the missed run, register
    #    (a retry of the night's) the evaluation, the version and the alias move.
    mlflow_server.start()
    run_cli(store, *options, "--set", "training.lr=0.05", "train", "--dataset", dataset, env=env)
    runs = runs_by_key(mlflow_server)
    assert set(runs) == {key, down["train"]["key"]} and all(len(r) == 1 for r in runs.values()), runs
    run_cli(store, "--run-id", "m2", *options, "register", "--report", down["evaluate"]["report_uri"], env=env)
    back_filled = runs_by_key(mlflow_server)[down["train"]["key"]]
    assert len(back_filled) == 1 and back_filled[0]["tags"]["gauntlet.report_uri"] == down["evaluate"]["report_uri"]
    versions = model_versions(mlflow_server)
    assert set(versions) == {"1", str(second)}
    assert versions[str(second)]["run_id"] == back_filled[0]["info"]["run_id"]
    assert champion_alias(mlflow_server) == versions[str(second)]["version"]
