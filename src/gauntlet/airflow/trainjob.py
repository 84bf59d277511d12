"""Multi-node training on Kubeflow Trainer v2: the train step as a TrainJob (trainer.kubeflow.org/v1alpha1)
on an MPI TrainingRuntime rendered beside it.

The same launch as the MPIJob (gauntlet.airflow.mpijob): `node` pods from the GPU image run the
image's non-root sshd, and the `launcher` pod runs the step CLI, whose horovodrun reads the hostfile
the Trainer's MPI plugin mounts at /etc/mpi/hostfile and reaches the nodes over ssh with the key pair
it generates per job and mounts at `sshAuthMountPath`. The runtime (mlPolicy.mpi: numProcPerNode,
mpiImplementation, sshAuthMountPath) is namespaced and named per image, so a cluster needs no
ClusterTrainingRuntime installed; the TrainJob refers to it with runtimeRef and overrides the
launcher's image, arguments and environment through `trainer`.

`TrainJobOperator` applies the runtime (create, or replace when it exists), submits the TrainJob,
waits for its Complete or Failed condition, relays the launcher's log and returns the step's outputs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from gauntlet.airflow import containers
from gauntlet.airflow.kubernetes_settings import GAUNTLET_UID, GPU_TOLERATIONS, gpu_node_selector, s3_secret_name
from gauntlet.airflow.mpijob import (
    SSH_AUTH_PATH,
    SSH_PORT,
    container_security,
    env_list,
    job_environment,
    job_name,
    launcher_arguments,
    launcher_lines,
    step_outputs,
)

GROUP, VERSION = "trainer.kubeflow.org", "v1alpha1"
TRAINJOBS, RUNTIMES = "trainjobs", "trainingruntimes"
# The Trainer's MPI plugin names the two replicated jobs so; the `trainer` ancestor label marks the
# container the TrainJob's `trainer` section overrides (the launcher's).
LAUNCHER, NODE = "launcher", "node"
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"


def runtime_name(image: str) -> str:
    """One runtime per image (its template names the image the nodes' sshd runs from)."""
    from gauntlet.hashing import content_hash

    return f"gauntlet-mpi-{content_hash(image, length=10)}"


def _pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": GAUNTLET_UID, "runAsGroup": GAUNTLET_UID, "fsGroup": GAUNTLET_UID}


def render_runtime(name: str, namespace: str, image: str, gpus_per_node: int) -> dict[str, Any]:
    """The namespaced MPI TrainingRuntime: sshd nodes with GPUs, a launcher that runs the step."""
    if gpus_per_node < 1:
        raise ValueError("a TrainJob node needs at least one GPU")
    secret = s3_secret_name()
    env_from = [{"secretRef": {"name": secret}}] if secret else []
    node_pod = {
        "securityContext": _pod_security(),
        "nodeSelector": gpu_node_selector(),
        "tolerations": [{"key": t.key, "operator": t.operator, "effect": t.effect} for t in GPU_TOLERATIONS],
        "containers": [
            {
                "name": NODE,
                "image": image,
                # Ranks are started over ssh by horovodrun on the launcher.
                "command": ["/usr/sbin/sshd", "-De", "-f", "/etc/ssh/gauntlet/sshd_config"],
                "envFrom": env_from,
                "securityContext": container_security(),
                "readinessProbe": {"tcpSocket": {"port": SSH_PORT}, "initialDelaySeconds": 2},
                "resources": {
                    "requests": {"cpu": str(2 * gpus_per_node), "memory": f"{8 * gpus_per_node}Gi"},
                    "limits": {"nvidia.com/gpu": str(gpus_per_node), "memory": f"{16 * gpus_per_node}Gi"},
                },
            }
        ],
    }
    launcher_pod = {
        "securityContext": _pod_security(),
        "restartPolicy": "Never",
        "containers": [
            {
                "name": NODE,  # the container the TrainJob's `trainer` overrides
                "image": image,
                "command": ["python", "-m", "gauntlet"],
                "envFrom": env_from,
                "securityContext": container_security(),
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
            }
        ],
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingRuntime",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": "gauntlet"}},
        "spec": {
            "mlPolicy": {
                "numNodes": 1,
                "mpi": {
                    "numProcPerNode": gpus_per_node,
                    "mpiImplementation": "OpenMPI",  # the hostfile format horovodrun reads: `<host> slots=<n>`
                    "sshAuthMountPath": SSH_AUTH_PATH,
                    "runLauncherAsNode": False,
                },
            },
            "template": {
                "spec": {
                    "network": {"publishNotReadyAddresses": True},
                    "successPolicy": {"operator": "All", "targetReplicatedJobs": [LAUNCHER]},
                    "replicatedJobs": [
                        {"name": NODE, "template": {"spec": {"template": {"spec": node_pod}}}},
                        {
                            "name": LAUNCHER,
                            "dependsOn": [{"name": NODE, "status": "Ready"}],
                            "template": {
                                "metadata": {"labels": {ANCESTOR_LABEL: "trainer"}},
                                "spec": {"backoffLimit": 0, "template": {"spec": launcher_pod}},
                            },
                        },
                    ],
                }
            },
        },
    }


