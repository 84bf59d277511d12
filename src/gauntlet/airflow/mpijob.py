"""Multi-node training: the train step as a Kubeflow MPIJob (kubeflow.org/v2beta1).

The MPI operator starts `nodes` worker pods from the GPU image (each an sshd, `slotsPerWorker` = GPUs
per node) and one launcher pod that runs the step CLI. The train step on the launcher sees the job's
hostfile (GAUNTLET_HOROVOD_HOSTFILE) and lets `horovodrun` start one rank per GPU over ssh, so the
step, its cache check and its experiment record are exactly those of a single-node run.

`MPIJobOperator` submits the job with the cncf.kubernetes provider's hook, waits for the job's
Succeeded or Failed condition, relays the launcher's log into the task log and returns the step's
outputs (its last stdout line) as XCom. A failed job fails the task.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from gauntlet.airflow import containers
from gauntlet.airflow.kubernetes_settings import (
    CONTAINER_SECURITY,
    GAUNTLET_UID,
    GPU_TOLERATIONS,
    gpu_node_selector,
    plain_environment,
    s3_secret_name,
)
from gauntlet.contract import parse_outputs
from gauntlet.errors import BadInput

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v2beta1", "mpijobs", "MPIJob"
HOSTFILE = "/etc/mpi/hostfile"
# sshd cannot bind port 22 as a non-root user; the GPU image's sshd and ssh client use this port.
SSH_PORT = 2222
SSH_AUTH_PATH = "/home/gauntlet/.ssh"


def env_list(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def job_environment(image: str, launcher: bool) -> dict[str, str]:
    """A multi-node job's plain environment: the step's, the hostfile horovodrun reads and the
    nodes' sshd port; the launcher (no GPU of its own) also names the device class its ranks
    compute on, which the experiment key must record."""
    env = {
        **plain_environment(image),
        "GAUNTLET_HOROVOD_HOSTFILE": HOSTFILE,
        "GAUNTLET_HOROVOD_SSH_PORT": str(SSH_PORT),
    }
    if launcher:
        env["GAUNTLET_DEVICE_CLASS"] = os.environ.get("GAUNTLET_DEVICE_CLASS", "cuda")
    return env


def launcher_arguments(arguments: list[str], slots: int) -> list[str]:
    """The train step's arguments with its rank count: the run's own (`--workers` or a
    `training.workers` override) if it set one, else one rank per GPU slot of the job."""
    chosen: int | None = None
    for flag, value in itertools.pairwise(arguments):
        if flag == "--workers":
            chosen = int(value)
        elif flag == "--set" and value.startswith("training.workers="):
            chosen = int(value.partition("=")[2])
    if chosen is None:
        return [*arguments, "--workers", str(slots)]
    if chosen > slots:
        raise BadInput(
            f"the run asks for {chosen} Horovod workers but the MPIJob has {slots} GPU slots; "
            "lower training.workers or raise GAUNTLET_K8S_TRAIN_NODES"
        )
    return list(arguments)


def container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": list(CONTAINER_SECURITY.capabilities.drop)}}


def render_mpijob(
    name: str, namespace: str, image: str, arguments: list[str], nodes: int, gpus_per_node: int
) -> dict[str, Any]:
    """The MPIJob manifest; `arguments` are the train step's CLI arguments (after `python -m gauntlet`)."""
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError("an MPIJob needs at least one node with at least one GPU")
    env = job_environment(image, launcher=False)
    secret = s3_secret_name()
    env_from = [{"secretRef": {"name": secret}}] if secret else []
    labels = {"app.kubernetes.io/name": "gauntlet", "gauntlet/step": "train"}
    pod_security = {
        "runAsNonRoot": True,
        "runAsUser": GAUNTLET_UID,
        "runAsGroup": GAUNTLET_UID,
        "fsGroup": GAUNTLET_UID,
    }
    launcher_args = launcher_arguments(arguments, nodes * gpus_per_node)
    launcher_env = job_environment(image, launcher=True)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "slotsPerWorker": gpus_per_node,
            "sshAuthMountPath": SSH_AUTH_PATH,
            "mpiImplementation": "OpenMPI",  # the hostfile format horovodrun reads: `<host> slots=<n>`
            "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": 0, "ttlSecondsAfterFinished": 3600},
            "mpiReplicaSpecs": {
                "Launcher": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "securityContext": pod_security,
                            "containers": [
                                {
                                    "name": "launcher",
                                    "image": image,
                                    "imagePullPolicy": "IfNotPresent",
                                    "command": ["python", "-m", "gauntlet"],
                                    "args": launcher_args,
                                    "env": env_list(launcher_env),
                                    "envFrom": env_from,
                                    "securityContext": container_security(),
                                    "resources": {
                                        "requests": {"cpu": "1", "memory": "2Gi"},
                                        "limits": {"memory": "4Gi"},
                                    },
                                }
                            ],
                        },
                    },
                },
                "Worker": {
                    "replicas": nodes,
                    "restartPolicy": "Never",
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "securityContext": pod_security,
                            "nodeSelector": gpu_node_selector(),
                            "tolerations": [
                                {"key": t.key, "operator": t.operator, "effect": t.effect} for t in GPU_TOLERATIONS
                            ],
                            "containers": [
                                {
                                    "name": "worker",
                                    "image": image,
                                    "imagePullPolicy": "IfNotPresent",
                                    # Ranks are started over ssh by horovodrun on the launcher.
                                    "command": ["/usr/sbin/sshd", "-De", "-f", "/etc/ssh/gauntlet/sshd_config"],
                                    "env": env_list(env),
                                    "envFrom": env_from,
                                    "securityContext": container_security(),
                                    "resources": {
                                        "requests": {"cpu": str(2 * gpus_per_node), "memory": f"{8 * gpus_per_node}Gi"},
                                        "limits": {
                                            "nvidia.com/gpu": str(gpus_per_node),
                                            "memory": f"{16 * gpus_per_node}Gi",
                                        },
                                    },
                                }
                            ],
                        },
                    },
                },
            },
        },
    }


