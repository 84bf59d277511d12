"""The fixed comparison protocol file: its schema, parsing, id and budget.

Every model is scored under one protocol file. Its content hash is the protocol id, so results
from different protocol versions are never compared. This module is pure computation: callers
fetch protocol bytes (from disk or S3) and pass them in. The split rule lives in gauntlet.splits,
the metrics, bootstrap and gate that apply the protocol in gauntlet.scoring.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gauntlet.errors import ProtocolError
from gauntlet.hashing import content_hash
from gauntlet.scoring.metrics import CLASSIFICATION, METRIC_TASK, METRICS, REGRESSION, TASKS, metrics_for

GATE_MODES = ("superiority", "non_inferiority")
# gate.approval: who moves `champion` after a passed gate. automatic: the register step does;
# required: a person approves first (Airflow's approval task), and a rejection is recorded.
AUTOMATIC, REQUIRED = "automatic", "required"
APPROVALS = (AUTOMATIC, REQUIRED)
MIN_BOOTSTRAP_RESAMPLES = 1000
# baseline.kind -> (its task, its settings and their defaults): the simple model every candidate must beat.
BASELINES: dict[str, tuple[str, dict[str, float | int]]] = {
    "logistic_regression": (CLASSIFICATION, {"C": 1.0, "max_iter": 500}),
    "ridge": (REGRESSION, {"alpha": 1.0}),
}
DEFAULT_BASELINE = {CLASSIFICATION: "logistic_regression", REGRESSION: "ridge"}


@dataclass(frozen=True)
class Protocol:
    """A parsed, validated protocol file. `raw` is the parsed YAML; its hash is the id."""

    name: str
    description: str
    id_column: str
    salt: str
    test_fraction: float
    dev_fraction: float
    epochs: int
    seed: int
    primary_metric: str
    guards: dict[str, float] = field(hash=False)
    report_metrics: tuple[str, ...]
    gate_mode: str
    margin: float
    confidence: float
    bootstrap_resamples: int
    bootstrap_seed: int
    baseline: dict[str, Any] = field(hash=False)
    excluded_row_ids: tuple[str, ...]
    raw: dict[str, Any] = field(hash=False, repr=False)
    # Early stopping instead of a fixed budget: stop once dev error has not improved for this many
    # epochs; `epochs` is then the cap (until_plateau.max_epochs). None means the fixed budget.
    patience: int | None = None
    # Test-frame columns (e.g. the raw partition `date`) whose values get their own metric table.
    slices: tuple[str, ...] = ()
    # classification (labels are class indices, models give probabilities) or regression (float
    # labels, models give one value per row); every metric of the protocol belongs to it.
    task: str = CLASSIFICATION
    # Bias/variance diagnosis settings as given (reference_error, bias_gap, variance_gap, dev_test_gap);
    # gauntlet.scoring.diagnosis fills in the defaults for keys left out.
    diagnosis: dict[str, float] = field(default_factory=dict, hash=False)
    # gate.approval as given, else automatic. Only a key in the file changes the id (the id hashes
    # `raw`), so protocols written before the key existed keep theirs.
    approval: str = AUTOMATIC

    @property
    def id(self) -> str:
        """Content hash of the parsed file: any edit gives a new protocol version."""
        return content_hash(self.raw)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Primary, guard and report metrics, each once, in that order."""
        names = [self.primary_metric, *self.guards, *self.report_metrics]
        return tuple(dict.fromkeys(names))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Protocol:
        """Validate a parsed protocol; raises ProtocolError (bad input) naming the bad field."""
        return _parse_protocol(raw)


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a protocol YAML file from local disk."""
    data = Path(path).read_bytes()
    try:
        return protocol_from_bytes(data)
    except ProtocolError as exc:
        raise ProtocolError(f"{path}: {exc}") from exc


def protocol_from_bytes(data: bytes) -> Protocol:
    """Parse and validate protocol YAML given as bytes (e.g. an object body read by the caller)."""
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProtocolError(f"protocol is not valid UTF-8 YAML: {exc}") from exc
    return Protocol.from_dict(raw)


_TOP_LEVEL_KEYS = {
    "name",
    "description",
    "split",
    "training",
    "metrics",
    "gate",
    "baseline",
    "excluded_row_ids",
    "slices",
    "task",
    "diagnosis",
}
DIAGNOSIS_KEYS = ("reference_error", "bias_gap", "variance_gap", "dev_test_gap")
_SECTION_KEYS = {
    "split": {"id_column", "salt", "test_fraction", "dev_fraction"},
    "training": {"epochs", "seed", "until_plateau"},
    "metrics": {"primary", "guards", "report"},
    "gate": {"mode", "margin", "confidence", "bootstrap_resamples", "bootstrap_seed", "approval"},
}


def _parse_protocol(raw: Any) -> Protocol:
    if not isinstance(raw, Mapping):
        raise ProtocolError("protocol must be a YAML mapping at the top level")
    # Unknown keys are rejected because a misspelt key would otherwise silently fall back.
    _reject_unknown(raw, _TOP_LEVEL_KEYS, "")
    sections = {}
    for section, allowed in _SECTION_KEYS.items():
        value = raw.get(section)
        if not isinstance(value, Mapping):
            raise ProtocolError(f"{section} must be a mapping")
        _reject_unknown(value, allowed, f"{section}.")
        sections[section] = value
    split, training, metrics, gate = (sections[s] for s in ("split", "training", "metrics", "gate"))

    name = _nonempty_str(raw.get("name"), "name")
    description = raw.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise ProtocolError("description must be a string")

    test_fraction = _number(split.get("test_fraction"), "split.test_fraction")
    dev_fraction = _number(split.get("dev_fraction"), "split.dev_fraction")
    for key, value in (
        ("test_fraction", test_fraction),
        ("dev_fraction", dev_fraction),
    ):
        if not 0.0 < value < 1.0:
            raise ProtocolError(f"split.{key} must be in (0, 1), got {value}")
    if test_fraction + dev_fraction >= 1.0:
        raise ProtocolError(
            "split.test_fraction + split.dev_fraction must be < 1 to leave training rows, "
            f"got {test_fraction} + {dev_fraction}"
        )

    epochs, patience = _epoch_budget(training)
    seed = _integer(training.get("seed"), "training.seed", minimum=0)
    task = raw.get("task", CLASSIFICATION)
    if task not in TASKS:
        raise ProtocolError(f"task must be one of {', '.join(TASKS)}, got {task!r}")

    primary = _metric_name(metrics.get("primary"), "metrics.primary")
    guards_raw = metrics.get("guards") or {}
    if not isinstance(guards_raw, Mapping):
        raise ProtocolError("metrics.guards must be a mapping of metric name to tolerance")
    guards: dict[str, float] = {}
    for metric, tolerance in guards_raw.items():
        _metric_name(metric, "metrics.guards")
        value = _number(tolerance, f"metrics.guards.{metric}")
        if value < 0:
            raise ProtocolError(f"metrics.guards.{metric} tolerance must be >= 0, got {value}")
        guards[metric] = value
    report_raw = metrics.get("report")
    if report_raw is None:
        report_raw = [primary, *guards]
    if not isinstance(report_raw, list) or not report_raw:
        raise ProtocolError("metrics.report must be a non-empty list of metric names")
    report = tuple(_metric_name(m, "metrics.report") for m in report_raw)
    _require_task_metrics(task, [primary, *guards, *report])

    mode = gate.get("mode")
    if mode not in GATE_MODES:
        raise ProtocolError(f"gate.mode must be one of {', '.join(GATE_MODES)}, got {mode!r}")
    margin = _number(gate.get("margin", 0.0), "gate.margin")
    if margin < 0:
        raise ProtocolError(f"gate.margin must be >= 0, got {margin}")
    if mode == "superiority" and margin != 0:
        # A margin under superiority would be silently ignored; make the intent explicit.
        raise ProtocolError(f"gate.margin must be 0 when gate.mode is superiority, got {margin}")
    confidence = _number(gate.get("confidence"), "gate.confidence")
    if not 0.0 < confidence < 1.0:
        raise ProtocolError(f"gate.confidence must be in (0, 1), got {confidence}")
    resamples = _integer(
        gate.get("bootstrap_resamples"),
        "gate.bootstrap_resamples",
        minimum=MIN_BOOTSTRAP_RESAMPLES,
    )
    bootstrap_seed = _integer(gate.get("bootstrap_seed"), "gate.bootstrap_seed", minimum=0)
    approval = gate.get("approval", AUTOMATIC)
    if approval not in APPROVALS:
        raise ProtocolError(
            f"gate.approval must be one of {', '.join(APPROVALS)}, got {approval!r} "
            "(required: a person approves each promotion in Airflow; leave it out for automatic)"
        )

    baseline = _baseline(raw.get("baseline") or {}, task)

    excluded_raw = raw.get("excluded_row_ids") or []
    if not isinstance(excluded_raw, list):
        raise ProtocolError("excluded_row_ids must be a list")
    excluded: list[str] = []
    for item in excluded_raw:
        # Row ids are text. YAML reads an unquoted 010 as the integer 8 and 1e3 as a float: taking
        # either as an id would exclude the wrong row, so only quoted (string) entries are accepted.
        if not isinstance(item, str):
            raise ProtocolError(
                f"excluded_row_ids entries must be quoted strings, got {item!r} ({type(item).__name__}): "
                "write each id in quotes as it appears in the data (YAML reads an unquoted 010 as 8)"
            )
        excluded.append(item)

    slices_raw = raw.get("slices") or []
    if not isinstance(slices_raw, list):
        raise ProtocolError("slices must be a list of test-set column names")
    slices = tuple(_nonempty_str(column, "slices") for column in slices_raw)

    return Protocol(
        name=name,
        description=description,
        id_column=_nonempty_str(split.get("id_column"), "split.id_column"),
        salt=_nonempty_str(split.get("salt"), "split.salt"),
        test_fraction=test_fraction,
        dev_fraction=dev_fraction,
        epochs=epochs,
        seed=seed,
        primary_metric=primary,
        guards=guards,
        report_metrics=report,
        gate_mode=mode,
        margin=margin,
        confidence=confidence,
        bootstrap_resamples=resamples,
        bootstrap_seed=bootstrap_seed,
        baseline=baseline,
        excluded_row_ids=tuple(excluded),
        raw=copy.deepcopy(dict(raw)),
        patience=patience,
        slices=slices,
        task=task,
        diagnosis=_diagnosis(raw.get("diagnosis")),
        approval=approval,
    )


def _diagnosis(section: Any) -> dict[str, float]:
    """The optional diagnosis section: reference level and gaps, each a number >= 0 in the task's error metric."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ProtocolError(f"diagnosis must be a mapping of {', '.join(DIAGNOSIS_KEYS)} to numbers")
    _reject_unknown(section, set(DIAGNOSIS_KEYS), "diagnosis.")
    settings = {key: _number(section[key], f"diagnosis.{key}") for key in DIAGNOSIS_KEYS if key in section}
    negative = [key for key, value in settings.items() if value < 0]
    if negative:
        raise ProtocolError(f"diagnosis.{negative[0]} must be >= 0, got {settings[negative[0]]}")
    return settings


