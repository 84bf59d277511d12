"""The docker runtime: a step runs in the task image through DockerOperator.

The container gets the step's CLI arguments and its environment, nothing else: no volumes (the
operator's temporary-directory mount is off), S3 settings as private environment (never rendered
or logged), host networking so an S3 endpoint on the host's loopback is reachable. Its log lines
stream into the task log; the step's last stdout line becomes the task's XCom.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.providers.docker.exceptions import DockerContainerFailedException, DockerContainerFailedSkipException
from airflow.providers.docker.operators.docker import DockerOperator
from docker.types import DeviceRequest

from gauntlet.airflow import containers
from gauntlet.contract import ERROR_PREFIX, EXIT_BAD_INPUT, EXIT_NOTHING_TO_DO, SKIP_PREFIX, last_message


class GauntletDockerOperator(DockerOperator):
    """DockerOperator that records the image's digest in the container and returns the step outputs."""

    def execute(self, context: Any) -> Any:
        if self.force_pull or not self.cli.images(name=self.image):
            self.log.info("pulling %s", self.image)
            for _ in self.cli.pull(self.image, stream=True, decode=True):
                pass
            self.force_pull = False
        image = self.cli.inspect_image(self.image)
        # A registry digest if the image was pulled or pushed, else the local content-addressed id.
        digest = (image.get("RepoDigests") or [image["Id"]])[0]
        self.environment["GAUNTLET_IMAGE_DIGEST"] = digest
        self.log.info("image %s is %s", self.image, digest)
        try:
            return super().execute(context)
        finally:
            if self.container is not None:
                self.log.info("ran in container %s", self.container["Id"])


def docker_operator(task_id: str, step: str, arguments: list[str]) -> GauntletDockerOperator:
    """The DockerOperator for one step; `arguments` are the CLI's (after `python -m gauntlet`)."""
    gpus = containers.gpus_for(step, "docker")
    device_requests = [DeviceRequest(count=gpus, capabilities=[["gpu"]])] if gpus else None
    return GauntletDockerOperator(
        task_id=task_id,
        image=containers.image_for(gpus),
        command=containers.with_gpu_workers(step, arguments, gpus),
        environment=containers.settings_environment(None),
        private_environment=containers.aws_environment(),
        network_mode=os.environ.get("GAUNTLET_DOCKER_NETWORK", "host"),
        docker_url=os.environ.get("DOCKER_HOST"),
        mount_tmp_dir=False,
        device_requests=device_requests,
        # Horovod ranks (Gloo, NCCL) exchange through shared memory; Docker's default 64 MB is too small.
        shm_size=1 << 30 if step == "train" else None,
        auto_remove=os.environ.get("GAUNTLET_DOCKER_AUTO_REMOVE", "success"),  # type: ignore[arg-type]
        xcom_all=True,
        skip_on_exit_code=EXIT_NOTHING_TO_DO,
        labels={"app": "gauntlet", "gauntlet.step": step, **extra_labels()},
        do_xcom_push=True,
    )


def extra_labels() -> dict[str, str]:
    """Container labels from GAUNTLET_DOCKER_LABELS (`key=value,key=value`), e.g. to find a CI run's."""
    pairs = (item.split("=", 1) for item in os.environ.get("GAUNTLET_DOCKER_LABELS", "").split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def run(operator: GauntletDockerOperator, context: Any) -> list[str]:
    """Run the container; returns its output lines. Exit 99 skips, exit 2 fails without retries."""
    from airflow.exceptions import AirflowFailException, AirflowSkipException

    try:
        lines = operator.execute(context)
    except DockerContainerFailedSkipException as skip:
        raise AirflowSkipException(last_message(skip.logs or [], SKIP_PREFIX) or "nothing to do") from None
    except DockerContainerFailedException as failure:
        code = _exit_code(operator)
        message = (
            f"gauntlet step exited with {code} in its container: {last_message(failure.logs or [], ERROR_PREFIX) or ''}"
        )
        if code == EXIT_BAD_INPUT:
            raise AirflowFailException(message) from None
        raise
    return [str(line) for line in (lines or [])]


def _exit_code(operator: GauntletDockerOperator) -> int | None:
    try:
        state = operator.cli.inspect_container(operator.container["Id"])["State"]
        if operator.auto_remove != "never":
            operator.cli.remove_container(operator.container["Id"])
        return int(state["ExitCode"])
    except Exception:  # the container is gone: the generic failure stands
        return None
