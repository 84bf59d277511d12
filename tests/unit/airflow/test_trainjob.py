"""gauntlet.airflow.trainjob: the train step as a Kubeflow Trainer v2 TrainJob on an MPI TrainingRuntime,
checked against the upstream CRD schemas (trimmed copy in trainer_v1alpha1_schema.json, which names
its source) and, for the JobSet's pod templates, the Kubernetes client's models."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from kubernetes.client import ApiClient

from gauntlet.airflow.mpijob import job_name, render_mpijob
from gauntlet.airflow.trainjob import job_state, render_runtime, render_trainjob, runtime_name

SCHEMAS = json.loads((Path(__file__).parent / "trainer_v1alpha1_schema.json").read_text())
IMAGE = "registry.example/gauntlet-gpu:1.0"
ARGUMENTS = ["--store", "s3://b", "--run-id", "gauntlet_nightly__r1", "train", "--dataset", "s3://b/datasets/v1"]
SECRET_KEY = "wJalrXUtnFEMI-example-secret"


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEACCESSKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.storage:9000")
    monkeypatch.delenv("GAUNTLET_DEVICE_CLASS", raising=False)


def pod_template(data: dict[str, Any]) -> Any:
    return ApiClient().deserialize(SimpleNamespace(data=json.dumps(data)), "V1PodTemplateSpec")


def render(nodes: int = 3, gpus: int = 8) -> tuple[dict[str, Any], dict[str, Any]]:
    runtime = render_runtime(runtime_name(IMAGE), "gauntlet", IMAGE, gpus)
    job = render_trainjob(job_name("dag/run/1"), "gauntlet", runtime["metadata"]["name"], IMAGE, ARGUMENTS, nodes, gpus)
    return runtime, job


def test_the_trainjob_and_its_runtime_meet_the_upstream_schemas() -> None:
    runtime, job = render()
    jsonschema.validate(job, SCHEMAS["TrainJob"])
    jsonschema.validate(runtime, SCHEMAS["TrainingRuntime"])
    for replicated in runtime["spec"]["template"]["spec"]["replicatedJobs"]:
        pod_template(replicated["template"]["spec"]["template"])


def test_a_misnamed_field_fails_the_schema() -> None:
    runtime, job = render()
    job["spec"]["trainer"]["numProcsPerNode"] = job["spec"]["trainer"].pop("numProcPerNode")
    with pytest.raises(jsonschema.ValidationError, match="numProcsPerNode"):
        jsonschema.validate(job, SCHEMAS["TrainJob"])
    runtime["spec"]["mlPolicy"]["mpi"]["sshAuthPath"] = "/x"
    with pytest.raises(jsonschema.ValidationError, match="sshAuthPath"):
        jsonschema.validate(runtime, SCHEMAS["TrainingRuntime"])


def test_the_trainjob_launches_what_the_mpijob_launches() -> None:
    runtime, job = render(nodes=3, gpus=8)
    mpijob = render_mpijob(job_name("dag/run/1"), "gauntlet", IMAGE, ARGUMENTS, nodes=3, gpus_per_node=8)
    launcher = mpijob["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    worker = mpijob["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    trainer = job["spec"]["trainer"]
    assert job["spec"]["runtimeRef"] == {
        "name": runtime["metadata"]["name"],
        "apiGroup": "trainer.kubeflow.org",
        "kind": "TrainingRuntime",
    }
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (3, 8)
    assert trainer["args"] == launcher["args"] and trainer["args"][-2:] == ["--workers", "24"]
    assert trainer["env"] == launcher["env"]
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert env["GAUNTLET_HOROVOD_HOSTFILE"] == "/etc/mpi/hostfile" and env["GAUNTLET_DEVICE_CLASS"] == "cuda"
    mpi = runtime["spec"]["mlPolicy"]["mpi"]
    assert mpi == {
        "numProcPerNode": 8,
        "mpiImplementation": mpijob["spec"]["mpiImplementation"],
        "sshAuthMountPath": mpijob["spec"]["sshAuthMountPath"],
        "runLauncherAsNode": False,
    }
    jobs = {r["name"]: r for r in runtime["spec"]["template"]["spec"]["replicatedJobs"]}
    node = pod_template(jobs["node"]["template"]["spec"]["template"])
    assert node.spec.containers[0].command == worker["command"]
    assert node.spec.containers[0].resources.limits["nvidia.com/gpu"] == "8"
    assert node.spec.security_context.run_as_user == 10001
    # The TrainJob's `trainer` overrides the container of the job the ancestor label marks: the launcher.
    assert jobs["launcher"]["template"]["metadata"]["labels"] == {
        "trainer.kubeflow.org/trainjob-ancestor-step": "trainer"
    }
    assert jobs["launcher"]["dependsOn"] == [{"name": "node", "status": "Ready"}]
    assert SECRET_KEY not in json.dumps([runtime, job])


def test_the_runtime_is_named_per_image_and_a_node_needs_a_gpu() -> None:
    assert runtime_name(IMAGE) == runtime_name(IMAGE) != runtime_name("registry.example/gauntlet-gpu:2.0")
    with pytest.raises(ValueError, match="at least one"):
        render_runtime("r", "ns", IMAGE, 0)
    with pytest.raises(ValueError, match="at least one"):
        render_trainjob("j", "ns", "r", IMAGE, ARGUMENTS, 0, 1)


@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        ([], None),
        ([{"type": "Created", "status": "True"}], None),
        ([{"type": "Complete", "status": "True"}], "Complete"),
        ([{"type": "Complete", "status": "False"}, {"type": "Failed", "status": "True"}], "Failed"),
    ],
)
def test_trainjob_state_comes_from_its_terminal_condition(conditions: list[dict[str, str]], state: str | None) -> None:
    assert job_state({"status": {"conditions": conditions}}) == state
