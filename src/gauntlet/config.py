"""The one config loader: typed pipeline config from a YAML file in include/, plus overrides.

A config says what the data looks like (dataset), what to train (model) and how (training). Its
content hash is part of every experiment key, so two runs with equal configs are the same run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from gauntlet.errors import ConfigError

# The demo's config, used wherever a run names none (CLI, trigger forms, the champion asset).
DEFAULT_CONFIG = "include/configs/digits.yaml"
# The only folders a run may take configs, protocols and expectation suites from: a run chooses
# among the project's reviewed files, never an arbitrary path on the host.
CONFIGS_DIR = "include/configs"
PROTOCOLS_DIR = "include/protocols"
EXPECTATIONS_DIR = "include/expectations"
TASKS = ("classification", "regression")
IMPUTATIONS = ("median", "mean", "zero")
ENCODINGS = ("one_hot", "ordinal")
BACKENDS = ("horovod", "ddp")  # training engines; the first is the default
PRECISIONS = ("fp32", "bf16")  # training.precision: forward and loss in fp32, or under bf16 autocast; fp32 default
# The column preprocess writes each row's partition date into: never a feature.
PARTITION_COLUMN = "date"


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    raw_prefix: str
    expectation_suite: str
    id_column: str
    label_column: str
    task: str = "classification"  # classification | regression
    # classification: the label values (int or str); their order gives the class indices 0..K-1
    classes: tuple[int | str, ...] = ()
    # Features, one way: an explicit list, or every column starting with a prefix, or (neither)
    # every column but the id, the label and `exclude`; the partition column `date` never is one.
    features: tuple[str, ...] = ()
    feature_prefix: str = ""
    exclude: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()  # numeric columns to encode as categories (text ones always are)
    imputation: str = "median"  # numeric nulls: median | mean | zero
    categorical_encoding: str = "one_hot"  # one_hot (with an unknown bucket) | ordinal
    quarantine_max_fraction: float = 0.0  # rows per partition that row-level rules may set aside
    # Engine that evaluates the suite: gx (Great Expectations, with Data Docs) or vectorised
    # (gauntlet.fastchecks on streamed Arrow batches, for large snapshots; GX still runs on failure).
    validation: str = "gx"
    validation_sample_rows: int = 0  # vectorised: also run GX on this many sampled rows (Data Docs)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    kind: str
    hidden: tuple[int, ...]
    channels: tuple[int, ...] = ()
    image_shape: tuple[int, ...] = ()

    def spec(self) -> dict[str, Any]:
        """What build_model needs to rebuild the network (stored in every model bundle)."""
        return {
            "kind": self.kind,
            "hidden": list(self.hidden),
            "channels": list(self.channels),
            "image_shape": list(self.image_shape),
        }


@dataclass(frozen=True)
class TrainingConfig:
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    workers: int
    threads_per_worker: int = 1
    epochs: int | None = None  # None: the protocol's fixed budget
    schedule: str = "cosine"  # learning-rate schedule over the epoch budget: cosine | constant
    max_hours: float | None = None  # the train step refuses a run its preflight estimates longer
    max_cost: float | None = None  # ... or costlier (USD, include/prices.yaml)
    backend: str = "horovod"  # the training engine: horovod (horovodrun) | ddp (torchrun, DistributedDataParallel)
    precision: str = "fp32"  # fp32 | bf16 (torch.autocast around forward and loss)


@dataclass(frozen=True)
class PipelineConfig:
    dataset: DatasetConfig
    model: ModelConfig
    training: TrainingConfig
    protocol: str
    raw: dict[str, Any] = field(repr=False, compare=False)


def store_prefix(text: str, where: str) -> str:
    """A prefix under the store root: relative, no `.`/`..` or empty segments (a trailing `/` is dropped)."""
    prefix = text.rstrip("/")
    if text.startswith("/") or not prefix or any(part in ("", ".", "..") for part in prefix.split("/")):
        raise ConfigError(
            f"{where} {text!r} must be a relative prefix under the store, e.g. raw/digits "
            "(no leading '/', no '.' or '..' segments, not empty)"
        )
    return prefix


def project_path(text: str, folder: str, where: str) -> str:
    """A project-relative file path inside `folder` (checked by its text; see `project_file` for the disk)."""
    parts = text.split("/")
    if text.startswith("/") or any(part in ("", ".", "..") for part in parts) or "/".join(parts[:-1]) != folder:
        raise ConfigError(f"{where} {text!r} must name a file directly in {folder}/, e.g. {folder}/<name>")
    return text


def _require(section: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in section:
        raise ConfigError(f"{where}.{key} is missing")
    value = section[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where}.{key} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _optional(section: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    return _require(section, key, kind, "dataset") if key in section else default


def _names(section: dict[str, Any], key: str) -> tuple[str, ...]:
    """A list of column names under dataset.<key> (absent: empty), each named once."""
    names = _optional(section, key, list, [])
    if not all(isinstance(name, str) and name for name in names):
        raise ConfigError(f"dataset.{key} must be a list of column names (text), got {names!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"dataset.{key} names {repeated} more than once")
    return tuple(names)


def _one_of(value: str, known: tuple[str, ...], key: str) -> None:
    if value not in known:
        raise ConfigError(f"dataset.{key} {value!r} is unknown (known: {', '.join(known)})")


def _check_dataset(ds: DatasetConfig, section: dict[str, Any]) -> None:
    """Refuse, before any work, a dataset section whose columns or task contradict each other."""
    _one_of(ds.task, TASKS, "task")
    _one_of(ds.imputation, IMPUTATIONS, "imputation")
    _one_of(ds.categorical_encoding, ENCODINGS, "categorical_encoding")
    if "features" in section and "feature_prefix" in section:
        raise ConfigError(
            "dataset.features and dataset.feature_prefix are both given: select the features one way "
            "(a list, or a prefix, or neither for every column but the id, the label and dataset.exclude)"
        )
    if "features" in section and not ds.features:
        raise ConfigError("dataset.features is empty: list the feature columns, or leave the key out")
    if ds.exclude and ds.features:
        raise ConfigError("dataset.exclude applies only without dataset.features: list just the features to use")
    reserved = {
        ds.id_column: "the id column",
        ds.label_column: "the label column",
        PARTITION_COLUMN: "the partition column",
    }
    for key in ("features", "exclude", "categorical"):
        for name in getattr(ds, key):
            if name in reserved:
                raise ConfigError(f"dataset.{key} includes {reserved[name]} {name!r}: it can never be a feature")
    for name in (ds.id_column, ds.label_column):
        if ds.feature_prefix and name.startswith(ds.feature_prefix):
            raise ConfigError(
                f"dataset.feature_prefix {ds.feature_prefix!r} matches {reserved[name]} {name!r}: "
                "choose a prefix that only feature columns start with, or list dataset.features"
            )
    stray = [name for name in ds.categorical if ds.features and name not in ds.features]
    if stray:
        raise ConfigError(f"dataset.categorical names {stray}, which dataset.features does not list")
    _check_classes(ds)


def _check_classes(ds: DatasetConfig) -> None:
    if ds.task == "regression":
        if ds.classes:
            raise ConfigError("dataset.classes is given but dataset.task is regression: remove dataset.classes")
        return
    if len(ds.classes) < 2:
        raise ConfigError("dataset.classes must list at least two classes (the label values, in index order)")
    for value in ds.classes:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"dataset.classes must hold integers or text, got {value!r}: write booleans as 0 and 1")
    # Labels are matched by their text ("1" and 1 alike), so two classes may not share one.
    texts = [str(value) for value in ds.classes]
    repeated = sorted({text for text in texts if texts.count(text) > 1})
    if repeated:
        raise ConfigError(f"dataset.classes lists {repeated} more than once")


def _reject_unknown_keys(raw: dict[str, Any]) -> None:
    """A misspelt key (in the file or an override, e.g. training.learning_rate) would otherwise be
    ignored and the run would silently train with the default: refuse it, naming it."""
    unknown = sorted(set(raw) - {"dataset", "model", "training", "protocol"})
    for section, record in (("dataset", DatasetConfig), ("model", ModelConfig), ("training", TrainingConfig)):
        known = {f.name for f in fields(record)}
        unknown += sorted(f"{section}.{key}" for key in set(raw[section]) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")


def config_from_dict(raw: dict[str, Any]) -> PipelineConfig:
    for section in ("dataset", "model", "training"):
        if not isinstance(raw.get(section), dict):
            raise ConfigError(f"config section '{section}' is missing")
    _reject_unknown_keys(raw)
    d, m, t = raw["dataset"], raw["model"], raw["training"]
    dataset = DatasetConfig(
        name=_require(d, "name", str, "dataset"),
        raw_prefix=store_prefix(_require(d, "raw_prefix", str, "dataset"), "dataset.raw_prefix"),
        expectation_suite=project_path(
            _require(d, "expectation_suite", str, "dataset"), EXPECTATIONS_DIR, "dataset.expectation_suite"
        ),
        id_column=_require(d, "id_column", str, "dataset"),
        label_column=_require(d, "label_column", str, "dataset"),
        task=_optional(d, "task", str, "classification"),
        classes=tuple(_optional(d, "classes", list, [])),
        features=_names(d, "features"),
        feature_prefix=_optional(d, "feature_prefix", str, ""),
        exclude=_names(d, "exclude"),
        categorical=_names(d, "categorical"),
        imputation=_optional(d, "imputation", str, "median"),
        categorical_encoding=_optional(d, "categorical_encoding", str, "one_hot"),
        quarantine_max_fraction=float(d.get("quarantine_max_fraction", 0.0)),
        validation=str(d.get("validation", "gx")),
        validation_sample_rows=int(d.get("validation_sample_rows", 0)),
    )
    if dataset.validation not in ("gx", "vectorised"):
        raise ConfigError(f"dataset.validation {dataset.validation!r} is unknown (known: gx, vectorised)")
    _check_dataset(dataset, d)
    model = ModelConfig(
        name=_require(m, "name", str, "model"),
        kind=_require(m, "kind", str, "model"),
        hidden=tuple(_require(m, "hidden", list, "model")),
        channels=tuple(m.get("channels", ())),
        image_shape=tuple(m.get("image_shape", ())),
    )
    if model.kind not in ("mlp", "cnn"):
        raise ConfigError(f"model.kind {model.kind!r} is unknown (known: mlp, cnn)")
    if model.kind == "cnn" and (len(model.image_shape) != 2 or not model.channels):
        raise ConfigError("model.kind cnn needs model.image_shape [height, width] and model.channels")
    epochs = t.get("epochs")
    training = TrainingConfig(
        batch_size=_require(t, "batch_size", int, "training"),
        lr=float(_require(t, "lr", (int, float), "training")),
        momentum=float(t.get("momentum", 0.0)),
        weight_decay=float(t.get("weight_decay", 0.0)),
        workers=_require(t, "workers", int, "training"),
        threads_per_worker=int(t.get("threads_per_worker", 1)),
        epochs=None if epochs is None else int(epochs),
        schedule=str(t.get("schedule", "cosine")),
        max_hours=None if t.get("max_hours") is None else float(t["max_hours"]),
        max_cost=None if t.get("max_cost") is None else float(t["max_cost"]),
        backend=str(t.get("backend", BACKENDS[0])),
        precision=t.get("precision", PRECISIONS[0]),
    )
    if training.precision not in PRECISIONS:
        raise ConfigError(
            f"training.precision {training.precision!r} is unknown (known: {', '.join(PRECISIONS)}): "
            "fp32 trains in float32, bf16 runs forward and loss under bfloat16 autocast"
        )
    if training.backend not in BACKENDS:
        raise ConfigError(f"training.backend {training.backend!r} is unknown (known: {', '.join(BACKENDS)})")
    if training.schedule not in ("cosine", "constant"):
        raise ConfigError(f"training.schedule {training.schedule!r} is unknown (known: cosine, constant)")
    if training.batch_size < 1 or training.workers < 1 or training.lr <= 0:
        raise ConfigError("training.batch_size and training.workers must be >= 1 and training.lr > 0")
    protocol = project_path(_require(raw, "protocol", str, "config"), PROTOCOLS_DIR, "config.protocol")
    return PipelineConfig(dataset, model, training, protocol, raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'training.lr=0.1' -> (['training', 'lr'], 0.1); the value is parsed as YAML."""
    path, sep, value = text.partition("=")
    if not sep or not path:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    return path.split("."), yaml.safe_load(value)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                raise ConfigError(f"override {text!r}: no section {key!r}")
            node = node[key]
        node[keys[-1]] = value
    return out


