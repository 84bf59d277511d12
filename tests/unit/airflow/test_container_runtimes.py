"""Container runtimes rendered without a cluster: the pod of every step, the train pod's GPUs, the
Docker container's settings and the MPIJob manifest, each checked against the fields the Kubernetes
API (its model classes) and the MPIJob CRD require, and for leaked secrets."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from kubernetes.client import ApiClient

STEPS = {
    "validate": ["validate", "--start", "2026-11-07", "--end", "2026-11-08"],
    "preprocess": ["preprocess", "--validation", "s3://b/runs/r/validation/result.json"],
    "train": ["train", "--dataset", "s3://b/datasets/digits/abc"],
    "evaluate": ["evaluate", "--experiment", "s3://b/experiments/k"],
    "register": ["register", "--report", "s3://b/evaluations/p/k/report.json"],
}
GLOBAL = ["--config", "include/configs/digits.yaml", "--store", "s3://b", "--run-id", "gauntlet_nightly__r1"]
ACCESS_KEY, SECRET_KEY = "AKIAEXAMPLEACCESSKEY", "wJalrXUtnFEMI-example-secret"
DIGEST = "sha256:" + "ab" * 32

# What the MPIJob CRD (kubeflow.org/v2beta1) requires; replica templates are checked as pod templates.
MPIJOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kubeflow.org/v2beta1"},
        "kind": {"const": "MPIJob"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}},
        },
        "spec": {
            "type": "object",
            "required": ["mpiReplicaSpecs"],
            "properties": {
                "slotsPerWorker": {"type": "integer", "minimum": 1},
                "sshAuthMountPath": {"type": "string"},
                "mpiImplementation": {"enum": ["OpenMPI", "Intel", "MPICH"]},
                "runPolicy": {
                    "type": "object",
                    "properties": {
                        "cleanPodPolicy": {"enum": ["None", "Running", "All"]},
                        "backoffLimit": {"type": "integer", "minimum": 0},
                        "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                    },
                },
                "mpiReplicaSpecs": {
                    "type": "object",
                    "required": ["Launcher", "Worker"],
                    "additionalProperties": False,
                    "patternProperties": {
                        "^(Launcher|Worker)$": {
                            "type": "object",
                            "required": ["template"],
                            "properties": {
                                "replicas": {"type": "integer", "minimum": 1},
                                "restartPolicy": {"enum": ["Always", "OnFailure", "Never", "ExitCode"]},
                                "template": {"type": "object", "required": ["spec"]},
                            },
                        }
                    },
                },
            },
        },
    },
}


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.storage:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("GAUNTLET_IMAGE", f"registry.example/gauntlet@{DIGEST}")
    monkeypatch.setenv("GAUNTLET_GPU_IMAGE", "registry.example/gauntlet-gpu:1.0")
    # Rendering a pod reads the cluster's kube config (nothing is sent to it): a stand-in cluster.
    kube_config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ci",
        "clusters": [{"name": "ci", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "contexts": [{"name": "ci", "context": {"cluster": "ci", "user": "ci"}}],
        "users": [{"name": "ci", "user": {"token": "unused"}}],
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT",
        json.dumps({"conn_type": "kubernetes", "extra": {"in_cluster": False, "kube_config": json.dumps(kube_config)}}),
    )
    for name in ("GAUNTLET_GPUS", "GAUNTLET_K8S_GPUS_PER_POD", "GAUNTLET_K8S_S3_SECRET", "GAUNTLET_IMAGE_DIGEST"):
        monkeypatch.delenv(name, raising=False)


def as_model(data: dict[str, Any], kind: str) -> Any:
    """Deserialize through the Kubernetes client's models: a missing required field raises."""
    return ApiClient().deserialize(SimpleNamespace(data=json.dumps(data)), kind)


def render_pod(step: str) -> dict[str, Any]:
    from gauntlet.airflow.kubernetes_runtime import pod_operator

    pod = pod_operator(step, step, [*GLOBAL, *STEPS[step]]).build_pod_request_obj()
    rendered: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    return rendered


@pytest.mark.parametrize("step", list(STEPS))
def test_every_step_renders_a_valid_non_root_pod_without_secrets(step: str) -> None:
    pod = render_pod(step)
    model = as_model(pod, "V1Pod")
    base = next(c for c in model.spec.containers if c.name == "base")
    assert base.image == f"registry.example/gauntlet@{DIGEST}"
    assert not base.command, "the image's entry point (python -m gauntlet) runs the step"
    assert base.args[:2] == ["--outputs-file", "/airflow/xcom/return.json"]
    assert base.args[2:] == [*GLOBAL, *STEPS[step]]
    env = {e.name: e.value for e in base.env}
    assert env["GAUNTLET_IMAGE_DIGEST"] == DIGEST
    assert env["AWS_ENDPOINT_URL"] == "http://minio.storage:9000"
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env
    assert [s.secret_ref.name for s in base.env_from] == ["gauntlet-s3"]
    text = json.dumps(pod)
    assert ACCESS_KEY not in text and SECRET_KEY not in text
    assert model.spec.security_context.run_as_non_root is True
    assert model.spec.security_context.run_as_user == 10001
    assert "nvidia.com/gpu" not in (base.resources.limits or {})
    assert not model.spec.node_selector and not model.spec.tolerations
    assert not [v for v in model.spec.volumes or [] if v.host_path], "no host volumes carry data"


