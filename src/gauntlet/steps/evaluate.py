"""evaluate: score candidate, scikit-learn baseline, champion and the protocol's anchor under the fixed protocol.

Every model is scored on the same frozen test rows (minus the protocol's confirmed label errors):
class probabilities under a classification protocol, one predicted value per row under a
regression protocol (whose dataset must be a regression dataset, and the other way round).
A paired bootstrap over those rows gives a confidence interval for candidate - champion, candidate
- baseline and candidate - anchor (the best model promoted under this protocol, see gauntlet.anchor)
on every metric, and the protocol's gate decides in one sentence whether the candidate may become
champion: it must hold against all of them. A champion trained under another split is never scored
on these rows (they include rows it trained on). The report (JSON, Markdown, HTML) and its PNGs are
committed under evaluations/<protocol id>/<experiment key>/<comparison>/<evaluation key>/ with a
manifest written last; the evaluation key hashes the evaluate and scoring code and the library versions.

`run` reads as the work it does: plan (what is compared, or the earlier result) -> score -> compare
-> decide -> report -> commit.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gauntlet import anchor, experiments, layout, ledger, mlflow_mirror, registry, storage
from gauntlet.errors import EvaluationError, ProtocolMismatch
from gauntlet.hashing import EVALUATE_CODE, code_version, content_hash
from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol, off_protocol_reason
from gauntlet.scoring import gate, mistakes, predictions, shift
from gauntlet.scoring.bootstrap import paired_bootstrap
from gauntlet.scoring.compare import test_set_id
from gauntlet.scoring.context import report_context
from gauntlet.scoring.diagnosis import diagnose, write_chart
from gauntlet.scoring.metrics import BINARY_ONLY, CLASSIFICATION, compute_metrics, per_class_table, slice_metrics
from gauntlet.scoring.power import resolution
from gauntlet.scoring.references import (
    baseline_predictions,
    champion_model_bytes,
    champion_stand_in,
    require_own_split,
)
from gauntlet.scoring.report import evaluation_tables, write_evaluation_figures, write_evaluation_report
from gauntlet.training.data import Split, load_split
from gauntlet.training.model import load_bundle, predict

log = get_logger("gauntlet.evaluate")
Comparison = dict[str, dict[str, float]]  # paired_bootstrap's result: metric -> a, b, diff, low, high


def _without_excluded(split: Split, protocol: Protocol) -> Split:
    keep = ~np.isin(split.ids, np.array(protocol.excluded_row_ids, dtype=str))
    return Split(split.ids[keep], split.features[keep], split.labels[keep], split.frame[keep].reset_index(drop=True))


def evaluation_key_parts() -> dict[str, str]:
    """What, besides the candidate and its references, changes an evaluation's result."""
    import sklearn

    return {
        "evaluate_code": code_version(EVALUATE_CODE),
        "scikit-learn": str(sklearn.__version__),
        "numpy": str(np.__version__),
    }


_PART_NAMES = {"evaluate_code": "evaluate code version", "scikit-learn": "scikit-learn", "numpy": "numpy"}


def explain_evaluation_miss(against_prefix: str, parts: dict[str, str]) -> str | None:
    """Why earlier evaluations of this candidate against these references are not reused, or None."""
    earlier: list[dict[str, str]] = []
    for obj in storage.list_objects(against_prefix + "/"):
        if not obj["key"].endswith("/" + layout.REPORT_NAME):
            continue
        earlier.append(storage.get_json(obj["uri"]).get("evaluation_key_parts") or {})
    if not earlier:
        return None
    nearest = min(earlier, key=lambda theirs: sum(theirs.get(k) != v for k, v in parts.items()))
    if not nearest:
        return "the earlier evaluation predates evaluation keys (evaluate code version, scikit-learn, numpy)"
    changed = [f"{_PART_NAMES.get(k, k)} {nearest.get(k)} -> {v}" for k, v in parts.items() if nearest.get(k) != v]
    return "an earlier evaluation differs in: " + ", ".join(changed)


