"""A model registry kept in S3: numbered versions, aliases, lineage and an event log.

Layout under <store>/registry/<model>/ (the paths come from gauntlet.layout):
  versions/<n>.json          one per registered model, with its full lineage (never rewritten)
  by-experiment/<key>.json   claim that makes registering the same experiment twice a no-op
  aliases/<alias>.json       {"version": n, "history": [...], ...}; `champion` is the one the gate moves
  events/<time>-<id>.json    every change: registered, alias set, promoted, rolled back

Every write that could race is conditional (If-None-Match for new objects, If-Match for aliases),
so two runs registering at once both get distinct versions and no alias update is lost. A claim
whose writer died before it wrote the version is taken over once it is older than a TTL
(GAUNTLET_REGISTRY_CLAIM_TTL_S), so a crash never leaves an experiment unregistrable.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from typing import Any

from gauntlet import layout, storage
from gauntlet.errors import ClaimPending, PreconditionFailed, RegistryConflict, RegistryError
from gauntlet.logs import get_logger

log = get_logger("gauntlet.registry")
CHAMPION = "champion"
_MAX_RACE_RETRIES = 20
_ALIAS_EVENTS = ("alias_set", "promoted", "rolled_back")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def claim_ttl_s() -> float:
    return float(os.environ.get("GAUNTLET_REGISTRY_CLAIM_TTL_S", "120"))


def record_event(registry: str, kind: str, **details: Any) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    storage.put_json(
        layout.event_uri(registry, f"{stamp}-{uuid.uuid4().hex[:8]}"),
        {"event": kind, "at": _now(), **details},
        if_none_match=True,
    )


def list_versions(registry: str) -> list[dict[str, Any]]:
    out = []
    for obj in storage.list_objects(layout.versions_prefix(registry) + "/"):
        if obj["key"].endswith(".json"):
            out.append(storage.get_json(obj["uri"]))
    return sorted(out, key=lambda v: v["version"])


def get_version(registry: str, version: int) -> dict[str, Any]:
    try:
        result: dict[str, Any] = storage.get_json(layout.version_uri(registry, version))
    except FileNotFoundError as error:
        raise RegistryError(f"{registry} has no version {version}") from error
    return result


def registered_version(registry: str, experiment_key: str) -> dict[str, Any] | None:
    """The version an experiment was registered as, or None (never claimed, or claimed and not done)."""
    try:
        claim = storage.get_json(layout.claim_uri(registry, experiment_key))
    except FileNotFoundError:
        return None
    return None if "version" not in claim else get_version(registry, int(claim["version"]))


def get_alias(registry: str, alias: str = CHAMPION) -> tuple[dict[str, Any] | None, str | None]:
    """Return (alias object, ETag), or (None, None) when the alias was never set."""
    try:
        value, etag = storage.get_json_with_etag(layout.alias_uri(registry, alias))
    except FileNotFoundError:
        return None, None
    return value, etag


def champion(registry: str) -> dict[str, Any] | None:
    alias, _ = get_alias(registry)
    return None if alias is None else get_version(registry, alias["version"])


# --- alias history -------------------------------------------------------------------------------


def alias_history(registry: str, alias: str = CHAMPION, value: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every position the alias took, oldest first: {version, set_at, reason, event, run_id}.

    An alias written before aliases kept their history is rebuilt from the event log.
    """
    if value is None:
        value, _ = get_alias(registry, alias)
    if value is None:
        return []
    if "history" in value:
        return list(value["history"])
    history = [
        {k: e.get(k) for k in ("version", "reason", "event", "run_id")} | {"set_at": e.get("at")}
        for e in events(registry)
        if e.get("event") in _ALIAS_EVENTS and e.get("alias", alias) == alias
    ]
    if not history or history[-1]["version"] != value["version"]:
        history.append(
            _history_entry(value["version"], value.get("reason", ""), "alias_set", None, value.get("set_at"))
        )
    return history


def _history_entry(
    version: int, reason: str, event: str, run_id: str | None, set_at: str | None = None
) -> dict[str, Any]:
    return {"version": version, "set_at": set_at or _now(), "reason": reason, "event": event, "run_id": run_id}


def _positions(history: list[dict[str, Any]]) -> list[int]:
    """The stack a rollback walks: a promotion pushes its version, a rollback pops back to its target."""
    stack: list[int] = []
    for entry in history:
        version = int(entry["version"])
        if entry.get("event") == "rolled_back" and stack:
            stack.pop()
            if stack and stack[-1] == version:
                continue
        stack.append(version)
    return stack


