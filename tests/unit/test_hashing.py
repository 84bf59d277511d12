"""gauntlet.hashing: sha256 of bytes, files and canonical JSON; the code version of source files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from gauntlet import hashing


def test_canonical_json_ignores_key_order_and_whitespace() -> None:
    a = {"b": 1, "a": {"y": [1, 2], "x": None}}
    b = {"a": {"x": None, "y": [1, 2]}, "b": 1}
    assert hashing.canonical_json(a) == hashing.canonical_json(b) == b'{"a":{"x":null,"y":[1,2]},"b":1}'
    assert hashing.content_hash(a) == hashing.content_hash(b)
    assert len(hashing.content_hash(a)) == hashing.SHORT_ID_LENGTH
    assert hashing.content_hash({"b": 2}) != hashing.content_hash({"b": 1})


def test_file_and_bytes_digests_agree(tmp_path: Path) -> None:
    data = b"x" * 3000
    path = tmp_path / "blob"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert hashing.sha256_bytes(data) == expected
    assert hashing.sha256_file(path, chunk_size=1024) == expected  # chunked reads give the same digest


def test_sha256_u64_is_the_first_eight_bytes_of_the_prefixed_digest() -> None:
    values = hashing.sha256_u64(["007", "7"], prefix="salt:")
    assert values.dtype == np.uint64
    assert [int(v) for v in values] == [
        int(hashing.sha256_bytes(b"salt:007")[:16], 16),
        int(hashing.sha256_bytes(b"salt:7")[:16], 16),
    ]


def test_code_version_follows_the_named_files_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("A = 1\n")
    (tmp_path / "b.py").write_text("B = 1\n")
    whole, only_a = hashing.code_version(root=tmp_path), hashing.code_version(("a.py",), root=tmp_path)
    (tmp_path / "b.py").write_text("B = 2\n")
    assert hashing.code_version(root=tmp_path) != whole
    assert hashing.code_version(("a.py",), root=tmp_path) == only_a  # editing b.py keeps a.py's version
    (tmp_path / "a.py").write_text("A = 2\n")
    assert hashing.code_version(("a.py",), root=tmp_path) != only_a


def test_code_version_skips_bytecode_caches_and_includes_file_names(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("X = 1\n")
    before = hashing.code_version(root=tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "junk.py").write_text("anything")
    assert hashing.code_version(root=tmp_path) == before
    (tmp_path / "a.py").rename(tmp_path / "renamed.py")  # same bytes under another name
    assert hashing.code_version(root=tmp_path) != before


def test_every_module_a_code_version_names_exists() -> None:
    package = Path(hashing.__file__).parent
    for name in (*hashing.DATASET_CODE, *hashing.TRAINING_CODE, *hashing.EVALUATE_CODE):
        assert (package / name).is_file(), name