def test_train_pod_asks_for_gpus_and_one_rank_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_K8S_GPUS_PER_POD", "4")
    pod = render_pod("train")
    model = as_model(pod, "V1Pod")
    base = next(c for c in model.spec.containers if c.name == "base")
    assert base.image == "registry.example/gauntlet-gpu:1.0"
    assert base.resources.limits["nvidia.com/gpu"] == "4"
    assert base.args[-2:] == ["--workers", "4"]
    assert model.spec.node_selector == {"nvidia.com/gpu.present": "true"}
    assert [(t.key, t.operator, t.effect) for t in model.spec.tolerations] == [
        ("nvidia.com/gpu", "Exists", "NoSchedule")
    ]
    # Other steps never ask for GPUs, whatever the setting.
    evaluate = as_model(render_pod("evaluate"), "V1Pod")
    assert "nvidia.com/gpu" not in (evaluate.spec.containers[0].resources.limits or {})


def test_docker_container_keeps_credentials_private_and_asks_for_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from gauntlet.airflow.docker_runtime import docker_operator

    monkeypatch.setenv("GAUNTLET_GPUS", "2")
    train = docker_operator("train", "train", [*GLOBAL, *STEPS["train"]])
    assert train.image == "registry.example/gauntlet-gpu:1.0"
    assert train.command == [*GLOBAL, *STEPS["train"], "--workers", "2"]
    assert [(r.count, r.capabilities) for r in train.device_requests] == [(2, [["gpu"]])]
    assert train._private_environment["AWS_SECRET_ACCESS_KEY"] == SECRET_KEY
    assert SECRET_KEY not in json.dumps(train.environment) and ACCESS_KEY not in json.dumps(train.environment)
    assert train.mount_tmp_dir is False and not train.mounts, "no volume is shared with the container"
    assert train.network_mode == "host"
    validate = docker_operator("validate", "validate", [*GLOBAL, *STEPS["validate"]])
    assert validate.device_requests is None and validate.command == [*GLOBAL, *STEPS["validate"]]


def test_mpijob_manifest_meets_the_crd_and_pod_schemas() -> None:
    from gauntlet.airflow.mpijob import job_name, render_mpijob

    name = job_name("gauntlet_nightly/scheduled__2026-11-08T02:00:00+00:00/1")
    job = render_mpijob(
        name, "gauntlet", "registry.example/gauntlet-gpu:1.0", [*GLOBAL, *STEPS["train"]], nodes=3, gpus_per_node=8
    )
    jsonschema.validate(job, MPIJOB_SCHEMA)
    assert job["spec"]["slotsPerWorker"] == 8
    specs = job["spec"]["mpiReplicaSpecs"]
    assert specs["Launcher"]["replicas"] == 1 and specs["Worker"]["replicas"] == 3
    launcher = as_model(specs["Launcher"]["template"], "V1PodTemplateSpec").spec.containers[0]
    worker_pod = as_model(specs["Worker"]["template"], "V1PodTemplateSpec").spec
    worker = worker_pod.containers[0]
    assert launcher.image == worker.image == "registry.example/gauntlet-gpu:1.0"
    assert launcher.command == ["python", "-m", "gauntlet"]
    assert launcher.args == [*GLOBAL, *STEPS["train"], "--workers", "24"]
    assert worker.resources.limits["nvidia.com/gpu"] == "8"
    assert "nvidia.com/gpu" not in (launcher.resources.limits or {})
    assert worker_pod.tolerations[0].key == "nvidia.com/gpu" and worker_pod.node_selector
    env = {e.name: e.value for e in launcher.env}
    assert env["GAUNTLET_HOROVOD_HOSTFILE"] == "/etc/mpi/hostfile"
    assert worker.command[0] == "/usr/sbin/sshd"
    text = json.dumps(job)
    assert ACCESS_KEY not in text and SECRET_KEY not in text
    assert [e.secret_ref.name for e in launcher.env_from] == ["gauntlet-s3"]


@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        ([], None),
        ([{"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}], None),
        ([{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}], "Succeeded"),
        ([{"type": "Running", "status": "False"}, {"type": "Failed", "status": "True"}], "Failed"),
    ],
)
def test_mpijob_state_comes_from_its_terminal_condition(conditions: list[dict[str, str]], state: str | None) -> None:
    from gauntlet.airflow.mpijob import job_state

    assert job_state({"status": {"conditions": conditions}}) == state


def test_airflow_variable_overrides_the_environment_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from gauntlet.airflow import containers

    monkeypatch.setenv("GAUNTLET_RUNTIME", "docker")
    monkeypatch.delenv("AIRFLOW_VAR_GAUNTLET_RUNTIME", raising=False)
    assert containers.runtime_at_execution() == "docker"
    # The Variable (here from the environment-variable secrets backend) wins over GAUNTLET_RUNTIME.
    monkeypatch.setenv("AIRFLOW_VAR_GAUNTLET_RUNTIME", "kubernetes")
    assert containers.runtime_at_execution() == "kubernetes"
    monkeypatch.setenv("AIRFLOW_VAR_GAUNTLET_RUNTIME", "vm")
    with pytest.raises(ValueError, match="vm"):
        containers.runtime_at_execution()


def test_runtime_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    from gauntlet.airflow import containers

    monkeypatch.setenv("GAUNTLET_RUNTIME", "podman")
    with pytest.raises(ValueError, match="podman"):
        containers.configured_runtime()


def test_container_id_is_read_from_the_runtime_mounts(tmp_path: Path) -> None:
    from gauntlet.hostinfo import container_id

    cid = "0123456789abcdef" * 4
    (tmp_path / "mountinfo").write_text(
        "600 590 0:52 / / rw,relatime - overlay overlay rw\n"
        f"612 590 254:1 /var/lib/docker/containers/{cid}/hostname /etc/hostname rw - ext4 /dev/vda1 rw\n"
    )
    assert container_id(tmp_path) == cid
    (tmp_path / "mountinfo").write_text("600 590 0:52 / / rw,relatime - ext4 /dev/vda1 rw\n")
    (tmp_path / "cgroup").write_text("0::/\n")
    assert container_id(tmp_path) is None