def render_trainjob(
    name: str, namespace: str, runtime: str, image: str, arguments: list[str], nodes: int, gpus_per_node: int
) -> dict[str, Any]:
    """The TrainJob: `nodes` sshd nodes of `gpus_per_node` slots, the train step on the launcher."""
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError("a TrainJob needs at least one node with at least one GPU")
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": "gauntlet"}},
        "spec": {
            "runtimeRef": {"name": runtime, "apiGroup": GROUP, "kind": "TrainingRuntime"},
            "trainer": {
                "image": image,
                "command": ["python", "-m", "gauntlet"],
                "args": launcher_arguments(arguments, nodes * gpus_per_node),
                "env": env_list(job_environment(image, launcher=True)),
                "numNodes": nodes,
                "numProcPerNode": gpus_per_node,
            },
        },
    }


def job_state(job: dict[str, Any]) -> str | None:
    """`Complete` or `Failed` once the TrainJob has finished, else None."""
    for condition in reversed(job.get("status", {}).get("conditions") or []):
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


class TrainJobOperator(BaseOperator):
    """Apply the MPI runtime, submit a TrainJob for the train step, wait for it, return the step's outputs."""

    template_fields: Sequence[str] = ("runtime", "manifest")

    def __init__(
        self,
        *,
        runtime: dict[str, Any],
        manifest: dict[str, Any],
        kubernetes_conn_id: str = "kubernetes_default",
        poll_interval: float = 15,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self.manifest = manifest
        self.kubernetes_conn_id = kubernetes_conn_id
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from kubernetes.client.exceptions import ApiException

        hook = KubernetesHook(conn_id=self.kubernetes_conn_id)
        name, namespace = self.manifest["metadata"]["name"], self.manifest["metadata"]["namespace"]
        try:
            hook.create_custom_object(GROUP, VERSION, RUNTIMES, self.runtime, namespace)
        except ApiException as error:
            if error.status != 409:  # an existing runtime of this image is the same one
                raise
        hook.create_custom_object(GROUP, VERSION, TRAINJOBS, self.manifest, namespace)
        trainer = self.manifest["spec"]["trainer"]
        self.log.info(
            "submitted TrainJob %s/%s (%s nodes x %s slots)",
            namespace,
            name,
            trainer["numNodes"],
            trainer["numProcPerNode"],
        )
        while (state := job_state(hook.get_custom_object(GROUP, VERSION, TRAINJOBS, name, namespace))) is None:
            time.sleep(self.poll_interval)
        # JobSet labels every pod with its JobSet (the TrainJob's name) and replicated job.
        selector = f"jobset.sigs.k8s.io/jobset-name={name},jobset.sigs.k8s.io/replicatedjob-name={LAUNCHER}"
        lines = launcher_lines(hook, namespace, selector, NODE, self.log)
        return step_outputs(f"TrainJob {namespace}/{name}", state, lines)


def trainjob_operator(
    task_id: str,
    arguments: list[str],
    run_id: str,
    nodes: int,
    gpus_per_node: int,
    namespace: str,
    kubernetes_conn_id: str,
) -> TrainJobOperator:
    image = containers.image_for(gpus_per_node)
    runtime = runtime_name(image)
    return TrainJobOperator(
        task_id=task_id,
        kubernetes_conn_id=kubernetes_conn_id,
        runtime=render_runtime(runtime, namespace, image, gpus_per_node),
        manifest=render_trainjob(job_name(run_id), namespace, runtime, image, arguments, nodes, gpus_per_node),
    )
