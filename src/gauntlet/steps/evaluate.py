"""evaluate: score candidate, scikit-learn baseline and current champion under the fixed protocol.

All three models are scored on the same frozen test rows (minus the protocol's confirmed label
errors). A paired bootstrap over those rows gives a confidence interval for candidate - champion
and candidate - baseline on every metric, and the protocol's gate decides in one sentence whether
the candidate may become champion. The report (JSON, Markdown, HTML) and its PNGs are committed
under evaluations/<protocol id>/<experiment key>/<comparison>/ with a manifest written last.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gauntlet import experiments, ledger, plots, registry, storage
from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol, compute_metrics, decide, paired_bootstrap, per_class_table, slice_metrics
from gauntlet.reports import ProtocolMismatch
from gauntlet.training.data import Split, load_split
from gauntlet.training.model import load_bundle, predict_proba

log = get_logger("gauntlet.evaluate")


class EvaluationError(RuntimeError):
    """The candidate cannot be evaluated under this protocol; the message says why."""


def baseline_proba(protocol: Protocol, train: Split, test: Split, n_classes: int) -> np.ndarray:
    """The simple model every candidate must beat: standardised logistic regression."""
    settings = protocol.baseline
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(
            C=float(settings.get("C", 1.0)), max_iter=int(settings.get("max_iter", 500)), random_state=protocol.seed
        ),
    )
    model.fit(train.features, train.labels)
    proba = np.zeros((len(test.labels), n_classes))
    proba[:, model.classes_] = model.predict_proba(test.features)
    return proba


def _without_excluded(split: Split, protocol: Protocol) -> Split:
    keep = ~np.isin(split.ids, np.array(protocol.excluded_row_ids, dtype=str))
    return Split(split.ids[keep], split.features[keep], split.labels[keep], split.frame[keep].reset_index(drop=True))


def comparison_table(metrics: dict[str, dict[str, float]], names: list[str]) -> str:
    """Markdown table: one row per model, one column per metric."""
    header = "| model | " + " | ".join(names) + " |"
    rule = "|---|" + "---|" * len(names)
    rows = [f"| {model} | " + " | ".join(f"{values[n]:.4f}" for n in names) + " |" for model, values in metrics.items()]
    return "\n".join([header, rule, *rows])


def interval_table(comparisons: dict[str, dict[str, dict[str, float]]], names: list[str], confidence: float) -> str:
    header = f"| comparison | metric | difference | {confidence:.0%} CI |"
    rows = [header, "|---|---|---|---|"]
    for label, result in comparisons.items():
        for name in names:
            r = result[name]
            rows.append(f"| {label} | {name} | {r['diff']:+.4f} | [{r['low']:+.4f}, {r['high']:+.4f}] |")
    return "\n".join(rows)


def _html_page(report: dict[str, Any], markdown_tables: list[str]) -> str:
    def md_to_html(table: str) -> str:
        lines = [line for line in table.splitlines() if not line.startswith("|---")]
        cells = [[html.escape(c.strip()) for c in line.strip("|").split("|")] for line in lines]
        head = "".join(f"<th>{c}</th>" for c in cells[0])
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[1:])
        return f"<table><tr>{head}</tr>{body}</table>"

    images = "".join(
        f'<figure><a href="{name}"><img src="{name}" alt="{name}"></a><figcaption>{name}</figcaption></figure>'
        for name in report["plots"]
    )
    return (
        "<!doctype html><meta charset='utf-8'><title>gauntlet evaluation</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}figure{display:inline-block}</style>"
        f"<h1>Evaluation of experiment {html.escape(report['experiment_key'])}</h1>"
        f"<p>Protocol <code>{html.escape(report['protocol_id'])}</code> ({html.escape(report['protocol_name'])}), "
        f"dataset <code>{html.escape(report['dataset_version'])}</code>, {report['test_rows']} test rows.</p>"
        + (
            f"<p>Champion v{report['champion_version']} (registered under protocol "
            f"<code>{html.escape(str(report['champion_registered_protocol_id']))}</code>) was re-scored under "
            "this protocol.</p>"
            if report["champion_version"] is not None
            else ""
        )
        + f"<p><b>{html.escape(report['gate']['reason'])}</b></p>"
        + "".join(md_to_html(t) for t in markdown_tables)
        + images
    )


def run(protocol: Protocol, store: str, experiment_uri: str, model_name: str) -> dict[str, Any]:
    started = time.perf_counter()
    record = experiments.find_record(experiment_uri)
    if record is None:
        raise EvaluationError(f"{experiment_uri} has no {experiments.RECORD_NAME}: training did not finish")
    if record["protocol_id"] != protocol.id:
        # The experiment key includes the protocol id: training under the new protocol re-scores it.
        raise ProtocolMismatch(
            f"experiment {record['key']} was trained under protocol {record['protocol_id']}, not {protocol.id} "
            f"({protocol.name}); results under different protocol versions are never compared: run train "
            "under the new protocol to re-score it"
        )
    reg = registry.root(store, model_name)
    champ = registry.champion(reg)
    # Version numbers are per registry, so the model name is part of what this was compared against.
    against = f"{model_name}-champion-v{champ['version']}" if champ else "baseline-only"
    out_prefix = storage.join(store, "evaluations", protocol.id, record["key"], against)
    if champ and champ["experiment_key"] == record["key"]:
        log.info(
            "candidate %s is already champion v%d; its evaluation is %s",
            record["key"],
            champ["version"],
            champ["evaluation_uri"],
        )
        return {**storage.get_json(champ["evaluation_uri"])["outputs"], "cache_hit": True}
    if storage.is_committed(out_prefix):
        report = storage.get_json(storage.join(out_prefix, "report.json"))
        log.info(
            "cache hit: experiment %s was already evaluated against %s: %s",
            record["key"],
            against,
            report["gate"]["reason"],
        )
        print(report["tables"]["metrics"], flush=True)
        return {**report["outputs"], "cache_hit": True}

    with storage.temp_dir() as tmp:
        work = Path(tmp)
        test, manifest = load_split(record["dataset_uri"], "test", work / "data")
        train, _ = load_split(record["dataset_uri"], "train", work / "data")
        test = _without_excluded(test, protocol)
        n_classes = len(manifest["schema"]["classes"])
        names = list(protocol.metric_names)

        probas: dict[str, np.ndarray] = {}
        candidate = load_bundle(storage.get_bytes(record["model_uri"], expected_sha256=record["model_sha256"]))
        probas["candidate"] = predict_proba(candidate, test.features)
        probas["baseline"] = baseline_proba(protocol, train, test, n_classes)
        if champ:
            champion_model = load_bundle(registry.load_model_bytes(champ))
            probas[f"champion v{champ['version']}"] = predict_proba(champion_model, test.features)
        metrics = {label: compute_metrics(test.labels, p, names) for label, p in probas.items()}
        missing = [c for c in protocol.slices if c not in test.frame.columns]
        if missing:
            raise EvaluationError(
                f"protocol slices {missing} are not columns of the test set "
                f"(columns: {', '.join(map(str, test.frame.columns))})"
            )
        slices = {
            column: slice_metrics(test.labels, probas, test.frame[column].to_numpy(), names)
            for column in protocol.slices
        }

        def compare(other: str) -> dict[str, dict[str, float]]:
            return paired_bootstrap(
                test.labels,
                probas["candidate"],
                probas[other],
                names,
                protocol.bootstrap_resamples,
                protocol.bootstrap_seed,
                protocol.confidence,
            )

        vs_baseline = compare("baseline")
        vs_champion = compare(f"champion v{champ['version']}") if champ else None
        gate = decide(
            protocol, vs_champion, vs_baseline, champion_name=f"champion v{champ['version']}" if champ else "champion"
        )
        comparisons = {"candidate - baseline": vs_baseline}
        if vs_champion is not None:
            comparisons[f"candidate - champion v{champ['version']}"] = vs_champion  # type: ignore[index]

        suspects = ledger.suspected_label_errors(test, probas)
        ledger_uri = ledger.record_suspects(store, protocol, manifest["dataset"], record["key"], suspects)

        figures = work / "report"
        figures.mkdir()
        curves = {
            f"{r['key'][:8]} {r['params']['model']['kind']} lr={r['params']['lr']} ep={r['params']['epochs']}": [
                (row["step"], row["dev_error"]) for row in r["curve"]
            ]
            for r in experiments.list_records(store, protocol.id)
        }
        plots.learning_curves(
            curves, figures / "learning_curves.png", f"Learning curves, protocol {protocol.name} ({protocol.id[:8]})"
        )
        plots.confusion_matrix(
            test.labels,
            probas["candidate"].argmax(axis=1),
            n_classes,
            figures / "confusion_matrix.png",
            f"Candidate {record['key'][:8]} on the test set",
        )
        plots.reliability_diagram(
            test.labels, probas["candidate"], figures / "reliability.png", f"Candidate {record['key'][:8]} calibration"
        )
        tables = {
            "metrics": comparison_table(metrics, names),
            "intervals": interval_table(comparisons, names, protocol.confidence),
            "per_class": comparison_table(
                {
                    f"class {r['class']}": {k: float(v) for k, v in r.items() if k != "class"}
                    for r in per_class_table(test.labels, probas["candidate"])
                },
                ["support", "precision", "recall", "error_rate"],
            ),
        }
        for column, groups in slices.items():
            tables[f"slice_{column}"] = comparison_table(
                {
                    f"{column}={value} {model} (n={group['rows']})": values
                    for value, group in groups.items()
                    for model, values in group["metrics"].items()
                },
                names,
            )
        report_uri = storage.join(out_prefix, "report.json")
        outputs = {
            "report_uri": report_uri,
            "report_html_uri": storage.join(out_prefix, "report.html"),
            "gate_passed": gate.passed,
            "gate_reason": gate.reason,
            "experiment_key": record["key"],
            "experiment_uri": experiment_uri,
            "cache_hit": False,
        }
        report = {
            "experiment_key": record["key"],
            "experiment_uri": experiment_uri,
            "protocol_id": protocol.id,
            "protocol_name": protocol.name,
            "dataset_version": record["dataset_version"],
            "test_rows": len(test.labels),
            "excluded_rows": len(protocol.excluded_row_ids),
            "champion_version": champ["version"] if champ else None,
            # The champion is always re-scored here under this protocol, whatever it was registered under.
            "champion_registered_protocol_id": champ.get("protocol_id") if champ else None,
            "slices": slices,
            "metrics": metrics,
            "comparisons": comparisons,
            "gate": {"passed": gate.passed, "reason": gate.reason, "details": gate.details},
            "suspected_label_errors": len(suspects),
            "ledger_uri": ledger_uri,
            "plots": sorted(p.name for p in figures.glob("*.png")),
            "tables": tables,
            "created": dt.datetime.now(dt.UTC).isoformat(),
            "outputs": outputs,
        }
        (figures / "report.json").write_text(json.dumps(report, indent=2, default=float))
        (figures / "report.md").write_text(
            "\n\n".join([f"# Evaluation of {record['key']}", gate.reason, *tables.values()]) + "\n"
        )
        (figures / "report.html").write_text(_html_page(report, list(tables.values())))
        storage.commit_directory(figures, out_prefix, {"kind": "evaluation", "experiment": record["key"]})

    print(
        f"\nEvaluation under protocol {protocol.name} ({protocol.id}), {len(test.labels)} test rows:\n"
        f"{tables['metrics']}\n\n{tables['intervals']}\n",
        flush=True,
    )
    log.info("gate: %s", gate.reason)
    log.info("report: %s (%.1fs)", outputs["report_html_uri"], time.perf_counter() - started)
    return outputs
