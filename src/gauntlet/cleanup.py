"""`gauntlet gc`: find what no manifest or record commits, and (with --apply) delete it.

Every multi-object output exists only once its marker is written, last (a dataset's, evaluation's or
quarantine's MANIFEST.json, an experiment's RECORD.json), so whatever a crashed or killed task left
behind is invisible to readers but still costs storage. Clean-up finds five kinds:

- `uncommitted output`: an output prefix without its marker, every object of it older than the grace
  period, and (for an experiment) no live lease: its writer is gone.
- `expired lease`: the LEASE.json of a recorded experiment, released or expired (nobody needs it again).
- `stray upload`: an object inside a committed output that its manifest does not list (a file an
  earlier attempt uploaded under another name; readers only ever read what the manifest lists).
- `orphan claim`: a registry claim without a version, older than the claim TTL, for an experiment that
  has no version (one that has is kept: the next registration completes it).
- `incomplete upload`: a multipart upload begun and never completed or aborted.

Nothing younger than the grace period is touched (a running task keeps writing, so its output stays
young), nor any file a manifest lists, nor anything of a recorded experiment besides its lease.
Before deleting an output, its marker is looked for once more: one committed meanwhile is kept.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from gauntlet import layout, registry, storage
from gauntlet.errors import BadInput
from gauntlet.logs import get_logger

log = get_logger("gauntlet.cleanup")

UNCOMMITTED = "uncommitted output"
EXPIRED_LEASE = "expired lease"
STRAY = "stray upload"
ORPHAN_CLAIM = "orphan claim"
INCOMPLETE_UPLOAD = "incomplete upload"
KINDS = (UNCOMMITTED, EXPIRED_LEASE, STRAY, ORPHAN_CLAIM, INCOMPLETE_UPLOAD)
_LISTED_IN_OUTPUTS = 200  # the outputs line (a task's XCom) names at most this many; the log names all


@dataclass(frozen=True)
class Orphan:
    kind: str
    uri: str  # the output prefix, or the one object
    objects: tuple[str, ...]  # the objects deleting it removes
    size: int
    age_s: float
    guard: str | None = None  # an object whose appearance means it was committed meanwhile: keep it
    upload_id: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "uri": self.uri,
            "bytes": self.size,
            "objects": len(self.objects),
            "age_hours": round(self.age_s / 3600, 2),
        }


def _when(text: str) -> dt.datetime:
    stamp = dt.datetime.fromisoformat(text)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _age_s(now: dt.datetime, objects: list[dict[str, Any]]) -> float:
    """How long ago the newest of the objects was written."""
    return (now - max(_when(o["last_modified"]) for o in objects)).total_seconds()


def _lease_live(lease: dict[str, Any] | None, now: dt.datetime) -> bool:
    return lease is not None and lease.get("state") == "held" and float(lease.get("expires", 0)) > now.timestamp()


def _read(uri: str) -> dict[str, Any] | None:
    try:
        value = storage.get_json(uri)
    except FileNotFoundError:
        return None  # deleted since the listing
    return value if isinstance(value, dict) else None


def _outputs_of(folder: layout.CommittedFolder) -> dict[str, list[dict[str, Any]]]:
    """The folder's objects grouped by the output they lie in."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in storage.list_objects(folder.root + "/"):
        output = layout.output_of(folder, obj["uri"])
        if output is not None:
            grouped[output].append(obj)
    return grouped


def _orphans_in_output(
    folder: layout.CommittedFolder, output: str, objects: list[dict[str, Any]], grace_s: float, now: dt.datetime
) -> list[Orphan]:
    by_uri = {o["uri"]: o for o in objects}
    marker = layout.marker_uri(folder, output)
    lease_uri = layout.lease_uri(output) if folder.kind == "experiment" else None
    if marker not in by_uri:
        if lease_uri is not None and lease_uri in by_uri and _lease_live(_read(lease_uri), now):
            return []  # its writer is alive and renewing the lease
        age = _age_s(now, objects)
        if age <= grace_s:
            return []
        return [Orphan(UNCOMMITTED, output, tuple(by_uri), sum(o["size"] for o in objects), age, guard=marker)]
    if lease_uri is not None:
        lease = by_uri.get(lease_uri)
        age = _age_s(now, [lease]) if lease else 0.0
        if lease and age > grace_s and not _lease_live(_read(lease_uri), now):
            return [Orphan(EXPIRED_LEASE, lease_uri, (lease_uri,), lease["size"], age)]
        return []
    manifest = _read(marker) or {}
    listed = set(manifest.get("files", {}))
    stray = [
        o
        for uri, o in by_uri.items()
        if uri != marker and uri[len(output) + 1 :] not in listed and _age_s(now, [o]) > grace_s
    ]
    return [Orphan(STRAY, o["uri"], (o["uri"],), o["size"], _age_s(now, [o])) for o in stray]


