"""The approval task: a person approves or rejects a new champion before it moves.

Under a protocol with `gate.approval: required`, register leaves a version that passed the gate
registered and not champion, and says `awaiting_approval` in its outputs. This task (Airflow's
`ApprovalOperator`) then asks a person, in the UI's Required Actions or through the REST API, showing
the gate sentence, the metric tables with their intervals and a link to the evaluation report:

- Approve: the task succeeds and the `promote` step after it moves `champion`.
- Reject (or no answer within GAUNTLET_APPROVAL_TIMEOUT, default 4h): the operator skips `promote`
  and this task writes a `promotion_rejected` registry event with who rejected it and why.

A run that needs no approval (the protocol's is automatic, the gate failed, the version is champion
already) skips this task and the step after it, so the grid shows them skipped, never waiting.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict

from gauntlet.airflow.connection import s3_environment
from gauntlet.airflow.deadlines import parse_deadline
from gauntlet.airflow.links import browser_url
from gauntlet.errors import ConfigError

TIMEOUT_ENV = "GAUNTLET_APPROVAL_TIMEOUT"
DEFAULT_TIMEOUT = "4h"  # below the nightly's 6 h run timeout, so an unanswered request ends as a rejection
REASON = "reason"


def response_timeout() -> timedelta:
    """How long a request waits for an answer before it counts as rejected (read at parse time)."""
    text = os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT
    try:
        return parse_deadline(text)
    except ConfigError:
        raise ConfigError(f"{TIMEOUT_ENV}={text!r} is no duration above zero: write e.g. 4h, 90m or 45s") from None


def skip_reason(registered: dict[str, Any] | None) -> str | None:
    """Why the run needs no approval (None: it does)."""
    if not registered:
        return "register returned no outputs"
    if registered.get("awaiting_approval"):
        return None
    if registered.get("approval") != "required":
        return "the protocol promotes automatically (gate.approval: automatic)"
    if not registered.get("gate_passed"):
        return f"the gate failed: {registered.get('reason')}"
    return f"v{registered.get('version')} is champion already"


def model_of(registered: dict[str, Any]) -> str:
    return str(registered["registry_uri"]).rstrip("/").rsplit("/", 1)[-1]


def subject(registered: dict[str, Any]) -> str:
    return f"Make v{registered['version']} of {model_of(registered)} champion?"


def body(registered: dict[str, Any], dag_id: str | None = None) -> str:
    """The request in Markdown: the gate sentence, the figures with their intervals, the report."""
    request = registered.get("approval_request") or {}
    champion = request.get("champion_version")
    rows = f" on {request['test_rows']} test rows" if request.get("test_rows") else ""
    lines = [
        f"**Gate** ({request.get('protocol') or 'protocol'}{rows}): {registered['reason']}",
        "",
        "**Metrics**",
        "",
        request.get("metrics_table", ""),
        "",
        "**Differences (candidate - reference) with their confidence intervals** (paired bootstrap)",
        "",
        request.get("intervals_table", ""),
        "",
    ]
    if request.get("report_html_uri"):
        lines.append(f"[Evaluation report]({browser_url(request['report_html_uri'], dag_id)})")
        lines.append("")
    now = f"v{champion}" if champion is not None else "no champion yet"
    lines.append(
        f"Approve makes v{registered['version']} champion (now: {now}). Reject keeps it registered and not "
        f"champion; the reason you give is recorded with your name in the registry."
    )
    return "\n".join(lines)


def decision(answer: dict[str, Any]) -> dict[str, Any]:
    """The operator's answer as the promote step and the registry take it: approved, by whom, why."""
    user = answer.get("responded_by_user") or {}
    reason = str((answer.get("params_input") or {}).get(REASON) or "")
    timed_out = bool(answer.get("timedout")) or not user
    return {
        "approved": list(answer.get("chosen_options") or []) == [ApprovalOperator.APPROVE],
        "by": user.get("name"),
        "by_id": user.get("id"),
        "reason": reason or ("no answer before the request timed out" if timed_out else ""),
        "timed_out": timed_out,
    }


class GauntletApprovalOperator(ApprovalOperator):
    """Asks a person to approve the version the register task left awaiting approval; skips otherwise."""

    def __init__(self, *, register_task_id: str = "register", params: Any = None, **kwargs: Any) -> None:
        # `params` holds the DAG's params too (Airflow merges them in); the request's form shows only the task's.
        form = params if isinstance(params, ParamsDict) else ParamsDict(params or {})
        form[REASON] = Param(
            "",
            type="string",
            title="Reason",
            description="Why you approve or reject it; recorded in the registry with your name.",
            source="task",
        )
        super().__init__(
            subject="Make the new version champion?",  # replaced by the version's own when the task runs
            defaults=ApprovalOperator.REJECT,
            response_timeout=response_timeout(),
            params=form,
            **kwargs,
        )
        self.register_task_id = register_task_id

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException

        registered = context["ti"].xcom_pull(task_ids=self.register_task_id)
        why_not = skip_reason(registered)
        if why_not is not None:
            raise AirflowSkipException(f"no approval needed: {why_not}")
        self.subject = subject(registered)
        self.body = body(registered, context["dag"].dag_id)
        self.log.info("asking for approval: %s", self.subject)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        registered = context["ti"].xcom_pull(task_ids=self.register_task_id)
        outcome = {**decision(event), "version": registered["version"]}
        if "error" not in event and not outcome["approved"]:
            # Recorded first: on a rejection the operator ends this task by skipping the promote step.
            self._record_rejection(registered, outcome, context["run_id"])
        super().execute_complete(context, event)
        return outcome

    def _record_rejection(self, registered: dict[str, Any], outcome: dict[str, Any], run_id: str) -> None:
        from gauntlet.steps import promote

        # The store's settings may live in the Airflow connection rather than this worker's environment.
        os.environ.update(s3_environment())
        promote.reject(
            registered["registry_uri"],
            int(registered["version"]),
            f"{self.dag_id}__{run_id}",
            outcome["by"],
            outcome["reason"],
            registered.get("report_uri"),
        )
        self.log.info("v%s rejected by %s: %s", registered["version"], outcome["by"] or "nobody", outcome["reason"])