def job_state(job: dict[str, Any]) -> str | None:
    """`Succeeded` or `Failed` once the job has finished (its last true terminal condition), else None."""
    for condition in reversed(job.get("status", {}).get("conditions") or []):
        if condition.get("type") in ("Succeeded", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


class MPIJobOperator(BaseOperator):
    """Submit an MPIJob for the train step, wait for it, return the step's outputs."""

    template_fields: Sequence[str] = ("manifest",)

    def __init__(
        self,
        *,
        manifest: dict[str, Any],
        kubernetes_conn_id: str = "kubernetes_default",
        poll_interval: float = 15,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest = manifest
        self.kubernetes_conn_id = kubernetes_conn_id
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        hook = KubernetesHook(conn_id=self.kubernetes_conn_id)
        name, namespace = self.manifest["metadata"]["name"], self.manifest["metadata"]["namespace"]
        hook.create_custom_object(GROUP, VERSION, PLURAL, self.manifest, namespace)
        self.log.info(
            "submitted MPIJob %s/%s (%s workers x %s slots)",
            namespace,
            name,
            self.manifest["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"],
            self.manifest["spec"]["slotsPerWorker"],
        )
        while (state := job_state(hook.get_custom_object(GROUP, VERSION, PLURAL, name, namespace))) is None:
            time.sleep(self.poll_interval)
        selector = f"training.kubeflow.org/job-name={name},training.kubeflow.org/job-role=launcher"
        lines = launcher_lines(hook, namespace, selector, "launcher", self.log)
        return step_outputs(f"MPIJob {namespace}/{name}", state, lines)


def launcher_lines(hook: Any, namespace: str, selector: str, container: str, log: Any) -> list[str]:
    """The launcher pod's log (relayed into the task's log), or [] when the job left no launcher pod."""
    pods = hook.core_v1_client.list_namespaced_pod(namespace, label_selector=selector).items
    if not pods:
        return []
    text = hook.core_v1_client.read_namespaced_pod_log(pods[-1].metadata.name, namespace, container=container)
    lines = str(text).splitlines()
    for line in lines:
        log.info("%s", line)
    return lines


def step_outputs(job: str, state: str, lines: list[str]) -> dict[str, Any]:
    """The train step's outputs from its launcher's lines, or the job's failure with its last lines."""
    from airflow.exceptions import AirflowException

    if state == "Failed":
        raise AirflowException(f"{job} failed; launcher's last lines:\n" + "\n".join(lines[-15:]))
    outputs = parse_outputs(lines)
    if outputs is not None:
        return outputs
    raise AirflowException(f"{job} succeeded but its launcher printed no outputs")


def mpijob_operator(
    task_id: str,
    arguments: list[str],
    run_id: str,
    nodes: int,
    gpus_per_node: int,
    namespace: str,
    kubernetes_conn_id: str,
) -> MPIJobOperator:
    image = containers.image_for(gpus_per_node)
    name = job_name(run_id)
    return MPIJobOperator(
        task_id=task_id,
        kubernetes_conn_id=kubernetes_conn_id,
        manifest=render_mpijob(name, namespace, image, arguments, nodes, gpus_per_node),
    )


def job_name(run_id: str) -> str:
    """A DNS-1123 name, unique per run: `gauntlet-train-<hash of the run id>`."""
    from gauntlet.hashing import content_hash

    return f"gauntlet-train-{content_hash(run_id, length=10)}"