def class_names(manifest: dict[str, Any]) -> list[str]:
    """The dataset's class names in class-index order ([] for regression), as reports show them."""
    return [str(c) for c in manifest["schema"].get("classes", [])]


def require_fitting_dataset(protocol: Protocol, dataset_uri: str, manifest: dict[str, Any]) -> None:
    """ProtocolMismatch unless the dataset is of the protocol's task and has the classes its metrics need."""
    task = manifest["schema"].get("task", CLASSIFICATION)  # datasets written before tasks are classification
    if task != protocol.task:
        raise ProtocolMismatch(
            f"dataset {dataset_uri} is a {task} dataset (its config's dataset.task) and protocol {protocol.name} "
            f"({protocol.id}) scores {protocol.task}: evaluate it under a protocol with `task: {task}`, or "
            f"set dataset.task: {protocol.task} in the config and run preprocess and train again"
        )
    n_classes = len(manifest["schema"].get("classes", []))
    binary = [name for name in protocol.metric_names if name in BINARY_ONLY]
    if binary and n_classes != 2:
        raise ProtocolMismatch(
            f"protocol {protocol.name} ({protocol.id}) scores {', '.join(binary)}, defined for two classes only, "
            f"and dataset {dataset_uri} has {n_classes} classes: use macro_average_precision in the protocol's "
            "metrics instead"
        )


@dataclass
class Plan:
    """What one evaluation compares, fixed before any model is scored."""

    protocol: Protocol
    store: str
    record: dict[str, Any]  # the candidate's experiment record
    experiment_uri: str
    reg: str
    champ: dict[str, Any] | None
    stand_in: dict[str, Any] | None  # the champion's config re-trained under this split, scored in its place
    anchor: dict[str, Any] | None  # the anchor version before this evaluation
    key_parts: dict[str, str]
    out_prefix: str

    @property
    def champion_label(self) -> str | None:
        if self.champ is None:
            return None
        if self.stand_in is not None:
            return f"champion v{self.champ['version']} re-trained ({self.stand_in['key'][:12]})"
        return f"champion v{self.champ['version']}"

    @property
    def off_protocol(self) -> str | None:
        return self.record.get("off_protocol_reason") or off_protocol_reason(self.record["params"], self.protocol)


@dataclass
class Scores:
    """Every model's probabilities and metrics on the test rows, and the anchor settled on them."""

    test: Split
    manifest: dict[str, Any]  # the dataset's manifest
    names: list[str]
    # By model label (candidate, baseline, champion ..., anchor ...): class probabilities (rows, classes),
    # or predicted values (rows, 1) under a regression protocol.
    probas: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]
    slices: dict[str, dict[str, dict[str, Any]]]
    anchor: dict[str, Any] | None
    anchor_info: dict[str, Any]
    anchor_is_champion: bool

    @property
    def anchor_label(self) -> str | None:
        return _anchor_label(self.anchor)

    @property
    def anchor_record(self) -> dict[str, Any]:
        return {
            **self.anchor_info,
            "version": self.anchor["version"] if self.anchor else None,
            "is_champion": self.anchor_is_champion,
            "experiment_key": self.anchor["experiment_key"] if self.anchor else None,
        }


def _anchor_label(version: dict[str, Any] | None) -> str | None:
    return f"anchor v{version['version']}" if version else None


def _is_champion(version: dict[str, Any] | None, champ: dict[str, Any] | None) -> bool:
    return bool(version and champ and version["version"] == champ["version"])


def run(protocol: Protocol, store: str, experiment_uri: str, model_name: str) -> dict[str, Any]:
    started = time.perf_counter()
    plan = _plan(protocol, store, experiment_uri, model_name)
    if not isinstance(plan, Plan):
        return plan  # evaluated before: the earlier outputs
    with storage.temp_dir() as tmp:
        scores = _score(plan, Path(tmp) / "data")
        comparisons = _compare(plan, scores)
        verdict = _decide(plan, scores, comparisons)
        report = _report(plan, scores, comparisons, verdict, Path(tmp) / "report")
        outputs = _commit(plan, report, Path(tmp) / "report")
    log.info("report: %s (%.1fs)", outputs["report_html_uri"], time.perf_counter() - started)
    mlflow_mirror.mirror_evaluation(outputs["report_uri"])  # when configured; a failure is only a warning
    return outputs


