"""The dataset config checked against the raw partitions, before the expectation suite runs.

A config can name a column no file has, list classes the labels do not use, or select a text
column whose values are meant to be numbers. Each is found here, per file, and fails validate with
a DataConfigMismatch that names the config key, the column and the file, so nothing downstream
runs. Only what the checks need is read: a Parquet file's footer and the columns whose values
matter (the label, text features), by ranged reads; a CSV file whole.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from gauntlet import encoding, rawdata, storage
from gauntlet.config import DatasetConfig, PipelineConfig
from gauntlet.errors import BadInput, DataConfigMismatch, StorageError
from gauntlet.logs import get_logger

log = get_logger("gauntlet.datacheck")
MAX_PROBLEMS = 20
# A number as a CSV or a person writes one (integer, decimal, exponent), spaces around allowed.
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_EXAMPLES = 3


def check(config: PipelineConfig, partitions: list[rawdata.Partition]) -> None:
    """Raise DataConfigMismatch listing every way the dataset config and these partitions disagree.

    An unreadable file is left to the suite, which reports it with the rest of its evidence.
    """
    ds = config.dataset
    problems: list[str] = []
    kinds: dict[str, tuple[str, str]] = {}  # feature -> (kind, the first file that had it)
    for partition in partitions:
        try:
            schema, values = _read(partition, ds)
        except BadInput as error:  # unreadable: the suite names it
            log.info("config check skips %s: %s", partition.uri, error)
            continue
        problems += file_problems(ds, partition.uri, schema, values, kinds)
    if problems:
        shown = problems[:MAX_PROBLEMS] + (
            [f"... and {len(problems) - MAX_PROBLEMS} more"] * (len(problems) > MAX_PROBLEMS)
        )
        raise DataConfigMismatch("the dataset config does not match the data:\n  " + "\n  ".join(shown))
    log.info("dataset config matches the columns of %d partitions", len(partitions))


def file_problems(
    ds: DatasetConfig,
    uri: str,
    schema: pa.Schema,
    values: dict[str, pa.ChunkedArray],
    kinds: dict[str, tuple[str, str]],
) -> list[str]:
    """What is wrong with one file of this schema for this config. `values` holds the label's and
    the text columns' values; `kinds` collects each feature's kind across files."""
    names = schema.names
    problems = [
        f"{uri}: dataset.{key} {column!r} is not a column of the file (its columns: {names})"
        for key, column in _configured_columns(ds)
        if column not in names
    ]
    if ds.label_column in values:
        problems += _label_problems(ds, uri, values[ds.label_column])
    try:
        inputs = encoding.input_kinds(schema, ds, uri)
    except DataConfigMismatch as error:
        return [*problems, str(error)]
    selected = dict(inputs)
    problems += [
        f"{uri}: dataset.categorical names {name!r}, which is not among the selected features {list(selected)}"
        for name in ds.categorical
        if name in names and name not in selected
    ]
    for name, kind in inputs:
        first_kind, first_uri = kinds.setdefault(name, (kind, uri))
        if kind != first_kind:
            problems.append(
                f"{uri}: feature column {name!r} ({_selected_by(ds)}) holds {_kind_text(kind)} here but "
                f"{_kind_text(first_kind)} in {first_uri}: fix the values, or list it in dataset.categorical "
                "to encode it as categories everywhere"
            )
        elif name in values and name not in ds.categorical:
            problems += _numbers_as_text(ds, uri, name, values[name])
    return problems


def _configured_columns(ds: DatasetConfig) -> list[tuple[str, str]]:
    columns = [("id_column", ds.id_column), ("label_column", ds.label_column)]
    for key in ("features", "exclude", "categorical"):
        columns += [(key, name) for name in getattr(ds, key)]
    return columns


def _selected_by(ds: DatasetConfig) -> str:
    if ds.features:
        return "dataset.features"
    return f"dataset.feature_prefix {ds.feature_prefix!r}" if ds.feature_prefix else "every column but dataset.exclude"


def _kind_text(kind: str) -> str:
    return "numbers" if kind == encoding.NUMERIC else "text"


def _label_problems(ds: DatasetConfig, uri: str, labels: pa.ChunkedArray) -> list[str]:
    where = f"{uri}: column {ds.label_column!r} (dataset.label_column)"
    if ds.task == "regression":
        kind = labels.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            return []
        examples = labels.drop_null().slice(0, _EXAMPLES).to_pylist()
        what = "text" if _is_text(kind) else str(kind)
        return [f"{where}: dataset.task is regression but the label holds {what} values (e.g. {examples})"]
    try:
        encoding.label_index(labels.drop_null(), ds.classes, where)  # missing labels are the suite's to report
    except BadInput as error:
        return [str(error)]
    return []


def _numbers_as_text(ds: DatasetConfig, uri: str, name: str, values: pa.ChunkedArray) -> list[str]:
    """A text feature whose values are mostly numbers is most likely a numeric column with a few
    stray entries ('n/a', '?'): encoded as categories it would train on the wrong thing."""
    if not _is_text(values.type):
        return []
    present = pc.drop_null(values)
    if not len(present):
        return []
    numeric = pc.match_substring_regex(present, _NUMBER)
    hits = pc.sum(numeric.cast(pa.int64())).as_py() or 0
    if hits * 2 < len(present):
        return []
    others = pc.unique(present.filter(pc.invert(numeric))).slice(0, _EXAMPLES).to_pylist()
    detail = f"e.g. {others} are not" if others else "all are"
    return [
        f"{uri}: feature column {name!r} ({_selected_by(ds)}) is text, yet {hits} of its {len(present)} values "
        f"are numbers ({detail}): fix the values so the column is numeric, or list it in dataset.categorical "
        "to encode it as categories"
    ]


# --- reading only what the checks need --------------------------------------------------------------


def _read(partition: rawdata.Partition, ds: DatasetConfig) -> tuple[pa.Schema, dict[str, pa.ChunkedArray]]:
    """The partition's schema, and the values of its label and text columns (Parquet: only those)."""
    if not partition.uri.endswith(".parquet"):
        frame = rawdata.parse_partition(partition.uri, storage.get_bytes(partition.uri), ds.id_column)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        return table.schema, {name: table.column(name) for name in table.column_names}
    try:
        source = pq.ParquetFile(_RangedObject(partition.uri, partition.size))
        # The columns preprocess reads: without the unnamed index pandas may store.
        columns = rawdata._data_columns(source.schema_arrow)
        schema = pa.schema([source.schema_arrow.field(name) for name in columns])
        wanted = [f.name for f in schema if f.name == ds.label_column or _is_text(f.type)]
        table = source.read(columns=wanted) if wanted else pa.table({})
    except (pa.ArrowInvalid, OSError) as error:
        raise BadInput(f"{partition.uri}: not a readable Parquet file ({error})") from error
    return schema, {name: table.column(name) for name in table.column_names}


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


class _RangedObject(io.RawIOBase):
    """An S3 object as a seekable file that fetches only the byte ranges read (a Parquet footer and
    the column chunks asked for), so checking a column does not download the whole object."""

    def __init__(self, uri: str, size: int) -> None:
        super().__init__()
        self.uri, self.size, self.position = uri, size, 0
        self.location = storage.S3Uri.parse(uri)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self.position + len(view), self.size)
        if end <= self.position:
            return 0
        try:
            response = storage.client().get_object(
                Bucket=self.location.bucket, Key=self.location.key, Range=f"bytes={self.position}-{end - 1}"
            )
            data = response["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"cannot read {self.uri}: {error}") from error
        view[: len(data)] = data
        self.position += len(data)
        return len(data)
