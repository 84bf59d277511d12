"""A small registry as the pipeline leaves it, without training: experiment records with learning
curves, committed evaluation reports, and versions registered and promoted by the register step.

Used by the registry view's unit test and its stack test (which points storage at the stack's S3).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

MODEL = "digits"
PROTOCOL = "digitsv1" + "0" * 8
OTHER_PROTOCOL = "digitsv2" + "1" * 8
TEST_SET = "ab12cd34ef56ab78"


def _record(store: str, key: str, protocol: str, lr: float, epochs: int, dev: float, finished: str) -> dict[str, Any]:
    from gauntlet import layout, storage
    from gauntlet.hashing import sha256_bytes

    uri = layout.experiment_uri(store, key)
    storage.put_bytes(layout.model_uri(uri), b"model " + key.encode())
    curve = [
        {"epoch": e, "step": 1000 * e, "train_error": dev * 0.6 * (1 + 1 / e), "dev_error": dev * (1 + 1 / e)}
        for e in range(1, epochs + 1)
    ]
    record = {
        "key": key,
        "key_parts": {"protocol": protocol, "dataset": "v20261107", "params": {}, "code": "c0de", "runtime": {}},
        "uri": uri,
        "params": {"model": {"kind": "mlp"}, "lr": lr, "epochs": epochs, "workers": 2},
        "dataset_uri": layout.dataset_prefix(store, "digits", "v20261107"),
        "dataset_version": "v20261107",
        "protocol_id": protocol,
        "code_version": "c0de",
        "finished": finished,
        "curve": curve,
        "final": {"train_error": curve[-1]["train_error"], "dev_error": curve[-1]["dev_error"]},
        "wall_seconds": 12.5 * epochs,
        "cost_usd": 0.0004 * epochs,
        "model_uri": layout.model_uri(uri),
        "model_sha256": sha256_bytes(b"model " + key.encode()),
    }
    storage.put_json(layout.record_uri(uri), record)
    return record


def _evaluate(store: str, record: dict[str, Any], passed: bool, reason: str, champion: int | None) -> str:
    """A committed evaluation (report.json and report.html, then MANIFEST.json); returns the report's URI."""
    from gauntlet import layout, storage

    error = record["final"]["dev_error"] * 1.05
    report = {
        "experiment_key": record["key"],
        "experiment_uri": record["uri"],
        "protocol_id": record["protocol_id"],
        "protocol_name": "digits",
        "dataset_version": record["dataset_version"],
        "test_set_id": TEST_SET,
        "test_rows": 360,
        "metrics": {"candidate": {"accuracy": 1 - error, "error_rate": error, "macro_f1": 1 - error * 1.1}},
        "gate": {"passed": passed, "reason": reason},
        "champion_version": champion,
        "created": record["finished"],
    }
    prefix = layout.evaluation_prefix(store, record["protocol_id"], record["key"], "refs", "e" + record["key"][:7])
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "report.json").write_text(json.dumps(report))
        Path(tmp, "report.html").write_text(f"<h1>report {record['key']}</h1>")
        storage.commit_directory(tmp, prefix, {"kind": "evaluation"})
    return layout.report_uri(prefix)


def seed_registry(store: str) -> dict[str, Any]:
    """Three experiments under PROTOCOL (v1 then v2 promoted; the third failed its gate, registered
    with --force as v3, never promoted) and one under OTHER_PROTOCOL, evaluated but not registered."""
    from gauntlet.steps import register

    start = dt.datetime(2026, 11, 5, 2, tzinfo=dt.UTC)
    when = [(start + dt.timedelta(days=i)).isoformat() for i in range(4)]
    first = _record(store, "a1" * 16, PROTOCOL, 0.1, 4, 0.06, when[0])
    second = _record(store, "b2" * 16, PROTOCOL, 0.03, 6, 0.035, when[1])
    third = _record(store, "c3" * 16, PROTOCOL, 0.3, 3, 0.09, when[2])
    other = _record(store, "d4" * 16, OTHER_PROTOCOL, 0.05, 5, 0.04, when[3])
    outputs = [
        register.run(store, MODEL, _evaluate(store, first, True, "no champion yet: accepted", None), "nightly__d1"),
        register.run(
            store,
            MODEL,
            _evaluate(store, second, True, "error_rate better than v1 by 0.026 (CI excludes 0)", 1),
            "nightly__d2",
        ),
        register.run(
            store,
            MODEL,
            _evaluate(store, third, False, "error_rate worse than v2 by 0.057", 2),
            "nightly__d3",
            force=True,
        ),
    ]
    _evaluate(store, other, True, "accepted", None)
    return {"outputs": outputs, "keys": [first["key"], second["key"], third["key"], other["key"]]}
