"""register: add the evaluated candidate to the registry and move `champion` if the gate passed.

A candidate the gate rejects is not registered (unless forced), so the registry holds only models
that earned their place. Registration is idempotent per experiment: re-running the same Airflow run
or backfilling the same night returns the existing version, says so ("already registered as vN"),
and reports this run's gate verdict next to it instead of passing the old lineage off as new.

Under a protocol with `gate.approval: required` a passed gate registers the version without moving
`champion`: the outputs say `awaiting_approval` and carry what a person needs to decide (the
gate sentence, the metric tables with their intervals, the report), and gauntlet.steps.promote
acts on the answer.
"""

from __future__ import annotations

from typing import Any

from gauntlet import experiments, layout, mlflow_mirror, registry, storage
from gauntlet.errors import ProtocolMismatch, RegistryError
from gauntlet.logs import get_logger
from gauntlet.protocol import AUTOMATIC, REQUIRED, Protocol

log = get_logger("gauntlet.register")


@mlflow_mirror.after_registry_step  # when configured, MLflow gets the version and alias; a failure only warns
def run(
    store: str,
    model_name: str,
    report_uri: str,
    run_id: str,
    force: bool = False,
    protocol: Protocol | None = None,
) -> dict[str, Any]:
    """Register the report's experiment; `protocol` (the one it was scored under) says whether a
    passed gate moves `champion` here or waits for a person's approval (None: automatic)."""
    report = storage.get_json(report_uri)
    record = experiments.find_record(report["experiment_uri"])
    if record is None:
        raise RegistryError(f"{report['experiment_uri']} has no record; refusing to register")
    approval = approval_of(report, protocol)
    reg = layout.registry_root(store, model_name)
    gate = report["gate"]
    verdict = {
        "gate_passed": bool(gate["passed"]),
        "reason": gate["reason"],
        "report_uri": report_uri,
        "approval": approval,
        "awaiting_approval": False,
    }
    existing = registry.registered_version(reg, record["key"])
    if existing is None and not gate["passed"] and not force:
        log.info("not registered: %s", gate["reason"])
        return {
            "registered": False,
            "champion": False,
            "promoted": False,
            "version": None,
            "registry_uri": reg,
            **verdict,
        }
    if existing is not None:
        version, created = existing, False
    else:
        version, created = registry.register(
            reg, record["key"], _lineage(model_name, record, report, report_uri, run_id)
        )
    number = version["version"]
    if not created:
        _say_already_registered(reg, record["key"], version, verdict, run_id)
    current, _ = registry.get_alias(reg)
    if gate["passed"] and approval == REQUIRED and not (current and current["version"] == number):
        return _await_approval(reg, number, created, report, report_uri, verdict)
    champion, promoted = move_champion(reg, number, report, run_id) if gate["passed"] else (False, False)
    if not gate["passed"]:
        champion = current is not None and current["version"] == number
    return {
        "registered": True,
        "created": created,
        "already_registered_as": None if created else number,
        "version": number,
        "champion": champion,
        "promoted": promoted,
        "version_uri": layout.version_uri(reg, number),
        "registry_uri": reg,
        **verdict,
    }


def approval_of(report: dict[str, Any], protocol: Protocol | None) -> str:
    """The approval rule of the protocol the report was scored under.

    ProtocolMismatch when register was given another protocol than evaluate: its rule might let a
    model through without the approval the report's own protocol asks for.
    """
    if protocol is None:
        return AUTOMATIC
    scored_under = report.get("protocol_id")
    if scored_under is not None and scored_under != protocol.id:
        raise ProtocolMismatch(
            f"the report was scored under protocol {scored_under} and register was given {protocol.name} "
            f"({protocol.id}): pass register the --protocol evaluate had, so its gate.approval rule applies"
        )
    return protocol.approval