def set_alias(
    registry: str,
    alias: str,
    version: int,
    expected_version: int | None,
    reason: str,
    event: str = "alias_set",
    run_id: str | None = None,
    **details: Any,
) -> bool:
    """Point `alias` at `version` if it still points at `expected_version` (None: unset).

    The alias keeps its history (a rollback walks it back). Returns False, changing nothing, when
    another writer moved the alias first. `details` (e.g. who approved it) go into the event.
    """
    current, etag = get_alias(registry, alias)
    current_version = None if current is None else current["version"]
    if current_version != expected_version:
        return False
    entry = _history_entry(version, reason, event, run_id)
    value = {
        "alias": alias,
        "previous": current_version,
        **entry,
        "history": [*alias_history(registry, alias, current), entry],
    }
    uri = layout.alias_uri(registry, alias)
    try:
        if etag is None:
            storage.put_json(uri, value, if_none_match=True)
        else:
            storage.put_json(uri, value, if_match=etag)
    except PreconditionFailed:
        return False
    record_event(
        registry, event, alias=alias, version=version, previous=current_version, reason=reason, run_id=run_id, **details
    )
    return True


def promoted_by(registry: str, version: int, run_id: str, alias: str = CHAMPION) -> bool:
    """True when the alias's latest move put `version` there for `run_id` (an earlier try of this run)."""
    current, _ = get_alias(registry, alias)
    if current is None or current["version"] != version:
        return False
    latest = alias_history(registry, alias, current)[-1]
    return latest.get("event") == "promoted" and latest.get("run_id") == run_id


# --- registration --------------------------------------------------------------------------------


