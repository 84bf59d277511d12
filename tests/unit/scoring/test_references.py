"""scoring.references: a reference trained under another split is refused, naming the split."""

from __future__ import annotations

import pytest

from gauntlet import storage
from gauntlet.errors import BadInput
from gauntlet.protocol import load_protocol
from gauntlet.scoring.compare import protocol_split
from gauntlet.scoring.references import require_own_split

PROTOCOL = "include/protocols/digits-v1.yaml"


def _dataset(store: str, split: dict[str, object] | None) -> str:
    uri = f"{store}/datasets/d/v1"
    storage.put_json(storage.join(uri, "MANIFEST.json"), {"files": {}, "protocol_split": split})
    return uri


def test_a_dataset_with_another_salt_is_refused_naming_both(store: str) -> None:
    protocol = load_protocol(PROTOCOL)
    dataset = _dataset(store, {**protocol_split(protocol), "salt": "another-salt"})
    with pytest.raises(BadInput) as refused:
        require_own_split("the champion", dataset, protocol)
    message = str(refused.value)
    assert "salt 'another-salt'" in message and f"salt {protocol.salt!r}" in message
    assert message.startswith(f"the champion was trained on dataset {dataset}") and protocol.id in message


def test_a_dataset_without_a_recorded_split_is_refused(store: str) -> None:
    with pytest.raises(BadInput, match="an unrecorded split"):
        require_own_split("the champion", _dataset(store, None), load_protocol(PROTOCOL))


def test_the_protocols_own_split_passes(store: str) -> None:
    protocol = load_protocol(PROTOCOL)
    require_own_split("the champion", _dataset(store, protocol_split(protocol)), protocol)
