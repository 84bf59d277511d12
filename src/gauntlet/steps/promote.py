"""promote: act on a person's answer to an approval request (protocols with `gate.approval: required`).

register leaves a version that passed such a protocol's gate registered and not champion; Airflow's
approval task asks a person. An approval runs `run` (the `promote` step): `champion` moves to the
version, under the same rules as an automatic promotion — only a passed gate, never an off-protocol
version, and only while the champion is still the one the candidate was evaluated against. A
rejection runs `reject`: the version stays registered and unpromoted, and a `promotion_rejected`
event records who rejected it and why (or that nobody answered in time).
"""

from __future__ import annotations

from typing import Any

from gauntlet import experiments, layout, registry, storage
from gauntlet.errors import RegistryError
from gauntlet.logs import get_logger
from gauntlet.steps.register import move_champion

log = get_logger("gauntlet.promote")
REJECTED_EVENT = "promotion_rejected"


def _registered(reg: str, report: dict[str, Any], report_uri: str) -> int:
    """The version the report's experiment was registered as; RegistryError if none or the gate failed."""
    if not report["gate"]["passed"]:
        raise RegistryError(
            f"{report_uri}: the gate failed, so there is nothing to approve ({report['gate']['reason']})"
        )
    record = experiments.find_record(report["experiment_uri"])
    version = None if record is None else registry.registered_version(reg, record["key"])
    if version is None:
        raise RegistryError(
            f"the experiment of {report_uri} is not registered in {reg}: run register on the report first"
        )
    return int(version["version"])


def run(store: str, model_name: str, report_uri: str, run_id: str, approved_by: str) -> dict[str, Any]:
    """Make the report's registered version champion, as `approved_by` approved."""
    if not approved_by:
        raise RegistryError("promote needs --approved-by: the person who approved the promotion")
    reg = layout.registry_root(store, model_name)
    report = storage.get_json(report_uri)
    number = _registered(reg, report, report_uri)
    registry.require_promotable(reg, number)
    reason = f"{report['gate']['reason']} Approved by {approved_by}."
    champion, promoted = move_champion(reg, number, report, run_id, reason=reason, approved_by=approved_by)
    if promoted:
        log.info("v%d is the new champion, approved by %s", number, approved_by)
    return {
        "version": number,
        "champion": champion,
        "promoted": promoted,
        "approved_by": approved_by,
        "version_uri": layout.version_uri(reg, number),
        "registry_uri": reg,
        "report_uri": report_uri,
    }


def reject(
    registry_uri: str, version: int, run_id: str, rejected_by: str | None, reason: str, report_uri: str | None = None
) -> dict[str, Any]:
    """Record that a person (None: nobody, the request timed out) declined to promote `version`."""
    registry.get_version(registry_uri, version)  # must exist
    event = {
        "version": version,
        "rejected_by": rejected_by,
        "reason": reason,
        "run_id": run_id,
        "evaluation_uri": report_uri,
    }
    registry.record_event(registry_uri, REJECTED_EVENT, **event)
    log.info("v%d stays registered and not champion: rejected by %s (%s)", version, rejected_by or "nobody", reason)
    return event
