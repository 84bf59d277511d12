"""The label-error ledger: test rows every model gets confidently wrong, tracked, never fixed.

Evaluate adds suspects to <store>/ledgers/<dataset>/ledger.json. The pipeline never edits the test
set; a person confirms an entry with `gauntlet ledger confirm`, which writes a new protocol file
that excludes the row (a new protocol version, so old and new results are never mixed) and lists
the experiments that must be re-scored under it. Label errors are a classification notion (a
class every model confidently prefers): a regression evaluation records nothing here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gauntlet import experiments, layout, storage
from gauntlet.errors import BadInput, PreconditionFailed, StorageError
from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol, load_protocol
from gauntlet.scoring.metrics import CLASSIFICATION
from gauntlet.training.data import Split

CONFIDENCE = 0.8
_RETRIES = 20
log = get_logger("gauntlet.ledger")


def record_evaluation(
    store: str,
    protocol: Protocol,
    dataset: str,
    experiment: str,
    test: Split,
    probas: dict[str, np.ndarray],
    class_names: Sequence[str] = (),
) -> tuple[int | None, str | None]:
    """(suspects found, ledger uri) for one evaluation's predictions; (None, None) when the protocol's
    task has no label errors to suspect (regression), which is logged."""
    if protocol.task != CLASSIFICATION:
        log.info(
            "label-error ledger: nothing recorded, protocol %s is a %s protocol and suspected label errors "
            "are rows every model puts confidently in another class (classification only)",
            protocol.name,
            protocol.task,
        )
        return None, None
    suspects = suspected_label_errors(test, probas, class_names=class_names)
    return len(suspects), record_suspects(store, protocol, dataset, experiment, suspects)


def suspected_label_errors(
    test: Split, probas: dict[str, np.ndarray], confidence: float = CONFIDENCE, class_names: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Rows where every model predicts the same wrong class with at least `confidence`; with
    `class_names` (one per class index) each entry also names its label and predicted class."""
    stacked = np.stack(list(probas.values()))  # models x rows x classes
    predicted = stacked.argmax(axis=2)
    confident = stacked.max(axis=2) >= confidence
    agree = (predicted == predicted[0]).all(axis=0)
    wrong = (predicted != test.labels).all(axis=0)
    rows = np.flatnonzero(agree & wrong & confident.all(axis=0))
    suspects: list[dict[str, Any]] = []
    for i in rows:
        label, guess = int(test.labels[i]), int(predicted[0, i])
        suspect: dict[str, Any] = {
            "row_id": str(test.ids[i]),
            "label": label,
            "predicted": guess,
            "confidence": {m: round(float(p[i].max()), 4) for m, p in probas.items()},
        }
        if class_names:
            suspect.update(label_name=str(class_names[label]), predicted_name=str(class_names[guess]))
        suspects.append(suspect)
    return suspects


def record_suspects(
    store: str, protocol: Protocol, dataset: str, experiment: str, suspects: list[dict[str, Any]]
) -> str:
    uri = layout.ledger_uri(store, dataset)
    if not suspects:
        return uri
    for _ in range(_RETRIES):
        try:
            ledger, etag = storage.get_json_with_etag(uri)
        except FileNotFoundError:
            ledger, etag = {"dataset": dataset, "entries": {}}, None
        for suspect in suspects:
            entry = ledger["entries"].setdefault(
                suspect["row_id"],
                {**suspect, "status": "suspected", "first_seen": dt.datetime.now(dt.UTC).isoformat(), "seen_by": []},
            )
            if experiment not in entry["seen_by"]:
                entry["seen_by"].append(experiment)
        try:
            if etag is None:
                storage.put_json(uri, ledger, if_none_match=True)
            else:
                storage.put_json(uri, ledger, if_match=etag)
            return uri
        except PreconditionFailed:
            continue
    raise StorageError(f"ledger {uri} kept changing; suspects not recorded")


def confirm(
    store: str, dataset: str, row_id: str, protocol_path: str | Path, output_path: str | Path
) -> dict[str, Any]:
    """Confirm a suspect: mark it, write a new protocol excluding it, list experiments to re-score."""
    uri = layout.ledger_uri(store, dataset)
    ledger, etag = storage.get_json_with_etag(uri)
    if row_id not in ledger["entries"]:
        raise BadInput(f"row {row_id} is not in the ledger {uri}")
    old = load_protocol(protocol_path)
    raw = dict(old.raw)
    raw["excluded_row_ids"] = sorted({*old.excluded_row_ids, row_id})
    new = Protocol.from_dict(raw)
    Path(output_path).write_text(yaml.safe_dump(raw, sort_keys=False))
    ledger["entries"][row_id].update(
        status="confirmed", confirmed_at=dt.datetime.now(dt.UTC).isoformat(), new_protocol=new.id
    )
    storage.put_json(uri, ledger, if_match=etag)
    rescore = [r["key"] for r in experiments.list_records(store, old.id)]
    return {"old_protocol": old.id, "new_protocol": new.id, "protocol_file": str(output_path), "rescore": rescore}
