"""Features of a table: which columns they are, how each is encoded, and the encoding fitted on train rows.

preprocess fits the encoding in its one streamed pass over the train rows (numeric moments over
the values present, category counts, the label's target moments) and stores it as preprocessor.json,
plain JSON. `encode_frame` turns raw-typed rows into the model's float32 matrix with it, the same
way for training, evaluation and a saved model scoring raw rows: a numeric null becomes the fitted
impute value, a null or unseen category the unknown bucket.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from gauntlet.config import PARTITION_COLUMN, DatasetConfig
from gauntlet.errors import BadInput, DataConfigMismatch

if TYPE_CHECKING:
    import pandas as pd

NUMERIC = "numeric"
CATEGORICAL = "categorical"
FEATURE_TYPE = pa.float32()  # a numeric feature as the dataset stores it
UNKNOWN = "<unknown>"  # the one-hot column of a null or unseen category
# A one-hot text column with more categories than this is most likely an id or free text.
MAX_ONE_HOT_CATEGORIES = 1000
_EXAMPLES = 5


def select_features(columns: Iterable[str], ds: DatasetConfig, where: str) -> list[str]:
    """The feature columns of a file with `columns`, in order, as the dataset config selects them."""
    names = [str(c) for c in columns]
    if ds.features:
        missing = [f for f in ds.features if f not in names]
        if missing:
            raise DataConfigMismatch(
                f"{where}: dataset.features lists {missing}, which the file does not have (its columns: {names})"
            )
        return list(ds.features)
    skip = {ds.id_column, ds.label_column, PARTITION_COLUMN, *ds.exclude}
    found = [c for c in names if c.startswith(ds.feature_prefix) and c not in skip]
    if not found:
        how = f"start with dataset.feature_prefix {ds.feature_prefix!r}" if ds.feature_prefix else "remain"
        raise DataConfigMismatch(
            f"{where}: no feature columns {how} besides the id, the label and dataset.exclude (columns: {names})"
        )
    return found


def column_kind(name: str, kind: pa.DataType, ds: DatasetConfig, where: str) -> str:
    """numeric or categorical, from the column's Arrow type and dataset.categorical."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind)
    if not (numeric or text or pa.types.is_null(kind)):
        raise DataConfigMismatch(
            f"{where}: feature column {name!r} has type {kind}, neither numeric nor text: leave it out of the "
            "features (dataset.exclude, or list dataset.features)"
        )
    # An all-null column (no type of its own) counts as numeric unless configured categorical.
    return CATEGORICAL if name in ds.categorical or text else NUMERIC


def input_kinds(schema: pa.Schema, ds: DatasetConfig, where: str) -> list[tuple[str, str]]:
    """(name, kind) of each feature column of a file with this schema."""
    return [(n, column_kind(n, schema.field(n).type, ds, where)) for n in select_features(schema.names, ds, where)]


# --- column values as the dataset stores them ----------------------------------------------------


