"""deploy/compose.yaml and deploy/helm/values.yaml describe the production profile of scripts/stack.sh:
the same executor, queues and remote logging; the Helm values fit the official chart's schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gauntlet.airflow.factory import TRAINING_QUEUE

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART_SCHEMA = Path(__file__).with_name("airflow_chart_values_schema.json")
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
WORKERS = {"worker-default", "worker-training"}
# The profile's store is s3://gauntlet, so its log bucket (stack.sh's LOG_BUCKET) is this one.
LOG_BUCKET = "gauntlet-logs"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _helm() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def _defaults(value: object) -> str:
    """A compose or shell value with each `${NAME:-default}` as its default, `${NAME}` as NAME."""
    text = str(value).strip("'\"")
    text = re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", text)
    return re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", r"\1", text)


def profile_settings(stack_sh: str) -> dict[str, str]:
    """The AIRFLOW__* settings scripts/stack.sh exports for the production profile only."""
    block = stack_sh.split('if [[ "$PROFILE" == production ]]; then', 1)[1].split("\n  else\n", 1)[0]
    exports = dict(re.findall(r"^export (AIRFLOW__\w+)=(.*)$", block, flags=re.MULTILINE))
    return {name: _defaults(value).replace("$LOG_BUCKET", LOG_BUCKET) for name, value in exports.items()}


def profile_queues(stack_sh: str) -> set[str]:
    return {queue for found in re.findall(r"--queues\s+(\S+)", stack_sh) for queue in found.split(",")}


def helm_setting(values: dict[str, Any], name: str) -> str | None:
    """The Helm value behind an AIRFLOW__SECTION__KEY setting (the executor is a top-level value)."""
    if name == "AIRFLOW__CORE__EXECUTOR":
        return str(values["executor"])
    _, section, key = name.split("__", 2)
    value = values.get("config", {}).get(section.lower(), {}).get(key.lower())
    return None if value is None else str(value)


def unknown_keys(values: object, schema: dict[str, Any], definitions: dict[str, Any], path: str = "") -> list[str]:
    """Keys of `values` that the chart's schema does not name where it names its keys.

    The chart's schema leaves some objects open (the top level, `workers.celery`), where a misspelt key
    would pass validation and do nothing; this finds those.
    """
    while "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[1]]
    if not isinstance(values, dict) or "properties" not in schema:
        return []
    found = []
    for key, value in values.items():
        if key in schema["properties"]:
            found += unknown_keys(value, schema["properties"][key], definitions, f"{path}{key}.")
        elif not isinstance(schema.get("additionalProperties"), dict):
            found.append(path + key)
    return found


def test_helm_values_fit_the_chart_schema() -> None:
    schema = json.loads(CHART_SCHEMA.read_text())
    values = _helm()
    jsonschema.Draft7Validator(schema).validate(values)
    assert unknown_keys(values, schema, schema["definitions"]) == []


def test_a_key_the_chart_does_not_know_is_found() -> None:
    schema = json.loads(CHART_SCHEMA.read_text())
    values = {"executor": "CeleryExecutor", "workers": {"celery": {"queues": "training"}}, "executer": "x"}
    assert unknown_keys(values, schema, schema["definitions"]) == ["workers.celery.queues", "executer"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate({"executor": "Celery"})


def test_compose_runs_every_service_with_health_and_order() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "redis", "minio", "minio-init", "airflow-init"} | AIRFLOW_SERVICES | WORKERS <= services.keys()
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= services.keys(), name
        if name not in {"minio-init", "airflow-init"}:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in AIRFLOW_SERVICES | WORKERS:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"
        build = services[name]["build"]
        assert ((DEPLOY / build["context"]).resolve() / build["dockerfile"]).is_file()
        assert set(services[name]["secrets"]) <= compose["secrets"].keys()


def test_compose_and_helm_carry_the_production_profile_settings() -> None:
    stack_sh = (ROOT / "scripts" / "stack.sh").read_text()
    settings = profile_settings(stack_sh)
    assert settings["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert settings["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "True"
    compose, values = _compose(), _helm()
    for name in AIRFLOW_SERVICES | WORKERS | {"airflow-init"}:
        env = {key: _defaults(value) for key, value in compose["services"][name]["environment"].items()}
        differing = {key: (value, env.get(key)) for key, value in settings.items() if env.get(key) != value}
        assert not differing, (
            f"deploy/compose.yaml {name} differs from scripts/stack.sh (profile, compose): {differing}"
        )
    differing = {
        key: (value, helm_setting(values, key)) for key, value in settings.items() if helm_setting(values, key) != value
    }
    assert not differing, f"deploy/helm/values.yaml differs from scripts/stack.sh (profile, helm): {differing}"


def test_workers_serve_the_default_queue_and_the_training_queue() -> None:
    wanted = {"default", TRAINING_QUEUE}
    assert profile_queues((ROOT / "scripts" / "stack.sh").read_text()) == wanted
    services = _compose()["services"]
    compose_queues = {
        name: services[name]["command"][services[name]["command"].index("--queues") + 1] for name in WORKERS
    }
    assert compose_queues == {"worker-default": "default", "worker-training": TRAINING_QUEUE}
    celery = _helm()["workers"]["celery"]
    assert {celery["queue"], *(worker_set["queue"] for worker_set in celery["sets"])} == wanted


def test_both_create_the_training_pool_the_dags_use() -> None:
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())
    pools = {pool["pool_name"] for pool in settings["airflow"]["pools"]}
    init = " ".join(_compose()["services"]["airflow-init"]["command"])
    migrate = " ".join(_helm()["migrateDatabaseJob"]["args"])
    for pool in pools:
        assert f"airflow pools set {pool} " in init and f"airflow pools set {pool} " in migrate


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker here")
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker has no compose plugin here")
    shutil.copy(DEPLOY / "compose.yaml", tmp_path / "compose.yaml")
    shutil.copy(DEPLOY / "env.example", tmp_path / ".env")
    (tmp_path / "airflow_passwords.json").write_text('{"admin": "x"}')
    result = subprocess.run(
        ["docker", "compose", "-f", str(tmp_path / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
