"""The dataset config checked against the raw partitions, before the expectation suite runs.

A config can name a column that no partition has, list classes that a partition's labels are not
among (more of them than quarantine may set aside), select a text column whose values are numbers
in every partition, or expect numeric labels for a regression. Each fails validate with a
DataConfigMismatch naming the config key, the column and the file, so nothing downstream runs.
A fault of some partitions only (a column or type that the others have, a few stray labels) is
the data's, left to the suite, its evidence and its row-level quarantine. Only what the checks
need is decoded: a Parquet file's schema and its label and text columns; a CSV file whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gauntlet import encoding, rawdata, storage
from gauntlet.config import DatasetConfig, PipelineConfig
from gauntlet.errors import BadInput, DataConfigMismatch
from gauntlet.logs import get_logger

log = get_logger("gauntlet.datacheck")
MAX_PROBLEMS = 20
# A number as a CSV or a person writes one (integer, decimal, exponent), spaces around allowed.
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_EXAMPLES = 3


@dataclass
class _File:
    """What one partition says about the config."""

    uri: str
    names: list[str]
    problems: list[str] = field(default_factory=list)  # its own: labels, features it cannot give
    kinds: dict[str, str] = field(default_factory=dict)  # feature -> numeric | categorical
    numbers_as_text: dict[str, str] = field(default_factory=dict)  # text feature -> the problem


def check(
    config: PipelineConfig, partitions: list[rawdata.Partition], suite_spec: dict[str, Any] | None = None
) -> None:
    """Raise DataConfigMismatch listing every way the dataset config and these partitions disagree.

    What the suite owns is left to it, with its evidence and row-level quarantine: an unreadable
    file, a column or type that one partition lacks while others have it, a few stray labels, and
    labels outside the suite's own value set for the label (then the config's classes are checked
    against that set instead: a label the suite allows must be a class).
    """
    ds = config.dataset
    allowed = suite_label_values(suite_spec or {}, ds.label_column) if ds.task == "classification" else None
    files = [facts for partition in partitions if (facts := _facts(ds, partition, allowed is None)) is not None]
    problems = snapshot_problems(ds, files)
    if allowed is not None:
        problems += _classes_against_suite(ds, allowed, str((suite_spec or {}).get("name", "the suite")))
    if problems:
        shown = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more"] * (
            len(problems) > MAX_PROBLEMS
        )
        raise DataConfigMismatch("the dataset config does not match the data:\n  " + "\n  ".join(shown))
    log.info("the dataset config matches the %d partitions' columns and labels", len(files))


def snapshot_problems(ds: DatasetConfig, files: list[_File]) -> list[str]:
    """The disagreements of the whole snapshot: a configured column that no partition has, each
    partition's own, and a feature that is text everywhere though its values are numbers."""
    if not files:
        return []
    problems = [
        f"dataset.{key} {column!r} is not a column of any of the {len(files)} partitions "
        f"(e.g. {files[0].uri}, columns {files[0].names})"
        for key, column in _configured_columns(ds)
        if not any(column in f.names for f in files)
    ]
    for f in files:
        problems += f.problems
    problems += [
        f"dataset.categorical names {name!r}, which {_selected_by(ds)} does not select as a feature"
        for name in ds.categorical
        if any(name in f.names for f in files) and not any(name in f.kinds for f in files)
    ]
    flagged = dict.fromkeys(name for f in files for name in f.numbers_as_text)
    for name in flagged:
        # Numbers in some partitions and text in others is the suite's type rule to report.
        if all(f.kinds.get(name, encoding.CATEGORICAL) == encoding.CATEGORICAL for f in files):
            problems.append(next(f.numbers_as_text[name] for f in files if name in f.numbers_as_text))
    return problems


def suite_label_values(suite_spec: dict[str, Any], label: str) -> list[Any] | None:
    """The value set the suite's in-set rule allows for the label column, or None without one."""
    for expectation in suite_spec.get("expectations", []):
        kwargs = expectation.get("kwargs", {})
        if expectation.get("type") == "expect_column_values_to_be_in_set" and kwargs.get("column") == label:
            return list(kwargs["value_set"])
    return None


def _classes_against_suite(ds: DatasetConfig, allowed: list[Any], suite: str) -> list[str]:
    """Labels the suite lets through but dataset.classes lacks would fail preprocess: a config mistake."""
    classes = {str(value) for value in ds.classes}
    missing = [value for value in allowed if str(value) not in classes]
    if not missing:
        return []
    return [
        f"column {ds.label_column!r} (dataset.label_column): the suite {suite} allows label values {missing} that "
        f"dataset.classes {list(ds.classes)} does not list: add them to dataset.classes, or narrow the suite"
    ]


