"""gauntlet.splits: a row's split is a function of the protocol's salt and its id's canonical text.

The pinned formula, the fractions and the growing-data property are in tests/unit/test_protocol.py, the
canonical id text in tests/reliability/test_trust_data.py; here: the vectorised paths agree with the rule.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest
from testkit import ROOT

from gauntlet import splits
from gauntlet.errors import RowIdError
from gauntlet.protocol import load_protocol

PROTOCOL = load_protocol(ROOT / "include" / "protocols" / "digits-v1.yaml")
IDS = [f"row-{i}" for i in range(500)] + ["007", "7", str(2**53 + 1)]


def test_the_arrow_path_and_the_list_path_agree_with_the_one_row_rule() -> None:
    expected = [splits.split_of(r, PROTOCOL) for r in IDS]
    assert list(splits.assign_splits(IDS, PROTOCOL)) == expected
    assert list(splits.splits_of_text(pa.array(IDS), PROTOCOL)) == expected
    assert set(expected) == set(splits.SPLITS)


def test_integer_and_dictionary_encoded_id_columns_hash_as_their_text() -> None:
    numbers = pa.array([7, 2**53 + 1], pa.int64())
    text = splits.canonical_id_array(pa.chunked_array([numbers[:1], numbers[1:]]), "f")
    assert list(splits.splits_of_text(text, PROTOCOL)) == [
        splits.split_of("7", PROTOCOL),
        splits.split_of(str(2**53 + 1), PROTOCOL),
    ]
    encoded = pa.array(["007", "a", "007"]).dictionary_encode()
    assert splits.canonical_id_array(encoded, "f").to_pylist() == ["007", "a", "007"]


def test_a_bad_id_names_where_it_was_found() -> None:
    with pytest.raises(RowIdError, match=r"s3://b/f\.csv: column 'id'"):
        splits.canonical_ids(["a", 1.5], "s3://b/f.csv: column 'id'")
    with pytest.raises(RowIdError, match="bool"):
        splits.canonical_id_array(pa.array([True, False]), "f")


def test_only_the_salt_and_the_fractions_move_rows() -> None:
    before = splits.assign_splits(IDS, PROTOCOL)
    same_split = dataclasses.replace(PROTOCOL, margin=PROTOCOL.margin + 0.01, epochs=PROTOCOL.epochs + 1)
    assert (splits.assign_splits(IDS, same_split) == before).all()
    more_test = dataclasses.replace(PROTOCOL, test_fraction=PROTOCOL.test_fraction + 0.1)
    after = splits.assign_splits(IDS, more_test)
    # Growing the test fraction only moves rows into test, never out of it.
    assert np.all(after[before == "test"] == "test") and (after == "test").sum() > (before == "test").sum()
    assert splits.split_hash_prefix(PROTOCOL) == f"{PROTOCOL.salt}:"
