"""scoring.references: a reference trained under another split is refused, naming the split; the
baseline fits the protocol's task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gauntlet import storage
from gauntlet.errors import BadInput
from gauntlet.protocol import Protocol, load_protocol
from gauntlet.scoring.compare import protocol_split
from gauntlet.scoring.references import baseline_predictions, require_own_split
from gauntlet.training.data import Split

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


def _table(labels: np.ndarray, features: np.ndarray) -> Split:
    ids = np.array([f"r{i}" for i in range(len(labels))])
    return Split(ids, features.astype(np.float32), labels, pd.DataFrame({"row_id": ids}))


def test_the_regression_baseline_is_a_ridge_on_standardised_features() -> None:
    import yaml
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    raw = yaml.safe_load(Path(PROTOCOL).read_text())
    raw.update(task="regression", metrics={"primary": "rmse"}, baseline={"kind": "ridge", "alpha": 30.0})
    protocol = Protocol.from_dict(raw)
    rng = np.random.default_rng(0)
    x = rng.normal(0, [1.0, 100.0], (120, 2))
    y = 2.0 * x[:, 0] + 0.05 * x[:, 1] + rng.normal(0, 0.5, 120)
    train, test = _table(y[:100], x[:100]), _table(y[100:], x[100:])

    values = baseline_predictions(protocol, train, test, n_classes=0)

    scaler = StandardScaler().fit(train.features)
    ridge = Ridge(alpha=30.0).fit(scaler.transform(train.features), y[:100])
    assert values.shape == (20, 1)
    assert values[:, 0] == pytest.approx(ridge.predict(scaler.transform(test.features)), abs=1e-6)
    # The classification baseline still gives one probability per class.
    digits = load_protocol(PROTOCOL)
    classes = (y > np.median(y)).astype(np.int64)
    proba = baseline_predictions(digits, _table(classes[:100], x[:100]), _table(classes[100:], x[100:]), 2)
    assert proba.shape == (20, 2) and proba.sum(axis=1) == pytest.approx(1.0)
