"""gauntlet.airflow.kubernetes_settings: what a step's pod and an MPIJob's pods share."""

from __future__ import annotations

import pytest

from gauntlet.airflow import kubernetes_settings as ks


def test_namespace_connection_and_secret_default_and_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GAUNTLET_K8S_NAMESPACE", "GAUNTLET_K8S_CONN_ID", "GAUNTLET_K8S_S3_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert (ks.namespace(), ks.connection_id(), ks.s3_secret_name()) == (
        "gauntlet",
        "kubernetes_default",
        "gauntlet-s3",
    )
    monkeypatch.setenv("GAUNTLET_K8S_NAMESPACE", "ml")
    monkeypatch.setenv("GAUNTLET_K8S_S3_SECRET", "")
    assert ks.namespace() == "ml"
    assert ks.s3_secret_name() is None, "an empty secret name means pod identity, no Secret"


def test_gpu_node_selector_is_nvidia_s_label_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAUNTLET_K8S_GPU_NODE_SELECTOR", raising=False)
    selector = ks.gpu_node_selector()
    assert selector == {"nvidia.com/gpu.present": "true"}
    selector["mutated"] = "yes"
    assert ks.gpu_node_selector() == {"nvidia.com/gpu.present": "true"}, "the default is not shared state"
    monkeypatch.setenv("GAUNTLET_K8S_GPU_NODE_SELECTOR", '{"pool": "a100"}')
    assert ks.gpu_node_selector() == {"pool": "a100"}


def test_plain_environment_holds_endpoint_and_digest_never_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_S3_CONN_ID", "gauntlet_absent_conn")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRET")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "TOKEN")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    env = ks.plain_environment("reg/gauntlet@sha256:abc")
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000" and env["AWS_REGION"] == "eu-west-1"
    assert env["GAUNTLET_IMAGE_DIGEST"] == "sha256:abc"
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & env.keys()


def test_pods_run_as_the_gauntlet_user_without_privileges() -> None:
    assert ks.POD_SECURITY.run_as_non_root is True and ks.POD_SECURITY.run_as_user == ks.GAUNTLET_UID
    assert ks.CONTAINER_SECURITY.allow_privilege_escalation is False
    assert ks.CONTAINER_SECURITY.capabilities.drop == ["ALL"]
