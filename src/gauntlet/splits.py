"""The frozen split: a row's split is a function of the protocol's salt and its id's canonical text.

Ids are text. A string id is hashed exactly as written (`007` stays `007`); an integer id (a
Parquet int column) is written in plain decimal, so 7 and "7" are one row wherever they come
from. Float, boolean and missing ids are refused: a float cannot name a row exactly (2^53 + 1
reads back as 9007199254740992.0), and a split that depended on a file's dtype would move rows
between train and test. Every reader of ids (preprocess, the protocol's helpers, evaluate's
excluded ids, the ledger) goes through this module, so one id hashes the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from gauntlet.errors import RowIdError
from gauntlet.hashing import sha256_bytes, sha256_u64, sha256_u64_of_bytes

if TYPE_CHECKING:  # protocol.py imports nothing from here; keep the import one-way at run time
    from gauntlet.protocol import Protocol

SPLITS = ("train", "dev", "test")
_EXAMPLES = 3


def canonical_id(value: Any, where: str = "row id") -> str:
    """The text a row id is hashed and compared as: strings as they are, integers in plain decimal."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return str(int(value))
    raise RowIdError(
        f"{where}: row ids must be text or integers, got {type(value).__name__} {value!r}; "
        "write the id column as strings (or integers) upstream"
    )


def canonical_ids(values: Iterable[Any], where: str = "row id") -> list[str]:
    return [canonical_id(v, where) for v in values]


def canonical_id_array(ids: pa.Array | pa.ChunkedArray, where: str) -> pa.Array:
    """canonical_id for an Arrow column, vectorised: a string array, or RowIdError naming `where`."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    kind = ids.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)):
        examples = ids.drop_null().slice(0, _EXAMPLES).to_pylist()
        raise RowIdError(
            f"{where}: row ids must be text or integers, got Arrow type {kind} (e.g. {examples}); "
            "a float or boolean id has no exact text form: write the id column as strings upstream"
        )
    if ids.null_count:
        missing = np.flatnonzero(ids.is_null().to_numpy(zero_copy_only=False))[:_EXAMPLES].tolist()
        raise RowIdError(f"{where}: {ids.null_count} missing row ids (rows {missing}, counted from 0)")
    # Arrow writes integers in plain decimal (no exponent, no '.0'), as str(int) does.
    return pc.cast(ids, pa.string())


def split_hash_prefix(protocol: Protocol) -> str:
    """What precedes a row id's canonical text in the hashed message."""
    return f"{protocol.salt}:"


def splits_from_hashes(hashes: NDArray[np.uint64], protocol: Protocol) -> NDArray[np.str_]:
    """'train' / 'dev' / 'test' per row from sha256_u64(split_hash_prefix + canonical id)."""
    # Bit-identical to unit_hash per row (uint64 -> float64 rounds as int / 2**64 does), vectorised.
    u = hashes / 2**64
    test_cut = protocol.test_fraction
    dev_cut = protocol.test_fraction + protocol.dev_fraction
    return np.where(u < test_cut, "test", np.where(u < dev_cut, "dev", "train"))


def assign_splits(row_ids: Sequence[Any], protocol: Protocol) -> NDArray[np.str_]:
    """The split of each row id (text or integer), as a numpy array of 'train' / 'dev' / 'test'."""
    return splits_from_hashes(sha256_u64(canonical_ids(row_ids), split_hash_prefix(protocol)), protocol)


def unit_hash(salt: str, text: str) -> float:
    """The rule, for one canonical id: sha256(salt:text)'s first 64 bits as a fraction of 2^64."""
    return int(sha256_bytes(f"{salt}:{text}".encode())[:16], 16) / 2**64


def split_of(row_id: Any, protocol: Protocol) -> str:
    """'train', 'dev' or 'test' for one row; depends only on the salt and the id's canonical text."""
    u = unit_hash(protocol.salt, canonical_id(row_id))
    if u < protocol.test_fraction:
        return "test"
    return "dev" if u < protocol.test_fraction + protocol.dev_fraction else "train"


def splits_of_text(text: pa.Array, protocol: Protocol) -> NDArray[np.str_]:
    """assign_splits for an Arrow string array of canonical ids (see canonical_id_array)."""
    # The message is built in Arrow; per row, Python only calls sha256.
    messages = pc.binary_join_element_wise(split_hash_prefix(protocol), text, "").cast(pa.binary())
    return splits_from_hashes(sha256_u64_of_bytes(messages.to_pylist()), protocol)