def _require_task_metrics(task: str, names: Sequence[str]) -> None:
    """Every metric of the protocol scores its task (an RMSE of class probabilities means nothing)."""
    other = [name for name in dict.fromkeys(names) if METRIC_TASK[name] != task]
    if other:
        raise ProtocolError(
            f"metrics {', '.join(other)} are not {task} metrics, and the protocol's task is {task} "
            f"(task: {CLASSIFICATION} unless set): use {task} metrics ({', '.join(metrics_for(task))}) "
            "or set the top-level task"
        )


def _baseline(baseline: Any, task: str) -> dict[str, Any]:
    """The baseline section with its kind and every setting filled in; the kind must fit the task."""
    if not isinstance(baseline, Mapping):
        raise ProtocolError("baseline must be a mapping")
    kind = baseline.get("kind", DEFAULT_BASELINE[task])
    if kind not in BASELINES:
        raise ProtocolError(f"baseline.kind must be one of {', '.join(BASELINES)}, got {kind!r}")
    kind_task, defaults = BASELINES[kind]
    if kind_task != task:
        raise ProtocolError(
            f"baseline.kind {kind} is a {kind_task} baseline and the protocol's task is {task}: "
            f"use baseline.kind {DEFAULT_BASELINE[task]}"
        )
    _reject_unknown(baseline, {"kind", *defaults}, "baseline.")
    settings: dict[str, Any] = {"kind": kind}
    for key, default in defaults.items():
        where = f"baseline.{key}"
        if isinstance(default, int):
            settings[key] = _integer(baseline.get(key, default), where, minimum=1)
        else:
            settings[key] = _number(baseline.get(key, default), where)
            if settings[key] < 0 or (key == "C" and settings[key] == 0):
                raise ProtocolError(f"{where} must be {'> 0' if key == 'C' else '>= 0'}, got {settings[key]}")
    return settings


