"""The references a candidate is judged against: the baseline model and the champion's stand-in.

The baseline is the protocol's logistic regression (classification) or ridge regression
(regression), fit on the candidate's training rows. A
champion trained under another split has seen some of the candidate's test rows, so it is never
scored on them: its config re-trained under this protocol on the candidate's dataset stands in for
it, and without one `champion_stand_in` says (BadInput) how to make one. The anchor is
gauntlet.anchor's. This module shapes the verdict, so the evaluation key hashes it.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gauntlet import experiments, registry, storage
from gauntlet.errors import BadInput
from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol, off_protocol_reason
from gauntlet.scoring.compare import describe_split, protocol_split, split_difference
from gauntlet.scoring.metrics import REGRESSION
from gauntlet.training.data import Split

log = get_logger("gauntlet.evaluate")


def baseline_predictions(protocol: Protocol, train: Split, test: Split, n_classes: int) -> np.ndarray:
    """The protocol's baseline on the test rows: probabilities (rows, n_classes), or values (rows, 1)
    for a regression protocol."""
    if protocol.task == REGRESSION:
        return baseline_values(protocol, train, test)
    return baseline_proba(protocol, train, test, n_classes)


def baseline_values(protocol: Protocol, train: Split, test: Split) -> np.ndarray:
    """The regression baseline: ridge regression on the standardised encoded features, shape (rows, 1)."""
    model = make_pipeline(StandardScaler(), Ridge(alpha=float(protocol.baseline.get("alpha", 1.0))))
    model.fit(train.features, np.asarray(train.labels, dtype=np.float64))
    return np.asarray(model.predict(test.features), dtype=np.float64).reshape(-1, 1)


def baseline_proba(protocol: Protocol, train: Split, test: Split, n_classes: int) -> np.ndarray:
    """The simple model every candidate must beat: standardised logistic regression."""
    settings = protocol.baseline
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(
            C=float(settings.get("C", 1.0)), max_iter=int(settings.get("max_iter", 500)), random_state=protocol.seed
        ),
    )
    model.fit(train.features, train.labels)
    proba = np.zeros((len(test.labels), n_classes))
    proba[:, model.classes_] = model.predict_proba(test.features)
    return proba


def _split_problem(dataset_uri: str, protocol: Protocol) -> tuple[list[str], Any]:
    recorded = storage.read_manifest(dataset_uri).get("protocol_split")
    return split_difference(recorded, protocol_split(protocol)), recorded


def retrain_command(champ: dict[str, Any], dataset_uri: str) -> str:
    """The train command that re-trains a registered version's config (from its lineage) on a dataset."""
    params = champ.get("params", {})
    sets = [f"model.{k}={json.dumps(v, separators=(',', ':'))}" for k, v in sorted(params.get("model", {}).items())]
    sets += [f"training.{k}={json.dumps(params[k])}" for k in _RETRAIN_KEYS if params.get(k) is not None]
    options = " ".join(f"--set {shlex.quote(s)}" for s in sets)
    return f"python -m gauntlet --protocol PROTOCOL_FILE {options} train --dataset {shlex.quote(dataset_uri)}"


# Training params a re-train copies from the champion; epochs, patience and seed are the protocol's.
_RETRAIN_KEYS = ("batch_size", "lr", "momentum", "weight_decay", "workers", "threads_per_worker", "schedule")


def retrained_champion(
    store: str, protocol: Protocol, champ: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any] | None:
    """The champion's config re-trained under this protocol on the candidate's dataset, if it was."""
    wanted = {k: v for k, v in champ.get("params", {}).items() if k in ("model", *_RETRAIN_KEYS)}
    matches = [
        r
        for r in experiments.list_records(store, protocol.id)
        if r["dataset_version"] == record["dataset_version"]
        and off_protocol_reason(r["params"], protocol) is None
        and all(r["params"].get(k) == v for k, v in wanted.items())
    ]
    return matches[-1] if matches else None


def champion_stand_in(
    store: str, protocol: Protocol, champ: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any] | None:
    """None when the champion itself may be scored on the candidate's test rows; else its re-trained stand-in.

    A champion trained under another split has seen some of these test rows: it is never scored on
    them. Its config re-trained under this split stands in for it; without one, BadInput says how.
    """
    differs, recorded = _split_problem(champ["dataset_uri"], protocol)
    if not differs:
        return None
    stand_in = retrained_champion(store, protocol, champ, record)
    if stand_in is not None:
        log.info(
            "champion v%d was trained under another split (%s); comparing against its config re-trained "
            "under this protocol: experiment %s",
            champ["version"],
            describe_split(recorded),
            stand_in["key"],
        )
        return stand_in
    raise BadInput(
        f"champion v{champ['version']} was trained on dataset {champ['dataset_version']} ({champ['dataset_uri']}), "
        f"split with {describe_split(recorded)}; protocol {protocol.name} ({protocol.id}) splits with "
        f"{describe_split(protocol_split(protocol))} (differs in {', '.join(differs)}), so rows the "
        "champion trained on are test rows here and its score would be inflated: it is not compared. Re-train "
        f"the champion's config (lineage of v{champ['version']}: `registry show {champ['version']}`) under this "
        "protocol on the candidate's dataset, then evaluate again (the re-trained model stands in for it):\n  "
        + retrain_command(champ, record["dataset_uri"])
        + f"\n(PROTOCOL_FILE: the file of protocol {protocol.id})"
    )


def require_own_split(what: str, dataset_uri: str, protocol: Protocol) -> None:
    differs, recorded = _split_problem(dataset_uri, protocol)
    if differs:
        raise BadInput(
            f"{what} was trained on dataset {dataset_uri}, built with "
            f"{describe_split(recorded)}; protocol {protocol.name} ({protocol.id}) splits with "
            f"{describe_split(protocol_split(protocol))}: its test rows are not this protocol's. "
            "Run preprocess and train under this protocol, then evaluate that experiment"
        )


def champion_model_bytes(champ: dict[str, Any], stand_in: dict[str, Any] | None) -> bytes:
    """The model that stands for the champion on these test rows: the champion's, or its stand-in's."""
    if stand_in is None:
        return registry.load_model_bytes(champ)
    return storage.get_bytes(stand_in["model_uri"], expected_sha256=stand_in["model_sha256"])
