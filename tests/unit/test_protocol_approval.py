"""gauntlet.protocol: the optional `gate.approval` key, and the ids of protocols that leave it out."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from testkit import ROOT

from gauntlet.errors import ProtocolError
from gauntlet.protocol import AUTOMATIC, REQUIRED, Protocol, load_protocol

DIGITS = ROOT / "include" / "protocols" / "digits-v1.yaml"
# digits-v1's id before the key existed: every experiment, evaluation and registry entry of the
# demo is filed under it, so it must not move.
DIGITS_V1_ID = "03dfbb507476726c"


def _digits(**gate: Any) -> dict[str, Any]:
    raw = copy.deepcopy(yaml.safe_load(DIGITS.read_text()))
    raw["gate"].update(gate)
    return dict(raw)


def test_digits_v1_keeps_its_id_and_promotes_automatically() -> None:
    protocol = load_protocol(DIGITS)
    assert protocol.id == DIGITS_V1_ID
    assert protocol.approval == AUTOMATIC and "approval" not in protocol.raw["gate"]


def test_every_committed_protocol_promotes_automatically() -> None:
    for path in sorted((ROOT / "include" / "protocols").glob("*.yaml")):
        if path.name.startswith("test-"):  # another test's temporary protocol
            continue
        assert load_protocol(path).approval == AUTOMATIC, path.name


def test_required_approval_is_read_and_is_a_new_protocol_version() -> None:
    required = Protocol.from_dict(_digits(approval=REQUIRED))
    assert required.approval == REQUIRED
    assert required.id != DIGITS_V1_ID
    # Spelling out the default is an edit too: a new version, same behaviour.
    automatic = Protocol.from_dict(_digits(approval=AUTOMATIC))
    assert automatic.approval == AUTOMATIC and automatic.id not in (DIGITS_V1_ID, required.id)


@pytest.mark.parametrize("value", ["manual", True, "Required", None])
def test_an_unknown_approval_is_refused_naming_the_key(value: Any) -> None:
    with pytest.raises(ProtocolError, match=r"gate\.approval must be one of automatic, required"):
        Protocol.from_dict(_digits(approval=value))
