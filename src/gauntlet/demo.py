"""Demo data: scikit-learn's bundled handwritten digits landed in S3 as daily raw partitions.

Each day gets a slice of the rows, so consecutive nightly runs see growing data, exactly as an
upstream job landing files would produce.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import numpy as np
import pandas as pd

from gauntlet import layout, storage


def digits_frame() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame(digits.data.astype(np.int64), columns=[f"pixel_{i}" for i in range(64)])
    frame.insert(0, "label", digits.target.astype(np.int64))
    frame.insert(0, "row_id", [f"digits-{i:05d}" for i in range(len(frame))])
    return frame


def write_partition(uri: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    if uri.endswith(".csv"):
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    storage.put_bytes(uri, buffer.getvalue())


def seed(store: str, raw_prefix: str, first_day: dt.date, days: int, seed: int = 0) -> list[dict[str, Any]]:
    """Shuffle the digits (fixed seed) and land them as `days` equal daily partitions."""
    frame = digits_frame()
    order = np.random.default_rng(seed).permutation(len(frame))
    storage.ensure_bucket(storage.S3Uri.parse(store).bucket)
    landed = []
    for i, chunk in enumerate(np.array_split(order, days)):
        day = first_day + dt.timedelta(days=i)
        uri = layout.raw_partition_uri(store, raw_prefix, day)
        write_partition(uri, frame.iloc[np.sort(chunk)].reset_index(drop=True))
        landed.append({"date": day.isoformat(), "uri": uri, "rows": len(chunk)})
    return landed
