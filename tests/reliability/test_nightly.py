"""A hostile night, run through Airflow (`airflow dags test`): the S3 endpoint fails >= 10 % of
requests (5xx, dropped connections, lost responses), a Horovod rank dies mid-epoch, encryption at
rest is on, and the credentials are recognisable canaries (an Airflow connection plus the process
environment). The DAG must succeed, read nothing that is not committed, retry the train task into a
resume, and leak no secret into task logs, the metadata DB (XCom, rendered fields) or S3.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import pickle
import re
import secrets
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faulty_s3_proxy import FaultPlan, FaultyS3Proxy, Request
from testkit import ROOT

from gauntlet import demo, errors, storage
from gauntlet.runids import safe_run_id

LOGICAL_DATE = "2026-11-08T02:00:00+00:00"
FAULT_RATE = 0.15
KILL = "1:2:3"  # rank 1 dies in epoch 2, batch 3
CANARY = f"LEAKCANARY{secrets.token_hex(6).upper()}"
CANARIES = {f"{CANARY}CONNKEY", f"{CANARY}CONNSECRET", f"{CANARY}CONNTOKEN", f"{CANARY}ENVKEY", f"{CANARY}ENVSECRET"}


@pytest.fixture(scope="module")
def night(airflow_home: dict[str, str], s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    store = f"s3://gauntlet-night-{secrets.token_hex(5)}"
    demo.seed(store, "raw/digits", dt.date(2026, 11, 1), 7)
    proxy = FaultyS3Proxy(s3_endpoint, FaultPlan(rate=FAULT_RATE, seed=6)).start()
    marker = tmp_path_factory.mktemp("fault") / "fired"
    # The steps reach S3 only through the connection's endpoint (the proxy): the environment's own
    # endpoint is the server itself, so faults prove the connection's settings are the ones used.
    connection = {
        "conn_type": "aws",
        "login": f"{CANARY}CONNKEY",
        "password": f"{CANARY}CONNSECRET",
        "extra": {"endpoint_url": proxy.url, "region_name": "us-east-1", "aws_session_token": f"{CANARY}CONNTOKEN"},
    }
    env = {
        **airflow_home,
        "GAUNTLET_STORE": store,
        "AIRFLOW_CONN_GAUNTLET_S3": json.dumps(connection),
        "AWS_ACCESS_KEY_ID": f"{CANARY}ENVKEY",
        "AWS_SECRET_ACCESS_KEY": f"{CANARY}ENVSECRET",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "GAUNTLET_S3_SSE": "AES256",
        "GAUNTLET_FAULT_KILL": KILL,
        "GAUNTLET_FAULT_MARKER": str(marker),
        "GAUNTLET_GLOO_TIMEOUT_S": "20",
    }
    conf = {"model_kind": "mlp", "epochs": 3, "register_even_if_gate_fails": True}
    try:
        process = subprocess.run(
            ["airflow", "dags", "test", "gauntlet_nightly", LOGICAL_DATE, "-c", json.dumps(conf)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1500,
        )
    finally:
        proxy.stop()
    print("RELIABILITY storage faults:", proxy.summary())
    return {
        "store": store,
        "process": process,
        "proxy": proxy,
        "marker": marker,
        "home": Path(airflow_home["AIRFLOW_HOME"]),
    }


def _steps(night: dict[str, Any]) -> dict[str, Any]:
    runs = {o["key"].split("/")[1] for o in storage.list_objects(night["store"] + "/runs/")}
    [run] = runs
    return {
        step: storage.get_json(f"{night['store']}/runs/{run}/steps/{step}.json")
        for step in ("validate", "preprocess", "train", "evaluate", "register")
    }


def test_the_dag_succeeds_through_faulty_storage_and_a_dead_rank(night: dict[str, Any]) -> None:
    process = night["process"]
    assert process.returncode == 0, process.stdout[-4000:] + process.stderr[-4000:]
    steps = _steps(night)
    assert steps["register"]["registered"] is True
    summary = night["proxy"].summary()
    assert summary["fault_rate"] >= 0.10 and summary["faults"] >= 20, summary
    assert {"faults_5xx", "faults_drop", "faults_lost"} <= summary.keys()


def test_airflow_retried_the_train_task_into_a_resume(night: dict[str, Any]) -> None:
    assert night["marker"].exists(), "the rank was killed"
    # `airflow dags test` prints task logs instead of writing files: the tries are in the metadata DB.
    with _metadata_db(night) as db:
        # The step outputs live under runs/<safe run id>: find the Airflow run that wrote them.
        [run_dir] = {o["key"].split("/")[1] for o in storage.list_objects(night["store"] + "/runs/")}
        runs = [r for (r,) in db.execute("SELECT run_id FROM dag_run WHERE dag_id = 'gauntlet_nightly'")]
        [run_id] = [r for r in runs if safe_run_id(f"gauntlet_nightly__{r}") == run_dir]
        query = (
            "SELECT try_number, state FROM {} WHERE dag_id = 'gauntlet_nightly' AND run_id = ? AND task_id = 'train'"
        )
        final = db.execute(query.format("task_instance"), (run_id,)).fetchall()
        earlier = db.execute(query.format("task_instance_history"), (run_id,)).fetchall()
    assert final == [(2, "success")], final
    assert [t for t, _ in earlier] == [1] and earlier[0][1] in ("failed", "up_for_retry"), earlier
    assert "horovodrun exited with" in night["process"].stdout + night["process"].stderr
    record = storage.get_json(f"{_steps(night)['train']['experiment_uri']}/RECORD.json")
    assert record["resumed_from_epoch"] == 1
    assert [row["epoch"] for row in record["curve"]] == [1, 2, 3]


def _committed_prefix(key: str) -> str | None:
    parts = key.split("/")
    if parts[0] == "datasets" and len(parts) > 3:
        return "/".join(parts[:3])
    # evaluations/<protocol>/<experiment>/<against>/<evaluation key>/...
    if parts[0] == "evaluations" and len(parts) > 5:
        return "/".join(parts[:5])
    return None


def test_no_object_is_read_before_its_manifest_or_record_exists(night: dict[str, Any]) -> None:
    log: list[Request] = night["proxy"].log
    bucket = night["store"][5:]
    done: dict[str, float] = {}  # committed prefix (or experiment) -> when its manifest/record was written
    for r in log:
        if (
            r.method == "PUT"
            and r.bucket == bucket
            and r.status == 200
            and r.key.endswith(("/MANIFEST.json", "/RECORD.json"))
        ):
            done.setdefault(r.key.rsplit("/", 1)[0], r.completed)
    reads = [r for r in log if r.method == "GET" and r.bucket == bucket and r.key and r.status == 200]
    checked = 0
    for r in reads:
        prefix = _committed_prefix(r.key)
        if r.key.startswith("experiments/") and r.key.endswith("/model.pt"):
            prefix = r.key.rsplit("/", 1)[0]
        if prefix is None or r.key.endswith(("/MANIFEST.json", "/RECORD.json")):
            continue
        assert prefix in done and done[prefix] < r.arrived, f"{r.key} was read before {prefix} was committed"
        checked += 1
    print(f"RELIABILITY {checked} reads of committed objects, every one after its manifest or record")
    assert checked >= 4
    assert {r.key.split("/")[0] for r in reads if _committed_prefix(r.key)} == {"datasets", "evaluations"}


def test_outputs_are_encrypted_at_rest(night: dict[str, Any]) -> None:
    steps = _steps(night)
    for uri in (
        f"{steps['preprocess']['dataset_uri']}/MANIFEST.json",
        f"{steps['train']['experiment_uri']}/model.pt",
        steps["evaluate"]["report_uri"],
    ):
        loc = storage.S3Uri.parse(uri)
        assert storage.client().head_object(Bucket=loc.bucket, Key=loc.key)["ServerSideEncryption"] == "AES256"


def test_no_secret_leaks_into_logs_xcom_or_s3(night: dict[str, Any]) -> None:
    pattern = re.compile("|".join(sorted(CANARIES)).encode())
    places = {"dags test output": (night["process"].stdout + night["process"].stderr).encode()}
    scanned = 0
    for path in night["home"].rglob("*"):
        if path.is_file():  # task logs if any, config, and the DB files themselves
            places[str(path)] = path.read_bytes()
            scanned += 1
    with _metadata_db(night) as db:  # every row of every table (XCom, rendered fields, conf), WAL included
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')
            columns = [c[0] for c in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    data = value if isinstance(value, bytes) else str(value).encode()
                    places[f"db {table}.{column}"] = places.get(f"db {table}.{column}", b"") + data + b"\n"
    assert "db xcom.value" in places
    objects = 0
    for obj in storage.list_objects(night["store"] + "/"):
        places[obj["uri"]] = storage.get_bytes(obj["uri"])
        objects += 1
    leaks = sorted({(where, hit.decode()) for where, data in places.items() for hit in pattern.findall(data)})
    print(
        f"RELIABILITY secret scan: {scanned} files under AIRFLOW_HOME, every DB row, {objects} S3 objects "
        f"and the run's output searched for {len(CANARIES)} canaries: {len(leaks)} hits"
    )
    assert not leaks, f"credentials leaked (a presigned URL carries X-Amz-Credential and X-Amz-Security-Token): {leaks}"
    assert os.environ.get("AWS_SECRET_ACCESS_KEY") not in CANARIES


@contextlib.contextmanager
def _metadata_db(night: dict[str, Any]) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{night['home'] / 'airflow.db'}?mode=ro", uri=True)
    try:
        yield db
    finally:
        db.close()


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_tampered_model_is_refused_and_never_unpickled(night: dict[str, Any], tmp_path: Path) -> None:
    import torch

    from gauntlet import registry
    from gauntlet.training.model import load_bundle

    version = registry.get_version(f"{night['store']}/registry/digits-classifier", _steps(night)["register"]["version"])
    marker = tmp_path / "exploited"
    payload = io.BytesIO()
    torch.save({"state_dict": _Exploit(marker), "spec": {}}, payload)  # a model file carrying code
    storage.put_bytes(version["model_uri"], payload.getvalue())
    with pytest.raises(errors.IntegrityError):
        registry.load_model_bytes(version)
    with pytest.raises(pickle.UnpicklingError):  # even bytes that got past the hash: weights_only refuses
        load_bundle(storage.get_bytes(version["model_uri"]))
    assert not marker.exists()
    keys = [o["key"] for o in storage.list_objects(night["store"] + "/")]
    assert not [k for k in keys if k.endswith((".pkl", ".pickle", ".joblib"))]
    assert any(k.endswith("/preprocessor.json") for k in keys)