def _epoch_budget(training: Mapping[str, Any]) -> tuple[int, int | None]:
    """(epoch cap, patience): a fixed `epochs` budget, or `until_plateau` {patience, max_epochs}."""
    plateau = training.get("until_plateau")
    if plateau is None:
        return _integer(training.get("epochs"), "training.epochs", minimum=1), None
    if "epochs" in training:
        # Two budgets would leave a reader guessing which one applied.
        raise ProtocolError("give either training.epochs or training.until_plateau, not both")
    if not isinstance(plateau, Mapping):
        raise ProtocolError("training.until_plateau must be a mapping with patience and max_epochs")
    _reject_unknown(plateau, {"patience", "max_epochs"}, "training.until_plateau.")
    patience = _integer(plateau.get("patience"), "training.until_plateau.patience", minimum=1)
    max_epochs = _integer(plateau.get("max_epochs"), "training.until_plateau.max_epochs", minimum=1)
    return max_epochs, patience


def plateaued(dev_errors: Sequence[float], patience: int) -> bool:
    """True once the best dev error so far is `patience` or more epochs old.

    Only a strictly lower error counts as an improvement, so a flat curve stops after `patience`.
    """
    if not dev_errors:
        return False
    best = int(np.argmin(np.asarray(dev_errors, dtype=np.float64)))  # first occurrence of the minimum
    return len(dev_errors) - 1 - best >= patience