def load_config(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as error:
        raise ConfigError(f"config file not found: {path}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} is not a YAML mapping")
    return config_from_dict(apply_overrides(raw, overrides or []))


def project_root() -> Path:
    """Where include/ lives: GAUNTLET_HOME, else the current directory (the repo or the image)."""
    import os

    return Path(os.environ.get("GAUNTLET_HOME", Path.cwd()))


def resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else project_root() / p


def project_files(folder: str) -> list[str]:
    """The YAML files in one of the project's folders, as the project-relative paths a run names."""
    root = project_root()
    found = [*(root / folder).glob("*.yaml"), *(root / folder).glob("*.yml")]
    return sorted(f"{folder}/{path.name}" for path in found if path.is_file())


def project_file(path: str | Path, folder: str, what: str) -> Path:
    """The file `path` names (project-relative or absolute), only if it lies directly in `folder`.

    Checked on the resolved path, so neither `..` nor a symlink leads out of the folder.
    """
    real = resolve(str(path)).resolve()
    if real.parent != (project_root() / folder).resolve():
        raise ConfigError(
            f"{what} {str(path)!r} is not a file in {folder}/: a run may only use the project's own "
            f"{what} files ({', '.join(project_files(folder)) or 'none found'}); add yours there"
        )
    if not real.is_file():
        raise ConfigError(f"{what} file not found: {path} (known: {', '.join(project_files(folder)) or 'none'})")
    return real


def config_file(path: str | Path) -> Path:
    return project_file(path, CONFIGS_DIR, "config")


def protocol_file(path: str | Path) -> Path:
    return project_file(path, PROTOCOLS_DIR, "protocol")
