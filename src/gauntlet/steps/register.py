"""register: add the evaluated candidate to the registry and move `champion` if the gate passed.

A candidate the gate rejects is not registered (unless forced), so the registry holds only models
that earned their place. Registration is idempotent per experiment: re-running the same Airflow run
or backfilling the same night returns the existing version instead of adding one.
"""

from __future__ import annotations

from typing import Any

from gauntlet import experiments, registry, storage
from gauntlet.logs import get_logger

log = get_logger("gauntlet.register")


def run(store: str, model_name: str, report_uri: str, run_id: str, force: bool = False) -> dict[str, Any]:
    report = storage.get_json(report_uri)
    record = experiments.find_record(report["experiment_uri"])
    if record is None:
        raise registry.RegistryError(f"{report['experiment_uri']} has no record; refusing to register")
    reg = registry.root(store, model_name)
    gate = report["gate"]
    if not gate["passed"] and not force:
        log.info("not registered: %s", gate["reason"])
        return {
            "registered": False,
            "champion": False,
            "promoted": False,
            "version": None,
            "reason": gate["reason"],
            "registry_uri": reg,
        }

    lineage = {
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
        "evaluation_uri": report_uri,
        "gate": gate,
        "airflow_run_id": run_id,
    }
    version, created = registry.register(reg, record["key"], lineage)
    number = version["version"]
    if not created:
        log.info("experiment %s is already registered as v%d; nothing to do", record["key"], number)
    champion = promoted = False  # promoted: the champion alias moved in this call (not merely "is champion")
    if gate["passed"]:
        expected = report.get("champion_version")
        if registry.set_alias(reg, registry.CHAMPION, number, expected, gate["reason"], event="promoted"):
            champion = promoted = True
            log.info("v%d is the new champion: %s", number, gate["reason"])
        else:
            current, _ = registry.get_alias(reg)
            champion = current is not None and current["version"] == number
            if not champion:
                log.warning(
                    "v%d registered but not promoted: the champion moved to v%s after this candidate "
                    "was evaluated; re-evaluate it against the new champion",
                    number,
                    current and current["version"],
                )
    return {
        "registered": True,
        "created": created,
        "version": number,
        "champion": champion,
        "promoted": promoted,
        "version_uri": registry.version_uri(reg, number),
        "registry_uri": reg,
        "report_uri": report_uri,
    }