def off_protocol_reason(params: Mapping[str, Any], protocol: Protocol) -> str | None:
    """Why a run's training params break the protocol's fixed budget, or None when they keep it.

    The protocol fixes the epoch budget; a run that overrides it is kept and reported, never promoted.
    """
    epochs = params.get("epochs")
    if epochs != protocol.epochs:
        return (
            f"the run is off-protocol: it trained with an epoch budget of {epochs}, and protocol "
            f"{protocol.name} ({protocol.id}) fixes {protocol.epochs}"
        )
    return None


def _reject_unknown(mapping: Mapping[Any, Any], allowed: set[str], prefix: str) -> None:
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        names = ", ".join(prefix + k for k in unknown)
        raise ProtocolError(f"unknown field(s): {names} (allowed: {', '.join(sorted(allowed))})")


def _nonempty_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    # bool is an int subclass; `true` in YAML is never a sensible number here.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{where} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ProtocolError(f"{where} must be finite, got {value!r}")
    return float(value)


def _integer(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{where} must be an integer, got {value!r}")
    if value < minimum:
        raise ProtocolError(f"{where} must be >= {minimum}, got {value}")
    return value


def _metric_name(value: Any, where: str) -> str:
    if value not in METRICS:
        raise ProtocolError(f"{where}: unknown metric {value!r} (known: {', '.join(sorted(METRICS))})")
    return str(value)
