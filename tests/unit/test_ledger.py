"""The label-error ledger end to end, from a real label error to a new protocol version; which
suspects it takes (classification only, with class names).

A few test rows get a wrong label in the raw data (as an upstream labelling mistake would). Every
model then gets them confidently wrong, evaluate records them as suspects, a person confirms one,
which writes a new protocol version; results under the old and new versions are never compared.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_support import MLP, build_dataset, evaluate, log_of, train
from testkit import run_cli

from gauntlet import layout, ledger, storage
from gauntlet.contract import EXIT_BAD_INPUT
from gauntlet.protocol import Protocol, load_protocol
from gauntlet.splits import split_of
from gauntlet.training.data import Split

ROOT = Path(__file__).resolve().parents[2]
V1 = load_protocol(ROOT / "include/protocols/digits-v1.yaml")
MODEL = [*MLP, "--set", "model.hidden=[64]", "--set", "training.epochs=6"]
TRUE, WRONG = 0, 6


def mislabel_test_rows(store: str, count: int) -> set[str]:
    """Relabel `count` zeros of the protocol's test split as sixes, in the raw partitions."""
    flipped: set[str] = set()
    for obj in storage.list_objects(layout.raw_root(store, "raw/digits") + "/"):
        frame = pd.read_parquet(io.BytesIO(storage.get_bytes(obj["uri"])))
        rows = frame.index[(frame["label"] == TRUE) & frame["row_id"].map(lambda r: split_of(r, V1) == "test")]
        rows = rows[: count - len(flipped)]
        if len(rows):
            frame.loc[rows, "label"] = WRONG
            flipped |= set(frame.loc[rows, "row_id"])
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            storage.put_bytes(obj["uri"], buffer.getvalue())
        if len(flipped) == count:
            return flipped
    raise AssertionError("not enough test rows to mislabel")


@pytest.mark.slow
def test_confirmed_label_error_makes_a_new_protocol_that_is_never_mixed_with_the_old(
    seeded_store: str, project_protocol: Callable[[str], Path]
) -> None:
    store = seeded_store
    flipped = mislabel_test_rows(store, 4)
    dataset = build_dataset(store)
    _, trained = train(store, dataset, *MODEL)
    _, old_eval = evaluate(store, trained["experiment_uri"], *MODEL)
    old_report = storage.get_json(old_eval["report_uri"])
    assert old_report["protocol_id"] == V1.id

    entries = storage.get_json(layout.ledger_uri(store, "digits"))["entries"]
    caught = flipped & set(entries)
    assert caught, f"none of {sorted(flipped)} in the ledger {sorted(entries)}"
    assert old_report["suspected_label_errors"] == len(entries)
    row = sorted(caught)[0]
    assert entries[row]["label"] == WRONG and entries[row]["predicted"] == TRUE
    assert entries[row]["status"] == "suspected" and entries[row]["seen_by"] == [trained["key"]]
    assert set(entries[row]["confidence"]) == {"candidate", "baseline"}
    assert min(entries[row]["confidence"].values()) >= ledger.CONFIDENCE
    listing, _ = run_cli(store, "ledger", "list")
    assert f"{row}  label={WRONG} predicted={TRUE}  suspected" in listing.stdout

    new_file = project_protocol("digits-v2")
    confirmed, result = run_cli(store, "ledger", "confirm", row, "--output", str(new_file))
    new = load_protocol(new_file)
    assert result["old_protocol"] == V1.id and result["new_protocol"] == new.id != V1.id
    assert new.excluded_row_ids == (row,)
    assert result["rescore"] == [trained["key"]]
    assert f"must be re-scored under it: {trained['key']}" in confirmed.stdout
    assert storage.get_json(layout.ledger_uri(store, "digits"))["entries"][row]["status"] == "confirmed"
    assert V1.id == load_protocol(ROOT / "include/protocols/digits-v1.yaml").id  # the old file is untouched

    # The experiment trained under v1 is not scored under the new version.
    refused, _ = evaluate(store, trained["experiment_uri"], "--protocol", str(new_file), *MODEL, check=False)
    assert refused.returncode == EXIT_BAD_INPUT
    assert f"trained under protocol {V1.id}, not {new.id}" in refused.stderr
    assert "never compared" in refused.stderr and "Traceback" not in refused.stderr

    # Re-scoring means running it under the new protocol: a new experiment whose miss names the protocol.
    process, retrained = train(store, dataset, "--protocol", str(new_file), *MODEL)
    assert retrained["cache_hit"] is False and retrained["key"] != trained["key"]
    miss = next(line for line in log_of(process).splitlines() if "cache miss" in line)
    assert f"differs only in: protocol ('{new.id}' vs '{V1.id}')" in miss
    _, new_eval = evaluate(store, retrained["experiment_uri"], "--protocol", str(new_file), *MODEL)
    new_report = storage.get_json(new_eval["report_uri"])
    assert new_report["protocol_id"] == new.id
    assert new_report["test_rows"] == old_report["test_rows"] - 1 and new_report["excluded_rows"] == 1

    # Reports under different versions cannot be put side by side; under one version they can.
    mixed, _ = run_cli(store, "compare", old_eval["report_uri"], new_eval["report_uri"], check=False)
    assert mixed.returncode == EXIT_BAD_INPUT
    assert f"under protocol {V1.id}" in mixed.stderr and f"under protocol {new.id}" in mixed.stderr
    assert "never compared" in mixed.stderr
    _, compared = run_cli(store, "compare", old_eval["report_uri"], old_eval["report_uri"])
    assert compared["protocol_id"] == V1.id and compared["metrics"]["error_rate"]["diff"] == 0


def _split(labels: list[float]) -> Split:
    ids = np.array([f"r{i}" for i in range(len(labels))])
    frame = pd.DataFrame({"row_id": ids, "date": "2026-11-01", "y": labels})
    return Split(ids, np.zeros((len(labels), 1), dtype=np.float32), np.asarray(labels), frame)


def test_suspects_name_their_label_and_predicted_class() -> None:
    test = _split([0, 1, 1])
    confident_wrong = np.array([[0.9, 0.1], [0.05, 0.95], [0.9, 0.1]])  # row r2 is labelled 1, both say 0
    probas = {"candidate": confident_wrong, "baseline": confident_wrong}
    suspects = ledger.suspected_label_errors(test, probas, class_names=["healthy", "sick"])
    assert [(s["row_id"], s["label"], s["predicted"]) for s in suspects] == [("r2", 1, 0)]
    assert (suspects[0]["label_name"], suspects[0]["predicted_name"]) == ("sick", "healthy")
    assert "label_name" not in ledger.suspected_label_errors(test, probas)[0]


def test_a_regression_evaluation_records_no_label_errors_and_says_why(
    store: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw = {**V1.raw, "task": "regression", "metrics": {"primary": "rmse"}, "baseline": {"kind": "ridge"}}
    protocol = Protocol.from_dict(raw)
    values = np.array([[10.0], [20.0], [30.0]])
    with caplog.at_level(logging.INFO, logger="gauntlet.ledger"):
        found, uri = ledger.record_evaluation(
            store, protocol, "toy", "k1", _split([10.0, 25.0, 90.0]), {"candidate": values, "baseline": values}
        )
    assert (found, uri) == (None, None)
    assert not storage.exists(layout.ledger_uri(store, "toy"))
    assert "nothing recorded" in caplog.text and "regression protocol" in caplog.text