def _orphan_claims(store: str, grace_s: float, now: dt.datetime) -> list[Orphan]:
    # A claim's TTL is when a registration may take it over; the grace period is the floor for all kinds.
    limit_s = max(grace_s, registry.claim_ttl_s())
    versioned: dict[str, set[str]] = {}
    found = []
    for obj in storage.list_objects(layout.registries_root(store) + "/"):
        claimed = layout.claim_of(store, obj["uri"])
        if claimed is None or _age_s(now, [obj]) <= limit_s:
            continue
        claim = _read(obj["uri"])
        if claim is None or "version" in claim:
            continue
        claimed_at = _when(str(claim.get("claimed_at") or obj["last_modified"]))
        if (now - claimed_at).total_seconds() <= limit_s:
            continue
        reg, key = claimed
        if reg not in versioned:
            versioned[reg] = {str(v.get("experiment_key")) for v in registry.list_versions(reg)}
        if key in versioned[reg]:
            log.info("kept %s: experiment %s has a version; its next registration completes the claim", obj["uri"], key)
            continue
        found.append(Orphan(ORPHAN_CLAIM, obj["uri"], (obj["uri"],), obj["size"], _age_s(now, [obj])))
    return found


def _incomplete_uploads(store: str, grace_s: float, now: dt.datetime) -> list[Orphan]:
    found = []
    for upload in storage.list_multipart_uploads(store.rstrip("/") + "/"):
        age = (now - _when(upload["initiated"])).total_seconds()
        if age > grace_s:
            found.append(
                Orphan(INCOMPLETE_UPLOAD, upload["uri"], (), upload["size"], age, upload_id=upload["upload_id"])
            )
    return found


def find(store: str, grace_s: float, now: dt.datetime | None = None) -> list[Orphan]:
    """Everything under the store that nothing commits and that is older than `grace_s` seconds."""
    now = now or dt.datetime.now(dt.UTC)
    found: list[Orphan] = []
    for folder in layout.committed_folders(store):
        for output, objects in sorted(_outputs_of(folder).items()):
            found += _orphans_in_output(folder, output, objects, grace_s, now)
    return found + _orphan_claims(store, grace_s, now) + _incomplete_uploads(store, grace_s, now)


def delete(orphan: Orphan) -> bool:
    """Delete one orphan; False when a last look shows it is no longer one (committed or claimed meanwhile)."""
    if orphan.kind == INCOMPLETE_UPLOAD:
        storage.abort_multipart_upload(orphan.uri, orphan.upload_id)
        return True
    if orphan.guard is not None and storage.exists(orphan.guard):
        log.warning("kept %s: it was committed meanwhile", orphan.uri)
        return False
    if orphan.kind == ORPHAN_CLAIM and "version" in (_read(orphan.uri) or {}):
        log.warning("kept %s: its registration finished meanwhile", orphan.uri)
        return False
    storage.delete_objects(list(orphan.objects))
    return True


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _totals(orphans: list[Orphan]) -> dict[str, dict[str, int]]:
    totals = {kind: {"count": 0, "bytes": 0} for kind in KINDS}
    for orphan in orphans:
        totals[orphan.kind]["count"] += 1
        totals[orphan.kind]["bytes"] += orphan.size
    return {kind: t for kind, t in totals.items() if t["count"]}


def run(store: str, grace_hours: float, apply: bool = False, now: dt.datetime | None = None) -> dict[str, Any]:
    """List the orphans (with --apply, delete them) and return the outputs: what was found and freed."""
    if not math.isfinite(grace_hours) or grace_hours < 0:
        raise BadInput(f"--grace-hours must be a number of hours >= 0, not {grace_hours}")
    orphans = find(store, grace_hours * 3600, now)
    print(f"{'kind':18}  {'size':>9}  {'age':>8}  uri")
    for orphan in orphans:
        print(f"{orphan.kind:18}  {human_size(orphan.size):>9}  {orphan.age_s / 3600:7.1f}h  {orphan.uri}")
    freed = [o for o in orphans if delete(o)] if apply else []
    found_bytes = sum(o.size for o in orphans)
    freed_bytes = sum(o.size for o in freed)
    line = f"found {len(orphans)} not committed and older than {grace_hours:g}h: {human_size(found_bytes)}"
    if apply:
        line += f"; freed {human_size(freed_bytes)}: {', '.join(_count_text(freed)) or 'nothing'}"
    else:
        line += "; deleted nothing (--apply deletes them)"
    print(line, flush=True)
    return {
        "applied": apply,
        "grace_hours": grace_hours,
        "found": len(orphans),
        "found_bytes": found_bytes,
        "freed": len(freed),
        "freed_bytes": freed_bytes,
        "by_kind": _totals(orphans),
        "freed_by_kind": _totals(freed),
        "orphans": [o.summary() for o in orphans[:_LISTED_IN_OUTPUTS]],
    }


def _count_text(orphans: list[Orphan]) -> list[str]:
    return [f"{t['count']} {kind}{'s' if t['count'] > 1 else ''}" for kind, t in _totals(orphans).items()]
