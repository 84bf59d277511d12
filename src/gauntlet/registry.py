"""A model registry kept in S3: numbered versions, aliases, lineage and an event log.

Layout under <store>/registry/<model>/:
  versions/<n>.json          one per registered model, with its full lineage (never rewritten)
  by-experiment/<key>.json   claim that makes registering the same experiment twice a no-op
  aliases/<alias>.json       {"version": n, ...}; `champion` is the one the gate moves
  events/<time>-<id>.json    every change: registered, alias set, promoted, rolled back

Every write that could race is conditional (If-None-Match for new objects, If-Match for aliases),
so two runs registering at once both get distinct versions and no alias update is lost.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from gauntlet import storage
from gauntlet.logs import get_logger

log = get_logger("gauntlet.registry")
CHAMPION = "champion"
_MAX_RACE_RETRIES = 20


class RegistryError(RuntimeError):
    """A registry operation cannot be done; the message says why."""


def root(store: str, model: str) -> str:
    return storage.join(store, "registry", model)


def version_uri(registry: str, version: int) -> str:
    return storage.join(registry, "versions", f"{version:06d}.json")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def record_event(registry: str, kind: str, **details: Any) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    storage.put_json(
        storage.join(registry, "events", f"{stamp}-{uuid.uuid4().hex[:8]}.json"),
        {"event": kind, "at": _now(), **details},
        if_none_match=True,
    )


def list_versions(registry: str) -> list[dict[str, Any]]:
    out = []
    for obj in storage.list_objects(storage.join(registry, "versions") + "/"):
        if obj["key"].endswith(".json"):
            out.append(storage.get_json(obj["uri"]))
    return sorted(out, key=lambda v: v["version"])


def get_version(registry: str, version: int) -> dict[str, Any]:
    try:
        result: dict[str, Any] = storage.get_json(version_uri(registry, version))
    except FileNotFoundError as error:
        raise RegistryError(f"{registry} has no version {version}") from error
    return result


def get_alias(registry: str, alias: str = CHAMPION) -> tuple[dict[str, Any] | None, str | None]:
    """Return (alias object, ETag), or (None, None) when the alias was never set."""
    try:
        value, etag = storage.get_json_with_etag(storage.join(registry, "aliases", f"{alias}.json"))
    except FileNotFoundError:
        return None, None
    return value, etag


def champion(registry: str) -> dict[str, Any] | None:
    alias, _ = get_alias(registry)
    return None if alias is None else get_version(registry, alias["version"])


def set_alias(
    registry: str, alias: str, version: int, expected_version: int | None, reason: str, event: str = "alias_set"
) -> bool:
    """Point `alias` at `version` if it still points at `expected_version` (None: unset).

    Returns False, changing nothing, when another writer moved the alias first.
    """
    current, etag = get_alias(registry, alias)
    current_version = None if current is None else current["version"]
    if current_version != expected_version:
        return False
    value = {"alias": alias, "version": version, "previous": current_version, "set_at": _now(), "reason": reason}
    uri = storage.join(registry, "aliases", f"{alias}.json")
    try:
        if etag is None:
            storage.put_json(uri, value, if_none_match=True)
        else:
            storage.put_json(uri, value, if_match=etag)
    except storage.PreconditionFailed:
        return False
    record_event(registry, event, alias=alias, version=version, previous=current_version, reason=reason)
    return True


def _next_version_number(registry: str) -> int:
    versions = [
        int(o["key"].rsplit("/", 1)[-1].split(".")[0])
        for o in storage.list_objects(storage.join(registry, "versions") + "/")
    ]
    return max(versions, default=0) + 1


def register(registry: str, experiment_key: str, lineage: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create a new version for an experiment, or return the one it already has.

    Returns (version record, created). The by-experiment claim is taken first with If-None-Match,
    so the same experiment registered twice (a re-run, a backfill) never gets a second version.
    """
    claim_uri = storage.join(registry, "by-experiment", f"{experiment_key}.json")
    try:
        storage.put_json(claim_uri, {"experiment": experiment_key, "claimed_at": _now()}, if_none_match=True)
    except storage.PreconditionFailed:
        return _wait_for_claimed_version(registry, claim_uri), False

    for _ in range(_MAX_RACE_RETRIES):
        number = _next_version_number(registry)
        record = {**lineage, "version": number, "experiment_key": experiment_key, "registered_at": _now()}
        try:
            storage.put_json(version_uri(registry, number), record, if_none_match=True)
        except storage.PreconditionFailed:
            continue  # another registration took this number: take the next one
        claim, etag = storage.get_json_with_etag(claim_uri)
        storage.put_json(claim_uri, {**claim, "version": number}, if_match=etag)
        record_event(
            registry, "registered", version=number, experiment=experiment_key, run_id=lineage.get("airflow_run_id")
        )
        return record, True
    raise RegistryError(f"could not allocate a version number in {registry} after {_MAX_RACE_RETRIES} tries")


def _wait_for_claimed_version(registry: str, claim_uri: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        claim = storage.get_json(claim_uri)
        if "version" in claim:
            return get_version(registry, claim["version"])
        time.sleep(0.5)
    raise RegistryError(f"{claim_uri} was claimed but no version appeared within {timeout_s:.0f}s")


def promote(registry: str, version: int, reason: str, alias: str = CHAMPION) -> None:
    """Point an alias at a version, retrying if another writer moves it meanwhile."""
    get_version(registry, version)  # must exist
    for _ in range(_MAX_RACE_RETRIES):
        current, _ = get_alias(registry, alias)
        expected = None if current is None else current["version"]
        if set_alias(registry, alias, version, expected, reason, event="promoted"):
            return
    raise RegistryError(f"alias {alias} kept moving; gave up after {_MAX_RACE_RETRIES} tries")


def rollback(registry: str, reason: str, alias: str = CHAMPION) -> int:
    """Move an alias back to the version it pointed at before; the rollback is itself an event."""
    current, _ = get_alias(registry, alias)
    if current is None or current.get("previous") is None:
        raise RegistryError(f"alias {alias} has no previous version to roll back to")
    target = int(current["previous"])
    if not set_alias(registry, alias, target, current["version"], reason, event="rolled_back"):
        raise RegistryError(f"alias {alias} moved during the rollback; run it again")
    return target


def events(registry: str) -> list[dict[str, Any]]:
    return [storage.get_json(o["uri"]) for o in storage.list_objects(storage.join(registry, "events") + "/")]


def load_model_bytes(version_record: dict[str, Any]) -> bytes:
    """The model's bytes, only if they match the sha256 the registry recorded."""
    return storage.get_bytes(version_record["model_uri"], expected_sha256=version_record["model_sha256"])