def _plan(protocol: Protocol, store: str, experiment_uri: str, model_name: str) -> Plan | dict[str, Any]:
    """The candidate, its references and where the result goes; the earlier outputs if it was evaluated."""
    record = experiments.find_record(experiment_uri)
    if record is None:
        raise EvaluationError(f"{experiment_uri} has no {layout.RECORD_NAME}: training did not finish")
    if record["protocol_id"] != protocol.id:
        # The experiment key includes the protocol id: training under the new protocol re-scores it.
        raise ProtocolMismatch(
            f"experiment {record['key']} was trained under protocol {record['protocol_id']}, not {protocol.id} "
            f"({protocol.name}); results under different protocol versions are never compared: run train "
            "under the new protocol to re-score it"
        )
    reg = layout.registry_root(store, model_name)
    champ = registry.champion(reg)
    if champ and champ["experiment_key"] == record["key"]:
        log.info(
            "candidate %s is already champion v%d; its evaluation is %s",
            record["key"],
            champ["version"],
            champ["evaluation_uri"],
        )
        return {**storage.get_json(champ["evaluation_uri"])["outputs"], "cache_hit": True}
    require_own_split(f"experiment {record['key']}", record["dataset_uri"], protocol)
    require_fitting_dataset(protocol, record["dataset_uri"], storage.read_manifest(record["dataset_uri"]))
    stand_in = champion_stand_in(store, protocol, champ, record) if champ else None
    anchor_version = anchor.current(reg, protocol)
    if anchor_version is not None:
        require_own_split(f"anchor v{anchor_version['version']}", anchor_version["dataset_uri"], protocol)

    # Version numbers are per registry, so the model name is part of what this was compared against;
    # the anchor and a re-trained stand-in change the verdict, so they are part of it too.
    against = f"{model_name}-champion-v{champ['version']}" if champ else "baseline-only"
    if anchor_version is not None:
        against += f"-anchor-v{anchor_version['version']}"
    if stand_in is not None:
        against += f"-retrained-{stand_in['key'][:12]}"
    parts = evaluation_key_parts()
    against_prefix = layout.evaluations_against(store, protocol.id, record["key"], against)
    out_prefix = layout.evaluation_prefix(store, protocol.id, record["key"], against, content_hash(parts))
    if storage.is_committed(out_prefix):
        report = storage.get_json(layout.report_uri(out_prefix))
        log.info(
            "cache hit: experiment %s was already evaluated against %s: %s",
            record["key"],
            against,
            report["gate"]["reason"],
        )
        print(report["tables"]["metrics"], flush=True)
        return {**report["outputs"], "cache_hit": True}
    why = explain_evaluation_miss(against_prefix, parts)
    log.info("cache miss: evaluating experiment %s against %s%s", record["key"], against, f"; {why}" if why else "")
    return Plan(protocol, store, record, experiment_uri, reg, champ, stand_in, anchor_version, parts, out_prefix)


