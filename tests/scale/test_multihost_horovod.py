"""Horovod across two hosts: two containers from the project's image on one Docker network, no shared
filesystem, S3 only (moto's server on the network's gateway).

The launcher container runs the train step as an MPIJob launcher does: `horovodrun -H a:1,b:1` over
ssh, with a key pair made for this module (never in the image) mounted into both containers, and the
worker container running the image's non-root sshd (`gauntlet-sshd`) on a high port. Gloo speaks TCP
on eth0. The single-host run to compare with is the same image in one container (`-H localhost:2`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stack_support import free_port
from testkit import ROOT, run_cli

from gauntlet.contract import EXIT_FAILED, parse_outputs

pytestmark = pytest.mark.scale

IMAGE = os.environ.get("GAUNTLET_MULTIHOST_IMAGE", "gauntlet:cpu")
SSH_PORT = 2222
KEYS = "/run/secrets/gauntlet-ssh"
EPOCHS = 3
SETTINGS = ["--set", "model.kind=mlp", "--set", f"training.epochs={EPOCHS}", "--set", "training.workers=2"]
FREEZE_RANK, FREEZE_EPOCH, FREEZE_BATCH = 1, 2, 2
GLOO_TIMEOUT_S = 20


@dataclass
class Cluster:
    network: str
    label: str
    endpoint: str  # moto's S3 server, reachable from the host and from the containers
    keys: Path
    dataset_store: str
    dataset_uri: str
    started: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def name(self, role: str) -> str:
        return f"{self.label}-{role}-{uuid.uuid4().hex[:6]}"

    def _common(self, name: str) -> list[str]:
        self.started.append(name)
        return [
            "--name", name, "--hostname", name, "--network", self.network, "--label", f"gauntlet.multihost={self.label}",
            "-v", f"{self.keys}:{KEYS}:ro",
        ]  # fmt: skip

    def start_worker(self, name: str) -> None:
        """A worker host: the image's sshd as uid 10001 on SSH_PORT, with the run's public key mounted."""
        subprocess.run(
            ["docker", "run", "-d", *self._common(name), "-e", f"GAUNTLET_SSH_AUTHORIZED_KEYS={KEYS}/authorized_keys",
             "-e", f"GAUNTLET_HOROVOD_SSH_PORT={SSH_PORT}", "--entrypoint", "gauntlet-sshd", IMAGE],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while "Server listening" not in docker_logs(name):
            assert time.monotonic() < deadline, f"sshd in {name} did not start:\n{docker_logs(name)}"
            time.sleep(0.3)

    def train(
        self, name: str, store: str, workers: list[str], extra: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """The train step in a launcher container `name`; with `workers`, its ranks span those hosts too."""
        across = {
            "GAUNTLET_HOROVOD_HOSTS": ",".join(f"{host}:1" for host in [name, *workers]),
            "GAUNTLET_HOROVOD_SSH_PORT": str(SSH_PORT),
            "GAUNTLET_HOROVOD_SSH_IDENTITY": f"{KEYS}/id_ed25519",
            "GAUNTLET_HOROVOD_IFACE": "eth0",
        }
        env = {
            **self.env(),
            "GAUNTLET_GLOO_TIMEOUT_S": str(GLOO_TIMEOUT_S),
            **(across if workers else {}),
            **(extra or {}),
        }
        return subprocess.Popen(
            ["docker", "run", "--rm", *self._common(name), *(f"-e{k}={v}" for k, v in env.items()), IMAGE,
             "--store", store, *SETTINGS, "--run-id", name, "train", "--dataset", self.dataset_uri],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def new_store(self) -> str:
        """A fresh bucket holding a copy of the prepared dataset (same version, so the same experiment key)."""
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        bucket, source = f"gauntlet-mh-{uuid.uuid4().hex[:10]}", self.dataset_store.removeprefix("s3://")
        s3.create_bucket(Bucket=bucket)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source):
            for item in page.get("Contents", []):
                s3.copy_object(Bucket=bucket, Key=item["Key"], CopySource={"Bucket": source, "Key": item["Key"]})
        return f"s3://{bucket}"


def docker_logs(name: str) -> str:
    found = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=30)
    return found.stdout + found.stderr


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


def s3_json(cluster: Cluster, uri: str) -> Any:
    return json.loads(s3_bytes(cluster, uri))


def s3_bytes(cluster: Cluster, uri: str) -> bytes:
    import boto3

    s3 = boto3.client("s3", endpoint_url=cluster.endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def record_of(cluster: Cluster, outputs: dict[str, Any]) -> dict[str, Any]:
    return dict(s3_json(cluster, f"{outputs['experiment_uri']}/RECORD.json"))


def parameters(cluster: Cluster, record: dict[str, Any]) -> dict[str, np.ndarray]:
    from gauntlet.training.model import load_bundle

    model = load_bundle(s3_bytes(cluster, record["model_uri"]))
    return {name: tensor.detach().numpy().copy() for name, tensor in model.state_dict().items()}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("docker") is None and shutil.which("apt-get") is None:
        pytest.skip("needs docker (or apt-get to install it)")
    started = time.monotonic()
    build = subprocess.run(
        ["bash", "scripts/ci/multihost.sh", IMAGE], cwd=ROOT, capture_output=True, text=True, timeout=3600
    )
    assert build.returncode == 0, build.stderr[-3000:]
    print(f"\nmultihost: image {IMAGE} ready in {time.monotonic() - started:.1f}s")
    label = f"gmh{uuid.uuid4().hex[:6]}"
    subprocess.run(["docker", "network", "create", label], check=True, capture_output=True, timeout=60)
    gateway = subprocess.run(
        ["docker", "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", label],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    keys = tmp_path_factory.mktemp("ssh")
    # The run's key pair: made here, handed to both containers by a read-only mount, owned by the
    # image's uid (ssh refuses a private key another user could read).
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", label, "-f", str(keys / "id_ed25519")], check=True
    )
    shutil.copy(keys / "id_ed25519.pub", keys / "authorized_keys")
    for path in [keys, *keys.iterdir()]:
        os.chown(path, 10001, 10001)
    port = free_port()
    moto = subprocess.Popen(
        [str(ROOT / ".venv/bin/moto_server"), "-H", gateway, "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    cluster = Cluster(label, label, f"http://{gateway}:{port}", keys, "", "")
    try:
        env = cluster.env()
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((gateway, port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and moto.poll() is None, "moto did not start on the gateway"
                time.sleep(0.3)
        store = f"s3://gauntlet-mh-data-{uuid.uuid4().hex[:8]}"
        seed = "import datetime as dt, sys; from gauntlet import demo, storage; "
        seed += "storage.ensure_bucket(sys.argv[1][5:]); demo.seed(sys.argv[1], 'raw/digits', dt.date(2026, 11, 1), 7)"
        subprocess.run(
            [str(ROOT / ".venv/bin/python"), "-c", seed, store], check=True, cwd=ROOT, env={**os.environ, **env}
        )
        run_cli(store, *SETTINGS, "--run-id", "mh", "validate", "--start", "2026-11-07", "--end", "2026-11-08", env=env)
        _, dataset = run_cli(
            store, *SETTINGS, "--run-id", "mh", "preprocess", "--validation", f"{store}/runs/mh/validation/result.json",
            env=env,
        )  # fmt: skip
        cluster.dataset_store, cluster.dataset_uri = store, str(dataset["dataset_uri"])
        print(f"multihost: network {label}, S3 at {cluster.endpoint}, ready in {time.monotonic() - started:.1f}s")
        yield cluster
    finally:
        moto.terminate()
        moto.wait(timeout=10)
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=gauntlet.multihost={label}"],
                             capture_output=True, text=True).stdout.split()  # fmt: skip
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        subprocess.run(["docker", "network", "rm", label], capture_output=True)


def test_two_hosts_train_the_single_host_model_under_the_same_key(cluster: Cluster) -> None:
    worker, launcher = cluster.name("b"), cluster.name("a")
    cluster.start_worker(worker)
    started = time.monotonic()
    code, log = finish(cluster.train(launcher, cluster.new_store(), [worker]))
    multi_s = time.monotonic() - started
    assert code == 0, log[-4000:]
    multi = record_of(cluster, parse_outputs(log) or {})
    # Each rank named the host it ran on, from inside its own container.
    assert multi["topology"]["rank_hosts"] == [launcher, worker], multi["topology"]
    assert multi["topology"]["hosts"] == [{"host": launcher, "slots": 1}, {"host": worker, "slots": 1}]
    assert "[rank 1] " in log and f"rank 1 of 2 on host {worker}" in log
    assert "Accepted publickey for gauntlet" in docker_logs(worker)  # the launcher came in over ssh

    started = time.monotonic()
    code, single_log = finish(cluster.train(cluster.name("single"), cluster.new_store(), []))
    single_s = time.monotonic() - started
    assert code == 0, single_log[-4000:]
    single = record_of(cluster, parse_outputs(single_log) or {})
    assert single["topology"]["placement"] == "local" and single["topology"]["distinct_hosts"] == 1

    assert multi["key"] == single["key"] and multi["key_parts"] == single["key_parts"]
    ours, theirs = parameters(cluster, multi), parameters(cluster, single)
    for name, value in ours.items():
        np.testing.assert_allclose(value, theirs[name], rtol=0, atol=1e-6, err_msg=name)
    print(
        f"\nmultihost: 2 hosts x 1 rank {multi['samples_per_s']:.0f} samples/s "
        f"(epochs {[round(r['samples_per_s']) for r in multi['curve']]}), step {multi_s:.1f}s; "
        f"1 host x 2 ranks {single['samples_per_s']:.0f} samples/s "
        f"(epochs {[round(r['samples_per_s']) for r in single['curve']]}), step {single_s:.1f}s; "
        f"weights equal: {multi['model_sha256'] == single['model_sha256']}"
    )


def test_killing_rank_ones_container_fails_the_step_and_a_new_worker_resumes(cluster: Cluster) -> None:
    store, worker = cluster.new_store(), cluster.name("b")
    cluster.start_worker(worker)
    pidfile = "/tmp/gauntlet-frozen-rank.pid"
    fault = {
        "GAUNTLET_FAULT_STOP": f"{FREEZE_RANK}:{FREEZE_EPOCH}:{FREEZE_BATCH}",
        "GAUNTLET_FAULT_PIDFILE": pidfile,
        "GAUNTLET_FAULT_MARKER": "/tmp/gauntlet-fault-fired",
    }
    attempt = cluster.train(cluster.name("a"), store, [worker], fault)
    try:
        deadline = time.monotonic() + 240
        # Rank 1 freezes inside epoch 2 in the worker container, its peer waiting on it.
        while subprocess.run(["docker", "exec", worker, "test", "-s", pidfile], capture_output=True).returncode:
            assert attempt.poll() is None, (attempt.stdout.read() if attempt.stdout else "")[-4000:]
            assert time.monotonic() < deadline, "rank 1 never reached the planned batch"
            time.sleep(0.5)
        subprocess.run(["docker", "kill", worker], check=True, capture_output=True, timeout=60)
        killed_at = time.monotonic()
        code, log = finish(attempt, timeout=GLOO_TIMEOUT_S + 60)
        kill_to_failure = time.monotonic() - killed_at
    finally:
        if attempt.poll() is None:
            attempt.kill()
    assert code == EXIT_FAILED, log[-4000:]
    assert kill_to_failure < GLOO_TIMEOUT_S + 15, f"{kill_to_failure:.1f}s from the kill to the step's failure"
    assert "RECORD.json" not in log

    # The retry: a new worker container under the same host name (the pod a Job would recreate).
    subprocess.run(["docker", "rm", "-f", worker], capture_output=True, timeout=60)
    cluster.start_worker(worker)
    started = time.monotonic()
    code, retry_log = finish(cluster.train(cluster.name("a"), store, [worker]))
    assert code == 0, retry_log[-4000:]
    record = record_of(cluster, parse_outputs(retry_log) or {})
    assert "resuming from checkpoint of epoch 1" in retry_log
    assert record["resumed_from_epoch"] == FREEZE_EPOCH - 1 and len(record["curve"]) == EPOCHS
    assert record["topology"]["distinct_hosts"] == 2
    print(
        f"\nmultihost: rank 1's container killed mid-epoch {FREEZE_EPOCH}: step failed {kill_to_failure:.1f}s later "
        f"(Gloo timeout {GLOO_TIMEOUT_S}s); retry on a new worker resumed from epoch {record['resumed_from_epoch']} "
        f"in {time.monotonic() - started:.1f}s"
    )
