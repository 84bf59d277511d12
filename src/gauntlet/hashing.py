"""The one hashing helper: sha256 of bytes, files and canonical JSON.

Everything content-addressed in gauntlet (dataset versions, experiment keys, protocol ids, code
versions) is built from these functions, so the same inputs always land at the same place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Short ids keep S3 keys readable; 16 hex chars (64 bits) is ample for a single project's objects.
SHORT_ID_LENGTH = 16


def new_sha256() -> hashlib._Hash:
    """An incremental sha256 for callers that digest many pieces (e.g. model weights)."""
    return hashlib.sha256()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_u64(texts: Iterable[str], prefix: str = "") -> NDArray[np.uint64]:
    """The first 8 bytes of sha256(prefix + text), big-endian, for many texts at once.

    The same number as int(sha256_bytes(...)[:16], 16), without a hex string and an int parse per
    text: frozen splits hash every row id, and that parse was a large share of the work
    (docs/benchmarks.md, data path).
    """
    head = prefix.encode()
    return sha256_u64_of_bytes([head + text.encode() for text in texts])


def sha256_u64_of_bytes(messages: Iterable[bytes]) -> NDArray[np.uint64]:
    """The first 8 bytes of sha256(message), big-endian, for many byte strings at once."""
    sha256 = hashlib.sha256
    joined = b"".join([sha256(message).digest()[:8] for message in messages])
    return np.frombuffer(joined, dtype=">u8").astype(np.uint64)


def canonical_json(obj: Any) -> bytes:
    """JSON with sorted keys and no whitespace: equal objects give equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def content_hash(obj: Any, length: int = SHORT_ID_LENGTH) -> str:
    """A short, stable id for any JSON-serialisable object."""
    return sha256_bytes(canonical_json(obj))[:length]


def code_version(modules: tuple[str, ...] | None = None, root: Path | None = None) -> str:
    """Hash of the package's own source files (all of them, or the named ones).

    A git commit is not available inside a container or a pod; the source itself always is, and
    hashing it means a change that alters behaviour can never reuse a stale cached result. Steps
    name the modules that shape their output, so editing the CLI does not invalidate every model.
    `root` is the package folder to read (default: this one).
    """
    root = root or Path(__file__).parent
    paths = sorted(root.rglob("*.py")) if modules is None else sorted(root / m for m in modules)
    digest = hashlib.sha256()
    for path in paths:
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:SHORT_ID_LENGTH]


# The modules whose code decides what a dataset version or a trained model contains. A dataset's
# rows and splits come from preprocess, the raw-data reader, the split rule and the hashes under
# it, and the encoding fitted on its train rows; the protocol's gate and metrics do not change a
# dataset, so their wording keeps versions.
DATASET_CODE = (
    "steps/preprocess.py",
    "partition_outputs.py",
    "encoding.py",
    "rawdata.py",
    "splits.py",
    "hashing.py",
)
TRAINING_CODE = (
    "steps/train.py",
    "training/worker.py",
    "training/backends.py",
    "training/loop.py",
    "training/checkpoint.py",
    "training/cpu_tuning.py",
    "training/faults.py",
    "training/model.py",
    "training/data.py",
    "training/device_data.py",
    "encoding.py",
)
# An evaluation's figures and verdict: the evaluate step, the protocol's budget rule, the anchor,
# the scoring that shapes a score (metrics, bootstrap, gate, the references), the error analysis,
# the domain-shift check and the kept predictions, and the model code.
# scoring/report.py only renders them, so rewording a table does not re-score every candidate.
EVALUATE_CODE = (
    "steps/evaluate.py",
    "protocol.py",
    "anchor.py",
    "scoring/metrics.py",
    "scoring/bootstrap.py",
    "scoring/gate.py",
    "scoring/power.py",
    "scoring/diagnosis.py",
    "scoring/references.py",
    "scoring/predictions.py",
    "scoring/mistakes.py",
    "scoring/shift.py",
    "scoring/context.py",
    "training/model.py",
    "training/data.py",
    "encoding.py",
)