def _score(plan: Plan, data: Path) -> Scores:
    """Every model on the protocol's test rows: candidate, baseline, champion (or its stand-in), anchor."""
    protocol, record, champ = plan.protocol, plan.record, plan.champ
    test, manifest = load_split(record["dataset_uri"], "test", data)
    train, _ = load_split(record["dataset_uri"], "train", data)
    test = _without_excluded(test, protocol)
    missing = [c for c in protocol.slices if c not in test.frame.columns]
    if missing:  # checked before scoring, so a bad slice column cannot move the anchor first
        raise EvaluationError(
            f"protocol slices {missing} are not columns of the test set "
            f"(columns: {', '.join(map(str, test.frame.columns))})"
        )
    names = list(protocol.metric_names)

    def scored(bundle: bytes) -> np.ndarray:
        return predict(load_bundle(bundle), test.features, protocol.task)

    probas = {
        "candidate": scored(storage.get_bytes(record["model_uri"], expected_sha256=record["model_sha256"])),
        "baseline": baseline_predictions(protocol, train, test, len(class_names(manifest))),
    }
    champion_label, held = plan.champion_label, plan.anchor
    if champ and champion_label:
        probas[champion_label] = scored(champion_model_bytes(champ, plan.stand_in))
    held_label = _anchor_label(held)
    if held and held_label and not _is_champion(held, champ):
        probas[held_label] = scored(registry.load_model_bytes(held))
    metrics = {label: compute_metrics(test.labels, p, names) for label, p in probas.items()}

    champion_scores = metrics[champion_label] if champion_label and plan.stand_in is None else None
    held_scores = metrics.get(held_label) if held_label else None
    settled, info = anchor.settle(plan.reg, protocol, champ, champion_scores, held, held_scores)
    if held_label and info["moved"]:
        # The anchor is now the champion: its comparison is the champion's; drop the old anchor's row.
        probas.pop(held_label, None)
        metrics.pop(held_label, None)
    settled_label = _anchor_label(settled)
    if settled and settled_label and not _is_champion(settled, champ) and settled_label not in probas:
        # Another run moved the anchor while this one scored: score the one now in place.
        probas[settled_label] = scored(registry.load_model_bytes(settled))
        metrics[settled_label] = compute_metrics(test.labels, probas[settled_label], names)
    slices = {c: slice_metrics(test.labels, probas, test.frame[c].to_numpy(), names) for c in protocol.slices}
    return Scores(test, manifest, names, probas, metrics, slices, settled, info, _is_champion(settled, champ))


def _compare(plan: Plan, scores: Scores) -> dict[str, Comparison]:
    """candidate - each reference (baseline, champion, anchor), paired on the same bootstrap resamples."""
    protocol = plan.protocol
    references = ["baseline"]
    if plan.champion_label:
        references.append(plan.champion_label)
    if scores.anchor_label and not scores.anchor_is_champion:
        references.append(scores.anchor_label)
    return {
        reference: paired_bootstrap(
            scores.test.labels,
            scores.probas["candidate"],
            scores.probas[reference],
            scores.names,
            protocol.bootstrap_resamples,
            protocol.bootstrap_seed,
            protocol.confidence,
        )
        for reference in references
    }


def _decide(plan: Plan, scores: Scores, comparisons: dict[str, Comparison]) -> gate.GateDecision:
    """The protocol's gate over every comparison; its details carry the anchor into the lineage."""
    champion, anchor_label = plan.champion_label, scores.anchor_label
    verdict = gate.decide(
        plan.protocol,
        comparisons[champion] if champion else None,
        comparisons["baseline"],
        champion_name=champion or "champion",
        vs_anchor=comparisons.get(anchor_label) if anchor_label else None,
        anchor_name=anchor_label or "anchor",
        off_protocol=plan.off_protocol,
        test_rows=len(scores.test.labels),  # so a test set too small to decide says so
    )
    # The gate's details travel into a registered version's lineage: the anchor goes with them.
    verdict.details["anchor_record"] = scores.anchor_record
    return verdict