def _facts(ds: DatasetConfig, partition: rawdata.Partition, label_values: bool = True) -> _File | None:
    try:
        schema, values = _read(partition, ds)
    except BadInput as error:  # unreadable: the suite names it
        log.info("config check skips %s: %s", partition.uri, error)
        return None
    facts = _File(partition.uri, schema.names)
    if ds.label_column in values:
        facts.problems += _label_problems(ds, partition.uri, values[ds.label_column], label_values)
    if any(name not in facts.names for name in ds.features):
        return facts  # a listed feature it lacks: see snapshot_problems, or the suite's column rule
    try:
        facts.kinds = dict(encoding.input_kinds(schema, ds, partition.uri))
    except DataConfigMismatch as error:
        facts.problems.append(str(error))
    for name, kind in facts.kinds.items():
        if kind == encoding.CATEGORICAL and name in values and name not in ds.categorical:
            facts.numbers_as_text.update(_numbers_as_text(ds, partition.uri, name, values[name]))
    return facts


def _configured_columns(ds: DatasetConfig) -> list[tuple[str, str]]:
    columns = [("id_column", ds.id_column), ("label_column", ds.label_column)]
    for key in ("features", "exclude", "categorical"):
        columns += [(key, name) for name in getattr(ds, key)]
    return columns


def _selected_by(ds: DatasetConfig) -> str:
    if ds.features:
        return "dataset.features"
    return f"dataset.feature_prefix {ds.feature_prefix!r}" if ds.feature_prefix else "every column but dataset.exclude"


def _label_problems(ds: DatasetConfig, uri: str, labels: pa.ChunkedArray, values: bool = True) -> list[str]:
    where = f"{uri}: column {ds.label_column!r} (dataset.label_column)"
    if ds.task == "regression":
        kind = labels.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            return []
        examples = labels.drop_null().slice(0, _EXAMPLES).to_pylist()
        what = "text" if _is_text(kind) else str(kind)
        return [f"{where}: dataset.task is regression but the label holds {what} values (e.g. {examples})"]
    if not values:  # the suite's in-set rule judges them, with its evidence and quarantine
        return []
    present = labels.drop_null()  # missing labels are the suite's to report
    positions = encoding.class_positions(present, ds.classes, where)
    outside = positions.null_count
    # A few stray labels are rows for the suite's row-level rules to set aside (quarantine).
    allowed = int(ds.quarantine_max_fraction * len(labels))
    if outside <= allowed:
        return []
    stray = pc.unique(encoding.category_text(present, where).filter(positions.is_null())).to_pylist()
    return [
        f"{where}: {outside} of {len(labels)} labels are not among dataset.classes {list(ds.classes)} "
        f"(e.g. {sorted(stray)[:_EXAMPLES]}; quarantine may set aside {allowed}): list the label values "
        "in dataset.classes (in class-index order), or fix the labels"
    ]


def _numbers_as_text(ds: DatasetConfig, uri: str, name: str, values: pa.ChunkedArray) -> dict[str, str]:
    """A text feature whose values are mostly numbers is most likely a numeric column with a few
    stray entries ('n/a', '?'): encoded as categories it would train on the wrong thing."""
    if not _is_text(values.type):
        return {}
    present = pc.drop_null(values)
    if not len(present):
        return {}
    numeric = pc.match_substring_regex(present, _NUMBER)
    hits = pc.sum(numeric.cast(pa.int64())).as_py() or 0
    if hits * 2 < len(present):
        return {}
    others = pc.unique(present.filter(pc.invert(numeric))).slice(0, _EXAMPLES).to_pylist()
    detail = f"e.g. {others} are not" if others else "all are"
    return {
        name: f"{uri}: feature column {name!r} ({_selected_by(ds)}) is text, yet {hits} of its {len(present)} "
        f"values are numbers ({detail}): fix the values so the column is numeric, or list it in "
        "dataset.categorical to encode it as categories"
    }


# --- reading only what the checks need --------------------------------------------------------------


def _read(partition: rawdata.Partition, ds: DatasetConfig) -> tuple[pa.Schema, dict[str, pa.ChunkedArray]]:
    """The partition's schema, and the values of its label and text columns (of a Parquet file,
    only those columns are decoded, from a local copy)."""
    if not partition.uri.endswith(".parquet"):
        frame = rawdata.parse_partition(partition.uri, storage.get_bytes(partition.uri), ds.id_column)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        return table.schema, {name: table.column(name) for name in table.column_names}
    with storage.temp_dir("gauntlet-datacheck-") as tmp:
        path = Path(tmp) / "partition.parquet"
        storage.download_object(partition.uri, path)
        try:
            with pq.ParquetFile(path) as source:
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
