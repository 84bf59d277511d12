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