def _await_approval(
    reg: str, number: int, created: bool, report: dict[str, Any], report_uri: str, verdict: dict[str, Any]
) -> dict[str, Any]:
    """Registered, champion untouched: a person decides (gauntlet.steps.promote acts on the answer)."""
    log.info("v%d registered; the protocol requires approval before it becomes champion", number)
    return {
        "registered": True,
        "created": created,
        "already_registered_as": None if created else number,
        "version": number,
        "champion": False,
        "promoted": False,
        "version_uri": layout.version_uri(reg, number),
        "registry_uri": reg,
        **verdict,
        "awaiting_approval": True,
        "approval_request": approval_request(report, report_uri),
    }


def approval_request(report: dict[str, Any], report_uri: str) -> dict[str, Any]:
    """What a person needs to approve a promotion: the figures behind the gate and where the report is."""
    tables = report.get("tables") or {}
    evaluation = report_uri.rsplit("/", 1)[0]
    return {
        "champion_version": report.get("champion_version"),
        "protocol": report.get("protocol_name"),
        "test_rows": report.get("test_rows"),
        "metrics_table": tables.get("metrics", ""),
        "intervals_table": tables.get("intervals", ""),
        "report_html_uri": layout.report_html_uri(evaluation),
    }


def _lineage(
    model_name: str, record: dict[str, Any], report: dict[str, Any], report_uri: str, run_id: str
) -> dict[str, Any]:
    return {
        "model": model_name,
        "model_uri": record["model_uri"],
        "model_sha256": record["model_sha256"],
        "experiment_uri": record["uri"],
        "experiment": record,
        "dataset_uri": record["dataset_uri"],
        "dataset_version": record["dataset_version"],
        "code_version": record["code_version"],
        "protocol_id": record["protocol_id"],
        "params": record["params"],
        "image_digest": record.get("image_digest"),
        "metrics": report["metrics"]["candidate"],
        # What the model predicts, as `registry show` tells a reader: class names in output order.
        "task": report.get("task", "classification"),
        "classes": report.get("classes", []),
        "evaluation_uri": report_uri,
        "gate": report["gate"],
        "airflow_run_id": run_id,
    }


def _say_already_registered(
    reg: str, experiment_key: str, version: dict[str, Any], verdict: dict[str, Any], run_id: str
) -> None:
    """Log the repeat and keep this run's verdict in the event log; the version's lineage stays the first run's."""
    number = version["version"]
    log.info(
        "experiment %s is already registered as v%d (by run %s); this run's gate: %s — %s",
        experiment_key,
        number,
        version.get("airflow_run_id"),
        "passed" if verdict["gate_passed"] else "failed",
        verdict["reason"],
    )
    if version.get("airflow_run_id") != run_id:  # a retry of the registering run is not a repeat
        registry.record_event(
            reg,
            "already_registered",
            version=number,
            experiment=experiment_key,
            run_id=run_id,
            gate_passed=verdict["gate_passed"],
            reason=verdict["reason"],
            evaluation_uri=verdict["report_uri"],
        )


def move_champion(
    reg: str, number: int, report: dict[str, Any], run_id: str, reason: str | None = None, **details: Any
) -> tuple[bool, bool]:
    """(is champion, moved in this run). An earlier try of this run that promoted counts as moved, so
    a retried task still emits the champion event it owes. The move happens only while the champion
    is still the one the candidate was evaluated against; `details` go into the promotion event."""
    reason = reason or report["gate"]["reason"]
    expected = report.get("champion_version")
    current, _ = registry.get_alias(reg)
    if current is not None and current["version"] == number:  # no move: no promotion event, unless ours
        moved = registry.promoted_by(reg, number, run_id)
        if moved:
            log.info("v%d was made champion by an earlier try of this run", number)
        return True, moved
    if registry.set_alias(reg, registry.CHAMPION, number, expected, reason, event="promoted", run_id=run_id, **details):
        log.info("v%d is the new champion: %s", number, reason)
        return True, True
    current, _ = registry.get_alias(reg)
    champion = current is not None and current["version"] == number
    if not champion:
        log.warning(
            "v%d registered but not promoted: the champion moved to v%s after this candidate "
            "was evaluated; re-evaluate it against the new champion",
            number,
            current and current["version"],
        )
    return champion, False