def _arrow(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(values, from_pandas=True)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values


def _type_text(kind: pa.DataType) -> str:
    return "text" if pa.types.is_string(kind) or pa.types.is_large_string(kind) else str(kind)


def category_text(values: Any, where: str = "categorical column") -> pa.Array:
    """A categorical column's values as text (nulls stay null): integers in plain decimal, booleans
    as true/false. One function for fitting and for encoding, so a category always reads the same."""
    try:
        array = _arrow(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise BadInput(f"{where}: values of mixed types cannot be read as categories ({error})") from error
    if pa.types.is_string(array.type):
        return array
    try:
        return pc.cast(array, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise BadInput(f"{where}: values of type {array.type} cannot be read as categories") from error


def numeric_column(values: Any, where: str, kind: pa.DataType = FEATURE_TYPE) -> pa.Array:
    """A numeric column as float32 (or `kind`) with every missing value (null or NaN) as null."""
    array = _arrow(values)
    try:
        out = pc.cast(array, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise DataConfigMismatch(
            f"{where}: values of type {array.type} where numbers are expected: list the column in "
            "dataset.categorical, or fix the values"
        ) from error
    if pa.types.is_floating(array.type):
        nan = pc.is_nan(out)
        if pc.any(nan).as_py():
            out = pc.if_else(nan, pa.scalar(None, kind), out)
    return out


def label_index(values: Any, classes: Sequence[int | str], where: str = "label") -> NDArray[np.int64]:
    """Each raw label's class index: its position in `classes`. Labels match classes by their text
    (1, 1.0, True and "1" all match the class 1); a label in none of them is refused, by value."""
    array = _arrow(values)
    if array.null_count:
        rows = np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[:_EXAMPLES].tolist()
        raise DataConfigMismatch(f"{where}: {array.null_count} missing labels (rows {rows}, counted from 0)")
    if pa.types.is_integer(array.type) and list(classes) == list(range(len(classes))):
        # The classes are the indices themselves (e.g. digits): only their range needs checking.
        bounds = pc.min_max(array)
        if not len(array) or (bounds["min"].as_py() >= 0 and bounds["max"].as_py() < len(classes)):
            return array.to_numpy().astype(np.int64, copy=False)
    index = class_positions(array, classes, where)
    if index.null_count:
        bad = pc.unique(category_text(array, where).filter(index.is_null())).to_pylist()
        raise DataConfigMismatch(
            f"{where}: label value(s) {sorted(bad)[:_EXAMPLES]} are not among dataset.classes {list(classes)}: "
            "add them to dataset.classes (in class-index order) or fix the labels"
        )
    return index.to_numpy().astype(np.int64)


def class_positions(values: Any, classes: Sequence[int | str], where: str = "label") -> pa.Array:
    """Each label's position in `classes` by text (booleans as 0 and 1), null where it is none of them."""
    array = _arrow(values)
    if pa.types.is_boolean(array.type):
        array = pc.cast(array, pa.int8())
    return pc.index_in(category_text(array, where), value_set=pa.array([str(c) for c in classes], pa.string()))


def regression_target(values: Any, where: str = "label") -> NDArray[np.float64]:
    """A regression label column as float64; text or missing values are refused."""
    array = _arrow(values)
    if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_decimal(array.type)):
        raise DataConfigMismatch(
            f"{where}: dataset.task is regression but the label holds {_type_text(array.type)} values "
            f"(e.g. {array.drop_null().slice(0, 3).to_pylist()}): a regression label must be numeric"
        )
    out = numeric_column(array, where, pa.float64())
    if out.null_count:
        raise DataConfigMismatch(f"{where}: {out.null_count} missing regression labels")
    return out.to_numpy(zero_copy_only=False).astype(np.float64)


# --- fitting on train rows -------------------------------------------------------------------------


class Moments:
    """Per-column count, mean and sum of squared deviations over the values present, merged batch by
    batch (Chan et al.): StandardScaler's fit without holding the train rows."""

    def __init__(self, width: int) -> None:
        self.n = np.zeros(width, dtype=np.int64)
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)

    def add(self, columns: Sequence[pa.Array | pa.ChunkedArray]) -> None:
        """Merge in one batch, column by column (Arrow columns, no copy where they have no nulls).

        Per column, a two-pass mean and a dot product of its deviations: one float64 temporary the
        size of a column, where stacking the batch into a matrix first was far slower (docs/benchmarks.md).
        """
        n = np.zeros(len(columns), dtype=np.int64)
        mean, m2 = np.zeros(len(columns)), np.zeros(len(columns))
        for j, column in enumerate(columns):
            values = (column.drop_null() if column.null_count else column).to_numpy()
            if not len(values):
                continue
            n[j] = len(values)
            mean[j] = values.mean(dtype=np.float64)
            deviations = np.subtract(values, mean[j], dtype=np.float64)
            m2[j] = deviations @ deviations
        self.merge(n, mean, m2)

    def merge(self, n: NDArray[np.int64], mean: NDArray[np.float64], m2: NDArray[np.float64]) -> None:
        total = self.n + n
        safe = np.maximum(total, 1)
        delta = mean - self.mean
        # A column's first values are taken as they are (no rounding through the merge formula).
        self.mean = np.where(self.n == 0, mean, self.mean + delta * n / safe)
        self.m2 = np.where(self.n == 0, m2, self.m2 + m2 + delta**2 * self.n * n / safe)
        self.n = total

    def state(self) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        return self.n, self.mean, self.m2

    def scale(self) -> NDArray[np.float64]:
        std = np.sqrt(self.m2 / np.maximum(self.n, 1))
        # Constant (or absent) columns have zero variance; like sklearn, their scale is 1, keeping them at 0.
        return _safe_scale(std)


def _safe_scale(std: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(std < 10 * np.finfo(np.float64).eps, 1.0, std)


class CategoryCounts:
    """Per categorical column: how often each category (as text) and null occur in the train rows."""

    def __init__(self, width: int) -> None:
        self.counts: list[Counter[str]] = [Counter() for _ in range(width)]
        self.nulls = [0] * width

    def add(self, columns: Sequence[pa.Array | pa.ChunkedArray]) -> None:
        for j, column in enumerate(columns):
            self.nulls[j] += column.null_count
            for item in pc.value_counts(column.drop_null()).to_pylist():
                self.counts[j][item["values"]] += item["counts"]

    def merge(self, other: CategoryCounts) -> None:
        for j, counts in enumerate(other.counts):
            self.counts[j].update(counts)
            self.nulls[j] += other.nulls[j]


def fit_preprocessor(
    ds: DatasetConfig,
    inputs: list[tuple[str, str]],
    numeric: Moments,
    categories: CategoryCounts,
    train_rows: int,
    medians: dict[str, float],
    target: Moments | None,
) -> dict[str, Any]:
    """preprocessor.json: the inputs' encodings, the encoded column names and their standardisation
    (per encoded column, what StandardScaler fits on the encoded train rows; numeric columns over the
    values present). `medians`: the exact train median of the numeric columns with train nulls."""
    specs: list[dict[str, Any]] = []
    features: list[str] = []
    mean: list[float] = []
    scale: list[float] = []
    numeric_scale = numeric.scale()
    num_index = cat_index = 0
    for name, kind in inputs:
        if kind == NUMERIC:
            j, num_index = num_index, num_index + 1
            specs.append({"name": name, "kind": NUMERIC, "impute": _impute(ds, name, numeric, j, medians)})
            features.append(name)
            mean.append(float(numeric.mean[j]))
            scale.append(float(numeric_scale[j]))
            continue
        j, cat_index = cat_index, cat_index + 1
        counts, nulls = categories.counts[j], categories.nulls[j]
        names = sorted(counts)
        if ds.categorical_encoding == "one_hot" and len(names) > MAX_ONE_HOT_CATEGORIES:
            raise DataConfigMismatch(
                f"feature column {name!r} has {len(names)} categories in the train rows (one-hot allows "
                f"{MAX_ONE_HOT_CATEGORIES}): leave it out with dataset.exclude, or set "
                "dataset.categorical_encoding: ordinal"
            )
        specs.append({"name": name, "kind": CATEGORICAL, "encoding": ds.categorical_encoding, "categories": names})
        cat_mean, cat_scale = _category_moments(ds.categorical_encoding, [counts[c] for c in names], nulls, train_rows)
        one_hot = [*(f"{name}={c}" for c in names), f"{name}={UNKNOWN}"]
        features += one_hot if ds.categorical_encoding == "one_hot" else [name]
        mean += cat_mean
        scale += cat_scale
    return {
        "kind": "tabular",
        "task": ds.task,
        "classes": list(ds.classes),
        "inputs": specs,
        "features": features,
        "mean": mean,
        "scale": scale,
        **({"target": {"mean": float(target.mean[0]), "scale": float(target.scale()[0])}} if target else {}),
    }


def _impute(ds: DatasetConfig, name: str, numeric: Moments, j: int, medians: dict[str, float]) -> float:
    """The value a null of this numeric column becomes. A column with no train nulls takes its train
    mean for median (so a null at scoring time lands on the average), and 0.0 when it has no values."""
    if ds.imputation == "zero" or not numeric.n[j]:
        return 0.0
    if ds.imputation == "median" and name in medians:
        return medians[name]
    return float(numeric.mean[j])


def _category_moments(encoding: str, counts: list[int], nulls: int, rows: int) -> tuple[list[float], list[float]]:
    """Mean and scale of a categorical column's encoded columns over the train rows, from its counts."""
    total = max(rows, 1)
    if encoding == "one_hot":
        share = np.array([*counts, nulls], dtype=np.float64) / total
        return share.tolist(), _safe_scale(np.sqrt(share * (1 - share))).tolist()
    codes = np.arange(-1, len(counts), dtype=np.float64)  # -1: null (or unseen)
    weights = np.array([nulls, *counts], dtype=np.float64)
    mean = float(weights @ codes / total)
    std = np.sqrt(weights @ (codes - mean) ** 2 / total)
    return [mean], _safe_scale(np.array([std])).tolist()


def numeric_inputs(inputs: list[tuple[str, str]]) -> list[str]:
    return [name for name, kind in inputs if kind == NUMERIC]


def categorical_inputs(inputs: list[tuple[str, str]]) -> list[str]:
    return [name for name, kind in inputs if kind == CATEGORICAL]


# --- encoding rows ---------------------------------------------------------------------------------


def encode_frame(frame: pd.DataFrame, preprocessor: dict[str, Any]) -> NDArray[np.float32]:
    """Raw-typed rows -> the model's float32 input matrix (rows, len(preprocessor['features'])).

    Numeric nulls take the fitted impute value; a null or unseen category goes to the unknown
    bucket (one-hot) or code -1 (ordinal). Standardising is the model's own first layer.
    """
    out = np.zeros((len(frame), len(preprocessor["features"])), dtype=np.float32)
    at = 0
    for spec in preprocessor["inputs"]:
        name = spec["name"]
        if name not in frame.columns:
            wanted = [s["name"] for s in preprocessor["inputs"]]
            raise BadInput(f"rows to encode have no column {name!r}; the preprocessor reads {wanted}")
        if spec["kind"] == NUMERIC:
            out[:, at] = _numeric_values(frame[name], name)
            missing = np.isnan(out[:, at])
            if missing.any():
                out[missing, at] = spec["impute"]
            at += 1
            continue
        codes = _category_codes(frame[name], spec["categories"], name)
        if spec["encoding"] == "one_hot":
            width = len(spec["categories"]) + 1
            out[np.arange(len(frame)), at + np.where(codes < 0, width - 1, codes)] = 1.0
            at += width
        else:
            out[:, at] = codes
            at += 1
    if at != out.shape[1]:
        raise BadInput(f"preprocessor inputs encode {at} columns but it lists {out.shape[1]} features")
    return out


def _numeric_values(series: pd.Series, name: str) -> NDArray[np.float32]:
    if series.dtype.kind == "f":  # numpy floats (the dataset's float32): NaN already marks a null
        return series.to_numpy()  # type: ignore[no-any-return]
    try:
        return series.to_numpy(dtype=np.float32, na_value=np.nan)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as error:
        raise BadInput(f"column {name!r} holds values that are not numbers ({error})") from error


def _category_codes(series: pd.Series, categories: list[str], name: str) -> NDArray[np.int64]:
    text = category_text(series, f"column {name!r}")
    codes = pc.index_in(text, value_set=pa.array(categories, pa.string())).fill_null(-1)
    return codes.to_numpy().astype(np.int64)
