"""GauntletStepOperator: run one gauntlet step as `python -m gauntlet <step> ...`.

The runtime (here: a local process) only changes *where* the command runs; the command, its
S3 locations and settings are the same everywhere. The step's last stdout line carries its
outputs, which become the task's XCom for the next step's templates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from gauntlet import layout
from gauntlet.airflow import containers
from gauntlet.airflow.connection import mlflow_environment, s3_environment
from gauntlet.airflow.links import links_for
from gauntlet.airflow.params import cli_options
from gauntlet.contract import (
    ERROR_PREFIX,
    EXIT_BAD_INPUT,
    EXIT_NOTHING_TO_DO,
    EXIT_OK,
    OUTPUTS_MARKER,
    SKIP_PREFIX,
    last_message,
    parse_outputs,
)


class GauntletStepOperator(BaseOperator):
    """Runs one pipeline step; `arguments` are the step's own options (templated).

    `options` are param-like settings (config, protocol, epochs, overrides, ...) laid over the run's
    params for this task only: a sweep gives each mapped pair its own config this way. With `returns`,
    the task's XCom is that one output (a list a downstream task can be mapped over).
    """

    template_fields: Sequence[str] = ("arguments", "options")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        step: str,
        arguments: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
        returns: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.returns = returns
        self.arguments = arguments or {}
        self.options = options or {}
        # Per task, so each step shows only the links to what it writes.
        self.operator_extra_links = links_for(step)
        self.outputs: dict[str, Any] = {}
        self.cli_run_id = ""

    def command(self, context: Any) -> list[str]:
        """The local command line: this interpreter running the step CLI."""
        return [sys.executable, "-m", "gauntlet", *self.step_arguments(context)]

    def step_arguments(self, context: Any) -> list[str]:
        """The CLI's arguments (after `python -m gauntlet`): the same in every runtime."""
        options = cli_options({**dict(context["params"]), **dict(self.options or {})})
        store = layout.configured_store()  # unset: the step process picks its own root
        if store:
            options += ["--store", store]
        self.cli_run_id = f"{context['dag'].dag_id}__{context['run_id']}"
        map_index = getattr(context.get("ti"), "map_index", -1)
        if map_index is not None and map_index >= 0:
            # Mapped instances share a run id: keep each one's step outputs apart.
            self.cli_run_id += f"__m{map_index}"
        options += ["--run-id", self.cli_run_id]
        args = [self.step]
        for name, value in self.arguments.items():
            flag = "--" + name.replace("_", "-")  # Python keyword names -> CLI flags (require_new -> --require-new)
            text = str(value)  # templated values arrive as strings: "True"/"False" are flags
            if text in ("True", "true"):
                args.append(flag)
            elif text not in ("None", "False", "false", ""):
                args += [flag, text]
        return [*options, *args]

    def execute(self, context: Any) -> Any:
        runtime = containers.runtime_at_execution()
        self.log.info("runtime: %s", runtime)
        if runtime == "docker":
            from gauntlet.airflow import docker_runtime

            operator = docker_runtime.docker_operator(self.task_id, self.step, self.step_arguments(context))
            return self._outputs(parse_outputs(docker_runtime.run(operator, context)) or {})
        if runtime == "kubernetes":
            from gauntlet.airflow import kubernetes_runtime

            return self._outputs(
                kubernetes_runtime.run_step(self.task_id, self.step, self.step_arguments(context), context)
            )
        return self.execute_locally(context)

    def _outputs(self, outputs: dict[str, Any]) -> dict[str, Any]:
        self.outputs = outputs
        self.log.info("outputs: %s", json.dumps(outputs))
        return outputs[self.returns] if self.returns else outputs

    def execute_locally(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

        command = self.command(context)
        self.log.info("running: %s", " ".join(command[1:]))
        env = {**os.environ, **s3_environment(), **mlflow_environment(), "PYTHONUNBUFFERED": "1"}
        lines: list[str] = []
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=os.environ.get("GAUNTLET_HOME") or None,
        ) as process:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.rstrip("\n")
                lines.append(line)
                if not line.startswith(OUTPUTS_MARKER):
                    self.log.info("%s", line)
            code = process.wait()
        if code == EXIT_NOTHING_TO_DO:
            raise AirflowSkipException(last_message(lines, SKIP_PREFIX) or "nothing to do")
        if code == EXIT_BAD_INPUT:
            # Bad data or config: retrying cannot help, so fail without retries.
            raise AirflowFailException(_error_message(lines, code))
        if code != EXIT_OK:
            raise AirflowException(_error_message(lines, code))
        return self._outputs(parse_outputs(lines) or {})


def _error_message(lines: list[str], code: int) -> str:
    errors = [ln for ln in lines if ln.startswith(ERROR_PREFIX)]
    detail = "\n".join(lines[lines.index(errors[-1]) :]) if errors else "\n".join(lines[-10:])
    return f"gauntlet step exited with {code}: {detail}"
