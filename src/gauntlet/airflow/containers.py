"""What every container runtime shares: which runtime, which image, how many GPUs, which environment.

All of it is configuration read when a task runs (environment of the Airflow worker, plus the Airflow
Variable `gauntlet_runtime`), never parse-time database access and never an edit of a DAG.
"""

from __future__ import annotations

import glob
import os

from gauntlet.airflow.connection import s3_environment

RUNTIMES = ("local", "docker", "kubernetes")
RUNTIME_VARIABLE = "gauntlet_runtime"
DEFAULT_IMAGE = "gauntlet:cpu"
DEFAULT_GPU_IMAGE = "gauntlet:gpu"
# Standard AWS settings a step needs to reach S3; copied from the Airflow worker's environment when
# no Airflow connection supplies them.
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)
# Non-secret step settings that follow the step into its container.
PASSED_SETTINGS = ("GAUNTLET_LOG_LEVEL", "GAUNTLET_GLOO_TIMEOUT_S")


def configured_runtime() -> str:
    """The runtime named by GAUNTLET_RUNTIME (parse time: environment only)."""
    return validate_runtime(os.environ.get("GAUNTLET_RUNTIME", "local"))


def validate_runtime(name: str) -> str:
    if name not in RUNTIMES:
        raise ValueError(f"gauntlet runtime {name!r} is not one of {RUNTIMES}")
    return name


def runtime_at_execution() -> str:
    """The Airflow Variable `gauntlet_runtime` if set, else GAUNTLET_RUNTIME: read when a task runs."""
    from airflow.sdk import Variable

    try:
        chosen = Variable.get(RUNTIME_VARIABLE, default=None)
    except Exception:  # no Variable backend reachable (e.g. a unit test): the environment decides
        chosen = None
    return validate_runtime(str(chosen).strip()) if chosen else configured_runtime()


def gpus_for(step: str, runtime: str) -> int:
    """GPUs the step's container asks for: only train uses them.

    GAUNTLET_GPUS wins; otherwise Docker counts the NVIDIA devices of the machine it runs on, and
    Kubernetes uses GAUNTLET_K8S_GPUS_PER_POD (the scheduler, not this worker, knows the nodes).
    """
    if step != "train":
        return 0
    if os.environ.get("GAUNTLET_GPUS"):
        return int(os.environ["GAUNTLET_GPUS"])
    if runtime == "kubernetes":
        return int(os.environ.get("GAUNTLET_K8S_GPUS_PER_POD", "0"))
    return len(glob.glob("/dev/nvidia[0-9]*"))


def image_for(gpus: int) -> str:
    if gpus > 0:
        return os.environ.get("GAUNTLET_GPU_IMAGE", DEFAULT_GPU_IMAGE)
    return os.environ.get("GAUNTLET_IMAGE", DEFAULT_IMAGE)


def with_gpu_workers(step: str, arguments: list[str], gpus: int) -> list[str]:
    """One Horovod rank per GPU, unless the run already chose a worker count."""
    if (
        step != "train"
        or gpus <= 0
        or "--workers" in arguments
        or any(a.startswith("training.workers=") for a in arguments)
    ):
        return arguments
    return [*arguments, "--workers", str(gpus)]


def aws_environment() -> dict[str, str]:
    """S3 endpoint and credentials for a container: the Airflow connection, else the AWS variables.

    Returned for the container's environment only; callers must keep it out of logs and templates.
    """
    from_connection = s3_environment()
    if from_connection:
        return from_connection
    return {name: os.environ[name] for name in AWS_VARIABLES if os.environ.get(name)}


def settings_environment(image_digest: str | None) -> dict[str, str]:
    """Non-secret environment: step settings and the digest of the image the step runs in."""
    env = {name: os.environ[name] for name in PASSED_SETTINGS if os.environ.get(name)}
    env["PYTHONUNBUFFERED"] = "1"
    if image_digest:
        env["GAUNTLET_IMAGE_DIGEST"] = image_digest
    return env


def image_digest_of(reference: str) -> str | None:
    """The digest pinned in an image reference (`repo@sha256:...`), else GAUNTLET_IMAGE_DIGEST."""
    if "@sha256:" in reference:
        return reference.split("@", 1)[1]
    return os.environ.get("GAUNTLET_IMAGE_DIGEST") or None
