"""Demo data: scikit-learn's bundled tables landed in S3 as daily raw partitions.

digits (8x8 images, 10 classes, the default demo), wine (13 measurements, 3 cultivars named by
text) and diabetes (10 measurements, a disease-progression score: regression). Each table gets a
text row id (`wine-00000`). Each day gets a slice of the rows, so consecutive nightly runs see
growing data, exactly as an upstream job landing files would produce.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from gauntlet import layout, storage
from gauntlet.errors import BadInput


def digits_frame() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame(digits.data.astype(np.int64), columns=[f"pixel_{i}" for i in range(64)])
    frame.insert(0, "label", digits.target.astype(np.int64))
    frame.insert(0, "row_id", [f"digits-{i:05d}" for i in range(len(frame))])
    return frame


def wine_frame() -> pd.DataFrame:
    """The wine table with its cultivar as the class NAME (text), as a real table would carry it."""
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    frame = wine.data.copy()
    frame.insert(0, "cultivar", [str(wine.target_names[i]) for i in wine.target])
    frame.insert(0, "row_id", [f"wine-{i:05d}" for i in range(len(frame))])
    return frame


def diabetes_frame() -> pd.DataFrame:
    """The diabetes table in its original units (not scikit-learn's scaled copy); the label is a score."""
    from sklearn.datasets import load_diabetes

    diabetes = load_diabetes(as_frame=True, scaled=False)
    frame = diabetes.data.copy()
    frame.insert(0, "progression", diabetes.target.astype(np.float64))
    frame.insert(0, "row_id", [f"diabetes-{i:05d}" for i in range(len(frame))])
    return frame


DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "digits": digits_frame,
    "wine": wine_frame,
    "diabetes": diabetes_frame,
}


def dataset_frame(name: str) -> pd.DataFrame:
    if name not in DATASETS:
        raise BadInput(f"unknown demo dataset {name!r} (known: {', '.join(DATASETS)})")
    return DATASETS[name]()


def write_partition(uri: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    if uri.endswith(".csv"):
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    storage.put_bytes(uri, buffer.getvalue())


def seed(
    store: str, raw_prefix: str, first_day: dt.date, days: int, seed: int = 0, dataset: str = "digits"
) -> list[dict[str, Any]]:
    """Shuffle a demo table (fixed seed) and land it as `days` equal daily partitions."""
    frame = dataset_frame(dataset)
    order = np.random.default_rng(seed).permutation(len(frame))
    storage.ensure_bucket(storage.S3Uri.parse(store).bucket)
    landed = []
    for i, chunk in enumerate(np.array_split(order, days)):
        day = first_day + dt.timedelta(days=i)
        uri = layout.raw_partition_uri(store, raw_prefix, day)
        write_partition(uri, frame.iloc[np.sort(chunk)].reset_index(drop=True))
        landed.append({"date": day.isoformat(), "uri": uri, "rows": len(chunk)})
    return landed
