"""The kubernetes runtime: a step runs as a pod through KubernetesPodOperator.

The pod runs the task image's entry point with the step's CLI arguments. S3 credentials come from a
Kubernetes Secret (GAUNTLET_K8S_S3_SECRET, default `gauntlet-s3`) referenced by name, so no secret
value is ever written into the pod spec; the endpoint and region are plain settings. The step writes
its outputs to /airflow/xcom/return.json, which the operator's sidecar returns as XCom. The train
step asks for `nvidia.com/gpu` and lands on GPU nodes when GPUs per pod are configured.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from kubernetes.client import models as k8s

from gauntlet.airflow import containers, kubernetes_settings
from gauntlet.airflow.kubernetes_settings import (
    CONTAINER_SECURITY,
    GAUNTLET_UID,
    GPU_TOLERATIONS,
    POD_SECURITY,
    gpu_node_selector,
    plain_environment,
    s3_secret_name,
)
from gauntlet.airflow.mpijob import mpijob_operator
from gauntlet.airflow.trainjob import trainjob_operator
from gauntlet.contract import EXIT_NOTHING_TO_DO
from gauntlet.errors import BadInput

XCOM_FILE = "/airflow/xcom/return.json"


def gpu_resources(gpus: int) -> k8s.V1ResourceRequirements:
    if gpus <= 0:
        return k8s.V1ResourceRequirements(requests={"cpu": "1", "memory": "2Gi"}, limits={"memory": "4Gi"})
    return k8s.V1ResourceRequirements(
        requests={"cpu": str(2 * gpus), "memory": f"{8 * gpus}Gi"},
        limits={"nvidia.com/gpu": str(gpus), "memory": f"{16 * gpus}Gi"},
    )


CONTAINER_SECURITY_SIDECAR = k8s.V1SecurityContext(
    run_as_user=GAUNTLET_UID,
    run_as_non_root=True,
    allow_privilege_escalation=False,
    capabilities=k8s.V1Capabilities(drop=["ALL"]),
)


def pod_operator(task_id: str, step: str, arguments: list[str]) -> KubernetesPodOperator:
    """The KubernetesPodOperator for one step; `arguments` are the CLI's (after `python -m gauntlet`)."""
    gpus = containers.gpus_for(step, "kubernetes")
    image = containers.image_for(gpus)
    secret = s3_secret_name()
    step_arguments = containers.with_gpu_workers(step, arguments, gpus)
    return KubernetesPodOperator(
        task_id=task_id,
        name=f"gauntlet-{step}",
        namespace=kubernetes_settings.namespace(),
        kubernetes_conn_id=kubernetes_settings.connection_id(),
        image=image,
        image_pull_policy="IfNotPresent",
        # The image's entry point is `python -m gauntlet`; global options go before the step name.
        arguments=["--outputs-file", XCOM_FILE, *step_arguments],
        env_vars=plain_environment(image),
        secrets=[Secret("env", None, secret)] if secret else [],
        container_resources=gpu_resources(gpus),
        node_selector=gpu_node_selector() if gpus else None,
        tolerations=GPU_TOLERATIONS if gpus else None,
        security_context=POD_SECURITY,
        container_security_context=CONTAINER_SECURITY,
        # The XCom sidecar must satisfy the pod's runAsNonRoot too; it only reads the step's file.
        xcom_sidecar_container_security_context=CONTAINER_SECURITY_SIDECAR,
        service_account_name=os.environ.get("GAUNTLET_K8S_SERVICE_ACCOUNT") or None,
        labels={"app.kubernetes.io/name": "gauntlet", "gauntlet/step": step},
        get_logs=True,
        do_xcom_push=True,
        skip_on_exit_code=EXIT_NOTHING_TO_DO,
        on_finish_action="delete_succeeded_pod",
        log_events_on_failure=True,
    )


def train_nodes() -> int:
    """Nodes for the train step; more than one makes it an MPIJob (GAUNTLET_K8S_TRAIN_NODES)."""
    return int(os.environ.get("GAUNTLET_K8S_TRAIN_NODES", "1"))


def train_launcher() -> str:
    """What runs a multi-node train step (GAUNTLET_K8S_TRAIN_LAUNCHER): a Kubeflow MPIJob (`mpijob`,
    the MPI operator) or a Kubeflow Trainer v2 TrainJob on an MPI runtime (`trainjob`)."""
    launcher = os.environ.get("GAUNTLET_K8S_TRAIN_LAUNCHER", "mpijob")
    if launcher not in ("mpijob", "trainjob"):
        raise BadInput(f"GAUNTLET_K8S_TRAIN_LAUNCHER is '{launcher}': set it to mpijob or trainjob")
    return launcher


def run_step(task_id: str, step: str, arguments: list[str], context: Any) -> dict[str, Any]:
    """Run the step as a pod, or the train step as an MPIJob or TrainJob when it spans several nodes."""
    if step == "train" and train_nodes() > 1:
        gpus = containers.gpus_for(step, "kubernetes")
        attempt = f"{context['dag'].dag_id}/{context['run_id']}/{getattr(context.get('ti'), 'try_number', 1)}"
        operator = trainjob_operator if train_launcher() == "trainjob" else mpijob_operator
        job = operator(
            task_id,
            arguments,
            attempt,
            train_nodes(),
            gpus,
            kubernetes_settings.namespace(),
            kubernetes_settings.connection_id(),
        )
        return job.execute(context)
    result = pod_operator(task_id, step, arguments).execute(context)
    return result if isinstance(result, dict) else {}
