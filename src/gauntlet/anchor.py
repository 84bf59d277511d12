"""The protocol's anchor: the best model ever promoted under one protocol version.

Under non-inferiority a candidate may be worse than the champion by up to the margin; judged only
against the champion, ten nights could spend ten margins. Evaluate therefore also judges every
candidate against the anchor, re-scored on the candidate's test rows, so the margin is spent once
per protocol.

The anchor is the registry alias `anchor-<protocol id>` of the model. It moves only to a champion
that was promoted under this protocol (registered under its id, trained on its budget), and only
at an evaluation, where champion and anchor are scored on the same rows:
  * no anchor yet: the anchor is set to that champion (the first model promoted under the protocol);
  * the champion's primary metric beats the anchor's on those rows: the anchor moves to it.
A rollback of the champion, or a champion promoted under another protocol, leaves it where it is.
Every evaluation report (and so every registered version's lineage, which holds the gate's details)
records the anchor it was judged against and whether that evaluation moved it.
"""

from __future__ import annotations

from typing import Any

from gauntlet import registry
from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol, off_protocol_reason
from gauntlet.scoring.metrics import higher_is_better

log = get_logger("gauntlet.anchor")


def alias_name(protocol_id: str) -> str:
    return f"anchor-{protocol_id[:16]}"


def current(reg: str, protocol: Protocol) -> dict[str, Any] | None:
    """The anchor's version record, or None when no model was promoted under this protocol yet."""
    alias, _ = registry.get_alias(reg, alias_name(protocol.id))
    return None if alias is None else registry.get_version(reg, alias["version"])


def eligible(version: dict[str, Any], protocol: Protocol) -> bool:
    """Whether a promoted version may anchor this protocol: registered under it, on its budget."""
    return (
        version.get("protocol_id") == protocol.id and off_protocol_reason(version.get("params", {}), protocol) is None
    )


def beats(protocol: Protocol, challenger: dict[str, float], holder: dict[str, float]) -> bool:
    """Whether `challenger` is strictly better than `holder` on the primary metric (same rows)."""
    primary = protocol.primary_metric
    a, b = float(challenger[primary]), float(holder[primary])
    return a > b if higher_is_better(primary) else a < b


def move(reg: str, protocol: Protocol, version: int, expected: int | None, reason: str) -> bool:
    """Point the anchor at `version` if it still points at `expected`; False when another run moved it first."""
    moved = registry.set_alias(reg, alias_name(protocol.id), version, expected, reason, event="anchor_moved")
    if moved:
        log.info("anchor of protocol %s is now v%d: %s", protocol.id, version, reason)
    else:
        log.info("anchor of protocol %s moved meanwhile; left as another run set it", protocol.id)
    return moved


def settle(
    reg: str,
    protocol: Protocol,
    champ: dict[str, Any] | None,
    champion_scores: dict[str, float] | None,
    held: dict[str, Any] | None,
    held_scores: dict[str, float] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The anchor a candidate is judged against, after moving it to the champion where that is due.

    `champion_scores` and `held_scores` are the champion's and the current anchor's metrics on the
    candidate's test rows (champion_scores None when a re-trained stand-in was scored in the
    champion's place: its figures are not the champion's). Returns the anchor's version record and
    what this evaluation did to it (alias, moved, moved_from, reason).
    """
    info: dict[str, Any] = {"alias": alias_name(protocol.id), "moved": False, "moved_from": None}
    if champ is None or champion_scores is None or not eligible(champ, protocol):
        return held, info
    primary = protocol.primary_metric
    if held is None:
        reason = f"v{champ['version']} is the first model promoted under protocol {protocol.id}"
    elif held["version"] == champ["version"] or held_scores is None:
        return held, info
    elif beats(protocol, champion_scores, held_scores):
        reason = (
            f"champion v{champ['version']} beats anchor v{held['version']} on {primary} on the same test rows "
            f"({champion_scores[primary]:.4f} vs {held_scores[primary]:.4f})"
        )
    else:
        return held, info
    expected = None if held is None else held["version"]
    if move(reg, protocol, champ["version"], expected, reason):
        info.update(moved=True, moved_from=expected, reason=reason)
        return champ, info
    return current(reg, protocol), info