def register(registry: str, experiment_key: str, lineage: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create a new version for an experiment, or return the one it already has.

    Returns (version record, created). The by-experiment claim is taken first with If-None-Match,
    so the same experiment registered twice (a re-run, a backfill) never gets a second version.
    A claim left without a version by a writer that died is taken over after the claim TTL.
    """
    uri = layout.claim_uri(registry, experiment_key)
    run_id = lineage.get("airflow_run_id")
    claim = {"experiment": experiment_key, "claimed_at": _now(), "owner": uuid.uuid4().hex, "run_id": run_id}
    try:
        etag = storage.put_json(uri, claim, if_none_match=True)
    except PreconditionFailed:
        done, claim, etag = _await_claim(registry, uri, claim)
        if done is not None:
            return done, False
        orphan = _version_of_experiment(registry, experiment_key)
        if orphan is not None:  # the dead writer got as far as the version: finish its claim
            _complete_claim(registry, uri, claim, etag, orphan, recovered=True)
            return orphan, False

    for _ in range(_MAX_RACE_RETRIES):
        number = _next_version_number(registry)
        record = {**lineage, "version": number, "experiment_key": experiment_key, "registered_at": _now()}
        try:
            storage.put_json(layout.version_uri(registry, number), record, if_none_match=True)
        except PreconditionFailed:
            continue  # another registration took this number: take the next one
        _complete_claim(registry, uri, claim, etag, record, recovered=False)
        return record, True
    raise RegistryConflict(f"could not allocate a version number in {registry} after {_MAX_RACE_RETRIES} tries")


def _next_version_number(registry: str) -> int:
    versions = [
        int(o["key"].rsplit("/", 1)[-1].split(".")[0])
        for o in storage.list_objects(layout.versions_prefix(registry) + "/")
    ]
    return max(versions, default=0) + 1


def _version_of_experiment(registry: str, experiment_key: str) -> dict[str, Any] | None:
    return next((v for v in list_versions(registry) if v.get("experiment_key") == experiment_key), None)


def _complete_claim(
    registry: str, uri: str, claim: dict[str, Any], etag: str, record: dict[str, Any], recovered: bool
) -> None:
    number = record["version"]
    try:
        storage.put_json(uri, {**claim, "version": number}, if_match=etag)
    except PreconditionFailed as error:
        # This writer was so slow that its claim was taken over; the taker found this version and
        # completed the claim with it (and logged it), or else the experiment now has two versions.
        current = storage.get_json(uri)
        if current.get("version") == number:
            return
        raise RegistryError(
            f"{uri} was taken over while v{number} was being written; v{number} duplicates "
            f"v{current.get('version')} for experiment {claim['experiment']}"
        ) from error
    details = {"recovered": True} if recovered else {}
    record_event(
        registry,
        "registered",
        version=number,
        experiment=claim["experiment"],
        run_id=record.get("airflow_run_id"),
        **details,
    )


def _claim_age_s(claim: dict[str, Any]) -> float:
    claimed = dt.datetime.fromisoformat(str(claim.get("claimed_at") or "1970-01-01T00:00:00+00:00"))
    return (dt.datetime.now(dt.UTC) - claimed).total_seconds()


def _await_claim(registry: str, uri: str, mine: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any], str]:
    """Wait for another writer's claim to get its version: (version, claim, ETag).

    If the claim stays without a version past the TTL, its writer is presumed dead and exactly one
    waiter takes it over with If-Match: (None, the new claim, its ETag); that caller must finish it.
    Expiry compares wall clocks, so the TTL is far above any plausible skew.
    """
    ttl_s = claim_ttl_s()
    deadline = time.monotonic() + 2 * ttl_s + 30
    while True:
        claim, etag = storage.get_json_with_etag(uri)
        if "version" in claim:
            return get_version(registry, int(claim["version"])), claim, etag
        if _claim_age_s(claim) > ttl_s:
            taken = {**mine, "claimed_at": _now(), "taken_over_from": claim.get("owner")}
            try:
                return None, taken, storage.put_json(uri, taken, if_match=etag)
            except PreconditionFailed:
                continue  # completed, or taken over by another waiter: look again
        if time.monotonic() > deadline:
            raise ClaimPending(f"{uri} was claimed but no version appeared; retry later")
        time.sleep(min(0.5, ttl_s / 10))


# --- moving the champion -------------------------------------------------------------------------


def require_promotable(registry: str, version: int) -> dict[str, Any]:
    """The version's record, if it exists and may become champion; RegistryError otherwise."""
    record = get_version(registry, version)
    off_protocol = (record.get("experiment") or {}).get("off_protocol_reason")
    if off_protocol:
        raise RegistryError(f"v{version} is off-protocol ({off_protocol}); it is kept but never promoted")
    return record


def promote(registry: str, version: int, reason: str, alias: str = CHAMPION) -> None:
    """Point an alias at a version, retrying if another writer moves it meanwhile.

    A version trained off its protocol's budget (registered with --force) is kept for the record
    but never becomes champion: its numbers were not earned under the fixed protocol.
    """
    require_promotable(registry, version)
    for _ in range(_MAX_RACE_RETRIES):
        current, _ = get_alias(registry, alias)
        expected = None if current is None else current["version"]
        if set_alias(registry, alias, version, expected, reason, event="promoted"):
            return
    raise RegistryConflict(f"alias {alias} kept moving; gave up after {_MAX_RACE_RETRIES} tries")


def rollback(registry: str, reason: str, alias: str = CHAMPION) -> int:
    """Move an alias back one step in its history; the rollback is itself an event and a history entry.

    After promotions v1, v2, v3, rollbacks give v2 then v1 (never v3 again); a new promotion starts
    a new branch from wherever the alias stands.
    """
    current, _ = get_alias(registry, alias)
    if current is None:
        raise RegistryError(f"alias {alias} was never set; nothing to roll back")
    positions = _positions(alias_history(registry, alias, current))
    if len(positions) < 2:
        raise RegistryError(f"alias {alias} has no earlier version to roll back to (it is at v{current['version']})")
    target = positions[-2]
    if not set_alias(registry, alias, target, current["version"], reason, event="rolled_back"):
        raise RegistryConflict(f"alias {alias} moved during the rollback; run it again")
    return target


def events(registry: str) -> list[dict[str, Any]]:
    return [storage.get_json(o["uri"]) for o in storage.list_objects(layout.events_prefix(registry) + "/")]


def load_model_bytes(version_record: dict[str, Any]) -> bytes:
    """The model's bytes, only if they match the sha256 the registry recorded."""
    return storage.get_bytes(version_record["model_uri"], expected_sha256=version_record["model_sha256"])


def history_lines(history: list[dict[str, Any]], alias: str = CHAMPION) -> list[str]:
    """The alias's history as text, oldest first; the last line is where it stands now."""
    if not history:
        return [f"{alias}: never set"]
    lines = [f"{alias} history (oldest first; the last is current):"]
    for entry in history:
        run = f" run={entry['run_id']}" if entry.get("run_id") else ""
        lines.append(
            f"  {str(entry.get('set_at') or '')[:19]:19}  v{entry['version']:<4} {entry.get('event') or '':12}"
            f"{run}  {entry.get('reason') or ''}"
        )
    return lines
