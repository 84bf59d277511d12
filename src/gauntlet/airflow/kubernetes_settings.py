"""What every gauntlet workload on Kubernetes shares, a step's pod and an MPIJob's pods alike: the
user it runs as and its security contexts, where GPU pods may run, and the environment and S3
Secret a step gets. No secret value is ever written into a spec; the Secret is referenced by name.
"""

from __future__ import annotations

import json
import os

from kubernetes.client import models as k8s

from gauntlet.airflow import containers

GAUNTLET_UID = 10001
DEFAULT_GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
# Settings that are not secret and may appear in a pod spec.
PLAIN_AWS_SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION")

GPU_TOLERATIONS = [k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
POD_SECURITY = k8s.V1PodSecurityContext(
    run_as_non_root=True, run_as_user=GAUNTLET_UID, run_as_group=GAUNTLET_UID, fs_group=GAUNTLET_UID
)
CONTAINER_SECURITY = k8s.V1SecurityContext(
    allow_privilege_escalation=False, capabilities=k8s.V1Capabilities(drop=["ALL"])
)


def namespace() -> str:
    return os.environ.get("GAUNTLET_K8S_NAMESPACE", "gauntlet")


def connection_id() -> str:
    """The Airflow connection of the cluster (cncf.kubernetes provider)."""
    return os.environ.get("GAUNTLET_K8S_CONN_ID", "kubernetes_default")


def s3_secret_name() -> str | None:
    """The Kubernetes Secret holding AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; empty for pod identity."""
    return os.environ.get("GAUNTLET_K8S_S3_SECRET", "gauntlet-s3") or None


def plain_environment(image: str) -> dict[str, str]:
    """A step's non-secret environment: S3 endpoint and region, step settings, the image's digest."""
    aws = containers.aws_environment()
    return {
        **{k: v for k, v in aws.items() if k in PLAIN_AWS_SETTINGS},
        **containers.settings_environment(containers.image_digest_of(image)),
    }


def gpu_node_selector() -> dict[str, str]:
    """Where GPU pods may run (JSON in GAUNTLET_K8S_GPU_NODE_SELECTOR, else NVIDIA's feature label)."""
    text = os.environ.get("GAUNTLET_K8S_GPU_NODE_SELECTOR")
    return dict(json.loads(text)) if text else dict(DEFAULT_GPU_NODE_SELECTOR)
