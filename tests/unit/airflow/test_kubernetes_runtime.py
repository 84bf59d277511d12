"""gauntlet.airflow.kubernetes_runtime: a step as a pod, the train step as an MPIJob across nodes."""

from __future__ import annotations

import pytest

from gauntlet.airflow import kubernetes_runtime as kr
from gauntlet.contract import EXIT_NOTHING_TO_DO


def test_cpu_pods_ask_for_cpu_and_memory_gpu_pods_for_gpus() -> None:
    cpu = kr.gpu_resources(0)
    assert "nvidia.com/gpu" not in cpu.limits and cpu.requests["cpu"] == "1"
    gpu = kr.gpu_resources(2)
    assert gpu.limits["nvidia.com/gpu"] == "2"
    assert gpu.requests == {"cpu": "4", "memory": "16Gi"} and gpu.limits["memory"] == "32Gi"


def test_train_nodes_defaults_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAUNTLET_K8S_TRAIN_NODES", raising=False)
    assert kr.train_nodes() == 1
    monkeypatch.setenv("GAUNTLET_K8S_TRAIN_NODES", "3")
    assert kr.train_nodes() == 3


def test_a_pod_skips_on_nothing_to_do_and_writes_outputs_for_the_sidecar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_K8S_GPUS_PER_POD", "0")
    monkeypatch.delenv("GAUNTLET_GPUS", raising=False)
    pod = kr.pod_operator("register", "register", ["register", "--report", "s3://b/r.json"])
    assert pod.arguments[:2] == ["--outputs-file", kr.XCOM_FILE]
    assert pod.arguments[2:] == ["register", "--report", "s3://b/r.json"]
    assert pod.skip_on_exit_code == [EXIT_NOTHING_TO_DO]
    assert pod.labels["gauntlet/step"] == "register" and pod.do_xcom_push is True


@pytest.mark.parametrize(("setting", "kind"), [(None, "MPIJob"), ("mpijob", "MPIJob"), ("trainjob", "TrainJob")])
def test_a_multi_node_train_step_runs_as_the_configured_job_kind(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, kind: str
) -> None:
    from types import SimpleNamespace
    from typing import Any

    if setting is None:
        monkeypatch.delenv("GAUNTLET_K8S_TRAIN_LAUNCHER", raising=False)
    else:
        monkeypatch.setenv("GAUNTLET_K8S_TRAIN_LAUNCHER", setting)
    monkeypatch.setenv("GAUNTLET_K8S_TRAIN_NODES", "2")
    monkeypatch.setenv("GAUNTLET_K8S_GPUS_PER_POD", "1")
    submitted: list[dict[str, Any]] = []

    def execute(operator: Any, context: Any) -> dict[str, Any]:  # stands in for the cluster
        submitted.append(operator.manifest)
        return {}

    monkeypatch.setattr("gauntlet.airflow.mpijob.MPIJobOperator.execute", execute)
    monkeypatch.setattr("gauntlet.airflow.trainjob.TrainJobOperator.execute", execute)
    context = {"dag": SimpleNamespace(dag_id="d"), "run_id": "r"}
    kr.run_step("train", "train", ["train", "--dataset", "s3://b/d"], context)
    assert [m["kind"] for m in submitted] == [kind]


def test_an_unknown_launcher_is_bad_input_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from gauntlet.errors import BadInput

    monkeypatch.setenv("GAUNTLET_K8S_TRAIN_LAUNCHER", "pytorchjob")
    with pytest.raises(BadInput, match=r"GAUNTLET_K8S_TRAIN_LAUNCHER.*mpijob or trainjob"):
        kr.train_launcher()