def _report(
    plan: Plan, scores: Scores, comparisons: dict[str, Comparison], verdict: gate.GateDecision, folder: Path
) -> dict[str, Any]:
    """report.{json,md,html} and the PNGs in `folder`; suspected label errors (classification) go to the ledger."""
    protocol, record, champ, test = plan.protocol, plan.record, plan.champ, scores.test
    classes = class_names(scores.manifest)
    suspects, ledger_uri = ledger.record_evaluation(
        plan.store, protocol, scores.manifest["dataset"], record["key"], test, scores.probas, classes
    )
    folder.mkdir()
    figures = write_evaluation_figures(
        folder,
        protocol,
        experiments.list_records(plan.store, protocol.id),
        test.labels,
        scores.probas["candidate"],
        classes,
        record["key"],
    )
    diagnosis = diagnose(protocol, record, test.labels, scores.probas["candidate"], scores.probas["baseline"])
    write_chart(folder, diagnosis, record["key"])  # the report's bias / variance section shows it
    log.info("%s", diagnosis["sentence"])
    power = resolution(protocol, comparisons, len(test.labels), verdict.details["target"])
    log.info("test set size: %s", power["sentence"])
    kept = predictions.write_predictions(folder, plan.out_prefix, test, scores.probas, classes, protocol.task)
    # After the ledger took this evaluation's suspects, so the error analysis marks them too.
    errors = mistakes.analyse(
        folder, plan.store, scores.manifest["dataset"], test, scores.probas["candidate"], classes, protocol.task, record
    )
    newest_day = shift.check(protocol, test.labels, scores.probas["candidate"], test.frame["date"].to_numpy())
    labelled = {f"candidate - {reference}": result for reference, result in comparisons.items()}
    # Per-class figures only mean something for classes; a regression report has none.
    per_class = per_class_table(test.labels, scores.probas["candidate"]) if protocol.task == CLASSIFICATION else []
    tables = evaluation_tables(
        scores.metrics, labelled, scores.names, protocol.confidence, per_class, scores.slices, classes
    )
    outputs = {
        "report_uri": layout.report_uri(plan.out_prefix),
        "report_html_uri": layout.report_html_uri(plan.out_prefix),
        "gate_passed": verdict.passed,
        "gate_reason": verdict.reason,
        "experiment_key": record["key"],
        "experiment_uri": plan.experiment_uri,
        "off_protocol": plan.off_protocol is not None,
        "cache_hit": False,
    }
    report = {
        "experiment_key": record["key"],
        "experiment_uri": plan.experiment_uri,
        "protocol_id": protocol.id,
        "protocol_name": protocol.name,
        "task": protocol.task,
        "classes": classes,
        "dataset_version": record["dataset_version"],
        # The rows every model here was scored on: reports compare only on equal test sets.
        "test_set_id": test_set_id(test.ids.tolist()),
        "test_rows": len(test.labels),
        "excluded_rows": len(protocol.excluded_row_ids),
        "evaluation_key": plan.out_prefix.rsplit("/", 1)[-1],
        "evaluation_key_parts": plan.key_parts,
        "off_protocol": plan.off_protocol,
        "champion_version": champ["version"] if champ else None,
        # The champion is always re-scored here under this protocol, whatever it was registered under.
        "champion_registered_protocol_id": champ.get("protocol_id") if champ else None,
        "champion_retrained": (
            {"experiment_key": plan.stand_in["key"], "experiment_uri": plan.stand_in["uri"]} if plan.stand_in else None
        ),
        "anchor": scores.anchor_record,
        "slices": scores.slices,
        "metrics": scores.metrics,
        "comparisons": labelled,
        "gate": {"passed": verdict.passed, "reason": verdict.reason, "details": verdict.details},
        "diagnosis": diagnosis,  # training, dev, test and baseline error, and what they say
        "test_set_power": power,  # the smallest difference the test rows resolve
        "suspected_label_errors": suspects,  # None: the task has no label errors (regression)
        "ledger_uri": ledger_uri,
        "predictions": kept,  # every scored model on the test rows, beside the report
        "mistakes": errors,
        "domain_shift": newest_day,
        **report_context(record, scores.manifest),  # drift of its data, compute preflight vs actual
        "plots": figures,
        "tables": tables,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "outputs": outputs,
    }
    write_evaluation_report(folder, report)
    return report


def _commit(plan: Plan, report: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Commit the report folder (manifest last) and say what was decided."""
    storage.commit_directory(folder, plan.out_prefix, {"kind": "evaluation", "experiment": plan.record["key"]})
    protocol, tables = plan.protocol, report["tables"]
    print(
        f"\nEvaluation under protocol {protocol.name} ({protocol.id}), {report['test_rows']} test rows:\n"
        f"{tables['metrics']}\n\n{tables['intervals']}\n",
        flush=True,
    )
    log.info("gate: %s", report["gate"]["reason"])
    return dict(report["outputs"])
