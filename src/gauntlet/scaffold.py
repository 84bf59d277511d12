"""`gauntlet init`: from a profiled sample of a table, write its config, expectation suite and protocol.

Every decision is made from the sample (gauntlet.profiling) and written where a reviewer sees it: a
comment in the YAML files, a `meta.why` on each expectation, and a line in what init prints. The
output depends on the data alone (no dates or machine paths), so running init again on the same
partitions writes the same three files.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gauntlet.config import CONFIGS_DIR, EXPECTATIONS_DIR, PROTOCOLS_DIR, project_root
from gauntlet.errors import InitError
from gauntlet.profiling import MAX_VALUES, ColumnProfile, Profile

TASKS = ("classification", "regression")
MAX_CLASSES_GUESSED = 20  # a whole-number label with more distinct values is taken for a quantity
MAX_VALUE_SET = 20  # text columns with at most this many values get a value set
MAX_CATEGORIES = 50  # text columns with more values are left out of the features (one-hot would explode)
SLACK = 0.25  # numeric ranges are widened by this share of the observed span on each side
PARTITION_COLUMN = "date"  # preprocess adds the partition's date under this name
# The model and its budget: a small MLP, trained for about STEPS optimizer steps (within EPOCHS).
BATCH_SIZE, WORKERS, STEPS, EPOCHS = 32, 2, 400, (30, 100)
TEST_FRACTION, DEV_FRACTION = 0.20, 0.10
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_NUMERIC_TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"]
_INTEGER_TYPES = _NUMERIC_TYPES[:8]
_ID_TYPES = ["str", *_INTEGER_TYPES]


@dataclass(frozen=True)
class Plan:
    """What init decided, before any file is written."""

    name: str
    task: str
    id_column: str
    label_column: str
    raw_prefix: str
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    classes: tuple[Any, ...]
    left_out: dict[str, str] = field(default_factory=dict)  # column -> why it is not a feature
    decisions: tuple[str, ...] = ()  # one line each, printed and kept in the outputs


def check_name(name: str) -> str:
    """The dataset name names files, a store prefix and the registered model: keep it plain."""
    if not _NAME.fullmatch(name):
        raise InitError(
            f"dataset name {name!r} must be lower-case letters, digits, '-' or '_', starting with a letter "
            "(it names include/configs/NAME.yaml, the raw prefix and the registered model)"
        )
    return name


def paths(name: str, root: Path | None = None) -> dict[str, Path]:
    base = root or project_root()
    return {
        "config": base / CONFIGS_DIR / f"{name}.yaml",
        "suite": base / EXPECTATIONS_DIR / f"{name}.json",
        "protocol": base / PROTOCOLS_DIR / f"{name}-v1.yaml",
    }


def raw_prefix_for(name: str, source: str, store: str) -> tuple[str, str | None]:
    """(dataset.raw_prefix, a note when the pipeline will not find the data where init read it)."""
    root = store.rstrip("/") + "/"
    if source.startswith(root) and source.rstrip("/") != store.rstrip("/"):
        return source[len(root) :].strip("/"), None
    default = f"raw/{name}"
    return default, (
        f"the pipeline reads partitions from {root}{default}/date=YYYY-MM-DD/part-00000.parquet (or .csv): "
        f"land them there (dataset.raw_prefix), init read {source}"
    )


# --- decisions -----------------------------------------------------------------------------------


def plan(profile: Profile, name: str, id_column: str, label_column: str, task: str | None, store: str) -> Plan:
    """Check the id and label columns and decide the task, classes and features (InitError if refused)."""
    check_name(name)
    for what, named in (("--id", id_column), ("--label", label_column)):
        if named not in profile.names:
            raise InitError(f"{what} column {named!r} is not in the data; its columns are: {', '.join(profile.names)}")
    if id_column == label_column:
        raise InitError(f"--id and --label both name {id_column!r}: the label cannot be the row id")
    _check_ids(profile, id_column)
    label = profile.column(label_column)
    task, classes, why_task = _decide_task(profile, label, task)
    decisions = [f"task: {task} ({why_task})"]
    if classes:
        decisions.append(
            f"classes: {', '.join(map(repr, classes))} (the label values seen, sorted: index 0..{len(classes) - 1})"
        )
    features, categorical, left_out = [], [], {}
    for column in profile.columns:
        if column.name in (id_column, label_column):
            continue
        reason = _left_out(column, profile.rows)
        if reason:
            left_out[column.name] = reason
            continue
        features.append(column.name)
        if column.kind in ("text", "bool"):
            categorical.append(column.name)
    if not features:
        raise InitError(
            f"no column besides the id and the label can be a feature ({'; '.join(f'{k}: {v}' for k, v in left_out.items()) or 'none left'})"
        )
    decisions.append(
        f"features: {len(features)} columns, {len(categorical)} of them categorical ({', '.join(categorical) or 'none'})"
    )
    decisions += [f"left out of the features: {column} ({why})" for column, why in left_out.items()]
    raw_prefix, note = raw_prefix_for(name, profile.source, store)
    decisions.append(f"raw prefix: {raw_prefix}" + (f" — {note}" if note else ""))
    return Plan(
        name,
        task,
        id_column,
        label_column,
        raw_prefix,
        tuple(features),
        tuple(categorical),
        classes,
        left_out,
        tuple(decisions),
    )


def _check_ids(profile: Profile, id_column: str) -> None:
    ids = profile.column(id_column)
    if ids.kind not in ("numeric", "text") or (
        ids.kind == "numeric" and not ids.arrow_type.startswith(("int", "uint"))
    ):
        raise InitError(
            f"id column {id_column!r} is {ids.arrow_type}: row ids must be text or integers (the frozen split "
            "hashes the id's exact text, which a float has not)"
        )
    if ids.nulls:
        raise InitError(f"id column {id_column!r} has {ids.nulls} missing values in the sample: every row needs an id")
    repeated, examples = profile.duplicates(id_column)
    if repeated:
        raise InitError(
            f"id column {id_column!r} is not unique: {repeated} values occur more than once in the {profile.rows} "
            f"sampled rows, e.g. {', '.join(map(repr, examples))}; the split is keyed by the id, so each row needs its own"
        )


def _decide_task(profile: Profile, label: ColumnProfile, task: str | None) -> tuple[str, tuple[Any, ...], str]:
    """(task, classes, why) for the label column."""
    name = label.name
    if label.nulls:
        raise InitError(
            f"label column {name!r} has {label.nulls} missing values in the sample: every row needs a label"
        )
    if label.distinct < 2:
        only = label.values[0] if label.values else None
        raise InitError(
            f"label column {name!r} has one value ({only!r}) in the {profile.rows} sampled rows: there is nothing to learn"
        )
    if label.kind not in ("numeric", "text"):
        raise InitError(
            f"label column {name!r} is {label.arrow_type}: a label must be numbers or text (store a yes/no label as 0/1 or as text)"
        )
    if task is None:
        if label.kind == "numeric" and not (label.integral and label.distinct <= MAX_CLASSES_GUESSED):
            task, why = (
                "regression",
                f"numeric label with {label.distinct} distinct values; pass --task classification to override",
            )
        else:
            task, why = (
                "classification",
                f"{label.distinct} distinct {label.kind} label values; pass --task regression to override",
            )
    else:
        why = "--task"
    if task not in TASKS:
        raise InitError(f"--task {task!r} is unknown (known: {', '.join(TASKS)})")
    if task == "regression":
        if label.kind != "numeric":
            raise InitError(f"label column {name!r} is text: regression needs numbers (use --task classification)")
        return task, (), why
    if label.values is None:
        raise InitError(
            f"label column {name!r} has more than {MAX_VALUES} distinct values in the sample: too many to list as classes "
            "(if it is a quantity, use --task regression)"
        )
    if label.kind == "numeric" and not label.integral:
        raise InitError(
            f"label column {name!r} has fractional values such as {label.values[1]!r}: not class labels (use --task regression)"
        )
    classes = tuple(int(v) for v in label.values) if label.kind == "numeric" else tuple(label.values)
    return task, classes, why


def _left_out(column: ColumnProfile, rows: int) -> str | None:
    if column.name == PARTITION_COLUMN:
        return "the pipeline adds the partition's date under this name"
    if column.kind == "other":
        return f"type {column.arrow_type}: features are numbers, text or booleans"
    if column.nulls == rows:
        return "no values in the sample"
    if column.kind == "text" and column.distinct > MAX_CATEGORIES:
        return (
            f"text with {column.distinct if column.values is not None else f'over {MAX_VALUES}'} distinct values: too many "
            "categories to one-hot (add it to dataset.features and set categorical_encoding: ordinal if it is a feature)"
        )
    return None


# --- the expectation suite -----------------------------------------------------------------------


def _expect(kind: str, why: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"why": why}}


def widened(column: ColumnProfile) -> tuple[float, float, bool]:
    """(low, high, floored at 0): the observed range widened by SLACK of its span on each side (of the
    value itself when constant), never below 0 for a column that had no negative value; whole numbers
    stay whole, others are rounded outward to three digits of the span."""
    assert column.minimum is not None and column.maximum is not None
    low, high = float(column.minimum), float(column.maximum)
    span = high - low or max(abs(high), 1.0)
    step = 1.0 if column.integral and span >= 1 else 10.0 ** (math.floor(math.log10(span)) - 2)
    new_low = math.floor((low - SLACK * span) / step) * step
    new_high = math.ceil((high + SLACK * span) / step) * step
    floored = low >= 0 > new_low
    digits = max(0, -math.floor(math.log10(step)))
    return (0.0 if floored else round(new_low, digits)), round(new_high, digits), floored


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _range(column: ColumnProfile, rows: int) -> dict[str, Any]:
    low, high, floored = widened(column)
    return _expect(
        "expect_column_values_to_be_between",
        f"observed [{column.minimum:g}, {column.maximum:g}] in {rows} sampled rows, widened by {SLACK:.0%} of the span "
        f"on each side{' (but not below 0: no value was)' if floored else ''}; a value outside is a unit or upstream change",
        column=column.name,
        min_value=_number(low),
        max_value=_number(high),
    )


def _type_rule(column: ColumnProfile) -> dict[str, Any]:
    if column.kind == "text":
        return _expect(
            "expect_column_values_to_be_in_type_list", "text in the sample", column=column.name, type_list=["str"]
        )
    if column.kind == "bool":
        return _expect(
            "expect_column_values_to_be_in_type_list", "booleans in the sample", column=column.name, type_list=["bool"]
        )
    return _expect(
        "expect_column_values_to_be_in_type_list",
        "numbers in the sample (integers read with missing values become floats); text here means the upstream format changed",
        column=column.name,
        type_list=_NUMERIC_TYPES,
    )


def _column_rules(column: ColumnProfile, rows: int) -> list[dict[str, Any]]:
    rules = [_type_rule(column)]
    if not column.nulls:
        rules.append(
            _expect(
                "expect_column_values_to_not_be_null",
                f"no missing value in {rows} sampled rows: one now means an upstream fault",
                column=column.name,
            )
        )
    if column.kind == "numeric" and column.minimum is not None:
        rules.append(_range(column, rows))
    if column.kind == "text" and column.values is not None and len(column.values) <= MAX_VALUE_SET:
        rules.append(
            _expect(
                "expect_column_values_to_be_in_set",
                f"the {len(column.values)} values seen in the sample; add a new one here when it is expected",
                column=column.name,
                value_set=list(column.values),
            )
        )
    return rules


def _label_rules(plan: Plan, label: ColumnProfile, rows: int) -> list[dict[str, Any]]:
    name = label.name
    rules = [
        _expect(
            "expect_column_values_to_not_be_null", "every row needs a label to be trained on and scored", column=name
        )
    ]
    if plan.task == "regression":
        return [*rules, _type_rule(label), _range(label, rows)]
    integer = label.kind == "numeric" and label.arrow_type.startswith(("int", "uint"))
    types = ["str"] if label.kind == "text" else _INTEGER_TYPES if integer else ["float32", "float64"]
    return [
        *rules,
        _expect(
            "expect_column_values_to_be_in_type_list",
            f"the label was {label.kind} in the sample",
            column=name,
            type_list=types,
        ),
        _expect(
            "expect_column_values_to_be_in_set",
            "the classes in dataset.classes; a new class needs a new model: add it to both, with a new protocol",
            column=name,
            value_set=list(plan.classes),
        ),
    ]


def suite(profile: Profile, plan: Plan) -> dict[str, Any]:
    """The GX 1.x suite, in the shape of include/expectations/digits.json."""
    rows = profile.rows
    expectations = [
        _expect(
            "expect_table_row_count_to_be_between", "an empty partition means upstream failed to land data", min_value=1
        ),
        _expect(
            "expect_table_columns_to_match_set",
            "a renamed, missing or extra column changes what the model sees",
            column_set=profile.names,
            exact_match=True,
        ),
        _expect(
            "expect_column_values_to_not_be_null",
            "every row needs an id: the frozen split is keyed by it",
            column=plan.id_column,
        ),
        _expect(
            "expect_column_values_to_be_unique",
            "the frozen split is keyed by row id; duplicates would leak rows between splits",
            column=plan.id_column,
        ),
        _expect(
            "expect_column_values_to_be_in_type_list",
            "the split hashes the id's text: a float id has no exact text and would move rows between splits; "
            "ids are text, or integers written in plain decimal",
            column=plan.id_column,
            type_list=_ID_TYPES,
        ),
        *_label_rules(plan, profile.column(plan.label_column), rows),
    ]
    for column in profile.columns:
        if column.name not in (plan.id_column, plan.label_column) and column.kind != "other":
            expectations += _column_rules(column, rows)
    return {
        "name": f"{plan.name}_raw",
        "meta": {
            "notes": (
                f"Raw {plan.name} partitions, written by `gauntlet init` from {rows} rows sampled from "
                f"{len(profile.files)} of {profile.files_total} files; numeric ranges are the observed ones widened by "
                f"{SLACK:.0%} of their span on each side. Review and tighten them with what you know of the data."
            ),
            "row_quarantine": {
                "expectations": ["expect_column_values_to_be_in_set", "expect_column_values_to_be_between"],
                "why": (
                    "A value outside a range or value set spoils one row, not the file: such rows go to quarantine/ with "
                    "their reason while they stay under dataset.quarantine_max_fraction of the partition. Every other "
                    "rule (columns, types, nulls, unique ids, row count, readable file) fails the run."
                ),
            },
        },
        "expectations": expectations,
    }


# --- the config and the protocol -----------------------------------------------------------------


def _scalar(value: Any) -> str:
    """A YAML scalar that reads back as `value` (PyYAML quotes text that would read as something else)."""
    text: str = yaml.safe_dump(value, allow_unicode=True, width=1 << 16)
    return text.removesuffix("...\n").strip()


def _flow(values: list[Any] | tuple[Any, ...]) -> str:
    return "[" + ", ".join(_scalar(v) for v in values) + "]"


def epochs_for(rows: int, truncated: bool) -> tuple[int, str]:
    """(epoch budget, why): about STEPS optimizer steps over the training rows, within EPOCHS."""
    per_epoch = max(1, math.ceil(rows * (1 - TEST_FRACTION - DEV_FRACTION) / (BATCH_SIZE * WORKERS)))
    epochs = min(EPOCHS[1], max(EPOCHS[0], math.ceil(STEPS / per_epoch)))
    if truncated:
        epochs = EPOCHS[0]
    seen = f"over {rows}" if truncated else f"{rows}"
    return epochs, f"{per_epoch} steps per epoch on {seen} rows x {1 - TEST_FRACTION - DEV_FRACTION:.0%} train"


def config_text(plan: Plan, profile: Profile) -> str:
    kind = "classifier" if plan.task == "classification" else "regressor"
    lines = [
        f"# Pipeline config for {plan.name}, written by `gauntlet init` from {profile.rows} sampled rows.",
        f"# Review it, then trigger the nightly DAG with config=include/configs/{plan.name}.yaml.",
        "dataset:",
        f"  name: {plan.name}",
        f"  raw_prefix: {_scalar(plan.raw_prefix)}          # under the store root; partitions at <raw_prefix>/date=YYYY-MM-DD/",
        f"  expectation_suite: include/expectations/{plan.name}.json",
        f"  id_column: {_scalar(plan.id_column)}",
        f"  label_column: {_scalar(plan.label_column)}",
        f"  task: {plan.task}",
    ]
    if plan.classes:
        lines.append(f"  classes: {_flow(plan.classes)}   # the label values seen, sorted: list order = class index")
    lines.append("  features:                       # every column but the id and the label")
    lines += [f"    - {_scalar(name)}" for name in plan.features]
    if plan.categorical:
        lines.append(f"  categorical: {_flow(plan.categorical)}   # text/bool columns")
    lines += [f"  # left out: {name} ({why})" for name, why in plan.left_out.items()]
    lines += [
        "  imputation: median              # numeric nulls: median | mean | zero",
        "  categorical_encoding: one_hot   # one_hot (with an unknown bucket) | ordinal",
        "  quarantine_max_fraction: 0.05   # rows of a partition that row-level rules may set aside",
        "",
        "model:",
        f"  name: {plan.name}-{kind}          # registry name",
        "  kind: mlp",
        "  hidden: [64, 32]                # fully connected layers before the output",
        "",
        "training:",
        f"  batch_size: {BATCH_SIZE}                  # per worker; the global batch is batch_size x workers",
        "  lr: 0.01                        # per-worker base rate, scaled by the number of workers",
        "  momentum: 0.9",
        "  weight_decay: 0.0005",
        "  schedule: cosine                # cosine decay over the protocol's epoch budget",
        f"  workers: {WORKERS}                      # Horovod ranks (horovodrun -np)",
        "  threads_per_worker: 1",
        "",
        f"protocol: include/protocols/{plan.name}-v1.yaml",
    ]
    return "\n".join(lines) + "\n"


def _metrics_lines(plan: Plan, label: ColumnProfile) -> tuple[list[str], list[str], str]:
    """(metrics section, gate margin line, baseline section) for the task."""
    if plan.task == "regression":
        spread = label.std or 1.0
        margin, guard = _round(0.02 * spread), _round(0.05 * spread)
        return (
            [
                "metrics:",
                "  primary: rmse                 # the metric the gate decides on",
                "  guards:                       # may not get worse than the reference by more than the tolerance",
                f"    mae: {guard:g}                  # 5% of the label's standard deviation in the sample ({spread:.4g})",
                "  report: [rmse, mae, r2]",
            ],
            [
                f"  margin: {margin:g}          # for non_inferiority: 2% of the label's standard deviation ({spread:.4g})"
            ],
            "baseline:\n  kind: ridge\n  alpha: 1.0",
        )
    binary = len(plan.classes) == 2
    report = ["error_rate", "average_precision" if binary else "macro_average_precision", "roc_auc", "log_loss", "ece"]
    return (
        [
            "metrics:",
            "  primary: error_rate           # the metric the gate decides on",
            "  guards:                       # may not get worse than the reference by more than the tolerance",
            "    log_loss: 0.05",
            "    ece: 0.03",
            f"  report: {_flow(report)}"
            + (f"   # average precision of class {plan.classes[1]!r} (index 1)" if binary else ""),
        ],
        ["  margin: 0.01        # for non_inferiority: how much worse the primary metric may be"],
        "baseline:\n  kind: logistic_regression\n  C: 1.0\n  max_iter: 500",
    )


def _round(value: float) -> float:
    """Two significant digits."""
    return float(f"{value:.2g}") if value > 0 else 0.0


def protocol_text(plan: Plan, profile: Profile) -> str:
    label = profile.column(plan.label_column)
    epochs, why_epochs = epochs_for(profile.rows, profile.truncated)
    what = f"{len(plan.classes)} classes" if plan.classes else f"predicting {plan.label_column}"
    metrics, margin, baseline = _metrics_lines(plan, label)
    lines = [
        f"# The fixed comparison protocol for {plan.name}, written by `gauntlet init`.",
        "# Every model (candidate, scikit-learn baseline, champion) is scored under exactly this file.",
        "# Its content hash is the protocol id: editing anything here starts a new protocol version, and",
        "# results under different versions are never compared.",
        f"name: {plan.name}",
        f"description: {_scalar(f'{plan.name}: {plan.task}, {what}.')}",
        f"task: {plan.task}",
        "",
        "split:",
        '  # A row\'s split is decided by sha256("<salt>:<row id>") alone, so it never moves as data grows.',
        f"  id_column: {_scalar(plan.id_column)}",
        f"  salt: gauntlet-{plan.name}-v1",
        f"  test_fraction: {TEST_FRACTION:.2f}",
        f"  dev_fraction: {DEV_FRACTION:.2f}",
        "",
        "training:",
        f"  epochs: {epochs}          # fixed budget for every candidate: about {STEPS} steps ({why_epochs}), {EPOCHS[0]}..{EPOCHS[1]}",
        "  seed: 0",
        "",
        *metrics,
        "",
        "gate:",
        "  # Nightly retraining replaces the champion with the fresher model unless the interval shows it",
        "  # is worse by more than the margin; experiments that must prove a gain use superiority.",
        "  mode: non_inferiority   # superiority | non_inferiority",
        *margin,
        "  confidence: 0.95",
        "  bootstrap_resamples: 1000",
        "  bootstrap_seed: 0",
        "",
        baseline,
        "",
        "# Test-set columns whose values each get their own metric table in the report.",
        "slices: [date]",
        "",
        "# Rows whose labels a person has confirmed wrong. Confirming one creates a new protocol version.",
        "excluded_row_ids: []",
    ]
    return "\n".join(lines) + "\n"


# --- writing -------------------------------------------------------------------------------------


def render(profile: Profile, plan: Plan) -> dict[str, str]:
    """The three files' text, by role (config, suite, protocol)."""
    return {
        "config": config_text(plan, profile),
        "suite": json.dumps(suite(profile, plan), indent=1) + "\n",
        "protocol": protocol_text(plan, profile),
    }


def shown_path(path: Path) -> str:
    """A path as the user names it: project-relative when it lies in the project."""
    try:
        return path.relative_to(project_root()).as_posix()
    except ValueError:
        return str(path)


def refuse_existing(name: str, force: bool, root: Path | None = None) -> None:
    existing = [shown_path(p) for p in paths(name, root).values() if p.exists()]
    if existing and not force:
        raise InitError(f"{', '.join(existing)} already exist: review or move them, or pass --force to replace them")


def write(name: str, texts: dict[str, str], force: bool, root: Path | None = None) -> dict[str, Path]:
    """Write the files, refusing (before writing any) to replace existing ones without force."""
    refuse_existing(name, force, root)
    targets = paths(name, root)
    for role, path in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(texts[role])
        partial.replace(path)
    return targets
