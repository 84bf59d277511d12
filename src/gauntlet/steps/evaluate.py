"""evaluate: score candidate, scikit-learn baseline, champion and the protocol's anchor under the fixed protocol.

Every model is scored on the same frozen test rows (minus the protocol's confirmed label errors).
A paired bootstrap over those rows gives a confidence interval for candidate - champion, candidate
- baseline and candidate - anchor (the best model promoted under this protocol, see gauntlet.anchor)
on every metric, and the protocol's gate decides in one sentence whether the candidate may become
champion: it must hold against all of them. A champion trained under another split is never scored
on these rows (they include rows it trained on). The report (JSON, Markdown, HTML) and its PNGs are
committed under evaluations/<protocol id>/<experiment key>/<comparison>/<evaluation key>/ with a
manifest written last; the evaluation key hashes the evaluate code and the library versions.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gauntlet import anchor, experiments, ledger, plots, registry, storage
from gauntlet.errors import BadInput
from gauntlet.hashing import code_version, content_hash
from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol, off_protocol_reason
from gauntlet.scoring import compare
from gauntlet.scoring.bootstrap import paired_bootstrap
from gauntlet.scoring.compare import ProtocolMismatch
from gauntlet.scoring.gate import decide
from gauntlet.scoring.metrics import compute_metrics, per_class_table, slice_metrics
from gauntlet.training.data import Split, load_split
from gauntlet.training.model import load_bundle, predict_proba

log = get_logger("gauntlet.evaluate")
# The modules that shape an evaluation's figures and verdict: part of its key, so a change re-scores.
EVALUATE_CODE = (
    "steps/evaluate.py",
    "protocol.py",
    "anchor.py",
    "scoring/metrics.py",
    "scoring/bootstrap.py",
    "scoring/gate.py",
    "training/model.py",
    "training/data.py",
)


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
        + "<pre>"
        + html.escape(_references_text(report))
        + "</pre>"
        + "".join(md_to_html(t) for t in markdown_tables)
        + images
    )


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
        if not obj["key"].endswith("/report.json"):
            continue
        earlier.append(storage.get_json(obj["uri"]).get("evaluation_key_parts") or {})
    if not earlier:
        return None
    nearest = min(earlier, key=lambda theirs: sum(theirs.get(k) != v for k, v in parts.items()))
    if not nearest:
        return "the earlier evaluation predates evaluation keys (evaluate code version, scikit-learn, numpy)"
    changed = [f"{_PART_NAMES.get(k, k)} {nearest.get(k)} -> {v}" for k, v in parts.items() if nearest.get(k) != v]
    return "an earlier evaluation differs in: " + ", ".join(changed)


def _split_problem(dataset_uri: str, protocol: Protocol) -> tuple[list[str], Any]:
    recorded = storage.read_manifest(dataset_uri).get("protocol_split")
    return compare.split_difference(recorded, compare.protocol_split(protocol)), recorded


def _retrain_command(champ: dict[str, Any], dataset_uri: str) -> str:
    """The train command that re-trains a registered version's config (from its lineage) on a dataset."""
    params = champ.get("params", {})
    sets = [f"model.{k}={json.dumps(v, separators=(',', ':'))}" for k, v in sorted(params.get("model", {}).items())]
    sets += [f"training.{k}={json.dumps(params[k])}" for k in _RETRAIN_KEYS if params.get(k) is not None]
    options = " ".join(f"--set {shlex.quote(s)}" for s in sets)
    return f"python -m gauntlet --protocol PROTOCOL_FILE {options} train --dataset {shlex.quote(dataset_uri)}"


# Training params a re-train copies from the champion; epochs, patience and seed are the protocol's.
_RETRAIN_KEYS = ("batch_size", "lr", "momentum", "weight_decay", "workers", "threads_per_worker", "schedule")


def _retrained_champion(
    store: str, protocol: Protocol, champ: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any] | None:
    """The champion's config re-trained under this protocol on the candidate's dataset, if it was."""
    wanted = {k: v for k, v in champ.get("params", {}).items() if k in ("model", *_RETRAIN_KEYS)}
    matches = [
        r
        for r in experiments.list_records(store, protocol.id)
        if r["dataset_version"] == record["dataset_version"]
        and off_protocol_reason(r["params"], protocol) is None
        and all(r["params"].get(k) == v for k, v in wanted.items())
    ]
    return matches[-1] if matches else None


def _champion_reference(
    store: str, protocol: Protocol, champ: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any] | None:
    """None when the champion itself may be scored on the candidate's test rows; else its re-trained stand-in.

    A champion trained under another split has seen some of these test rows: it is never scored on
    them. Its config re-trained under this split stands in for it; without one, BadInput says how.
    """
    differs, recorded = _split_problem(champ["dataset_uri"], protocol)
    if not differs:
        return None
    stand_in = _retrained_champion(store, protocol, champ, record)
    if stand_in is not None:
        log.info(
            "champion v%d was trained under another split (%s); comparing against its config re-trained "
            "under this protocol: experiment %s",
            champ["version"],
            compare.describe_split(recorded),
            stand_in["key"],
        )
        return stand_in
    raise BadInput(
        f"champion v{champ['version']} was trained on dataset {champ['dataset_version']} ({champ['dataset_uri']}), "
        f"split with {compare.describe_split(recorded)}; protocol {protocol.name} ({protocol.id}) splits with "
        f"{compare.describe_split(compare.protocol_split(protocol))} (differs in {', '.join(differs)}), so rows the "
        "champion trained on are test rows here and its score would be inflated: it is not compared. Re-train "
        f"the champion's config (lineage of v{champ['version']}: `registry show {champ['version']}`) under this "
        "protocol on the candidate's dataset, then evaluate again (the re-trained model stands in for it):\n  "
        + _retrain_command(champ, record["dataset_uri"])
        + f"\n(PROTOCOL_FILE: the file of protocol {protocol.id})"
    )


def _require_own_split(what: str, dataset_uri: str, protocol: Protocol) -> None:
    differs, recorded = _split_problem(dataset_uri, protocol)
    if differs:
        raise BadInput(
            f"{what} was trained on dataset {dataset_uri}, built with "
            f"{compare.describe_split(recorded)}; protocol {protocol.name} ({protocol.id}) splits with "
            f"{compare.describe_split(compare.protocol_split(protocol))}: its test rows are not this protocol's. "
            "Run preprocess and train under this protocol, then evaluate that experiment"
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
    if champ and champ["experiment_key"] == record["key"]:
        log.info(
            "candidate %s is already champion v%d; its evaluation is %s",
            record["key"],
            champ["version"],
            champ["evaluation_uri"],
        )
        return {**storage.get_json(champ["evaluation_uri"])["outputs"], "cache_hit": True}
    _require_own_split(f"experiment {record['key']}", record["dataset_uri"], protocol)
    stand_in = _champion_reference(store, protocol, champ, record) if champ else None
    anchor_version = anchor.current(reg, protocol)
    if anchor_version is not None:
        _require_own_split(f"anchor v{anchor_version['version']}", anchor_version["dataset_uri"], protocol)

    # Version numbers are per registry, so the model name is part of what this was compared against;
    # the anchor and a re-trained stand-in change the verdict, so they are part of it too.
    against = f"{model_name}-champion-v{champ['version']}" if champ else "baseline-only"
    if anchor_version is not None:
        against += f"-anchor-v{anchor_version['version']}"
    if stand_in is not None:
        against += f"-retrained-{stand_in['key'][:12]}"
    parts = evaluation_key_parts()
    against_prefix = storage.join(store, "evaluations", protocol.id, record["key"], against)
    out_prefix = storage.join(against_prefix, content_hash(parts))
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
    why = explain_evaluation_miss(against_prefix, parts)
    log.info("cache miss: evaluating experiment %s against %s%s", record["key"], against, f"; {why}" if why else "")
    return _evaluate(
        protocol, store, record, experiment_uri, reg, champ, stand_in, anchor_version, parts, out_prefix, started
    )


def _resolve_anchor(
    protocol: Protocol,
    reg: str,
    champ: dict[str, Any] | None,
    stand_in: dict[str, Any] | None,
    anchor_version: dict[str, Any] | None,
    metrics: dict[str, dict[str, float]],
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The anchor this candidate is judged against, after moving it to the champion where that is due.

    See gauntlet.anchor: the anchor moves only to a champion promoted under this protocol, when
    there is none yet or the champion beats it on these very test rows.
    """
    info: dict[str, Any] = {"alias": anchor.alias_name(protocol.id), "moved": False, "moved_from": None}
    if champ is None or stand_in is not None or not anchor.eligible(champ, protocol):
        return anchor_version, info
    champion_label = f"champion v{champ['version']}"
    primary = protocol.primary_metric
    if anchor_version is None:
        reason = f"v{champ['version']} is the first model promoted under protocol {protocol.id}"
    elif anchor_version["version"] == champ["version"]:
        return anchor_version, info
    elif anchor.beats(protocol, metrics[champion_label], metrics[held := f"anchor v{anchor_version['version']}"]):
        reason = (
            f"champion v{champ['version']} beats {held} on {primary} on the same test rows "
            f"({metrics[champion_label][primary]:.4f} vs {metrics[held][primary]:.4f})"
        )
    else:
        return anchor_version, info
    expected = None if anchor_version is None else anchor_version["version"]
    if anchor.move(reg, protocol, champ["version"], expected, reason):
        info.update(moved=True, moved_from=expected, reason=reason)
        return champ, info
    return anchor.current(reg, protocol), info


def _evaluate(
    protocol: Protocol,
    store: str,
    record: dict[str, Any],
    experiment_uri: str,
    reg: str,
    champ: dict[str, Any] | None,
    stand_in: dict[str, Any] | None,
    anchor_version: dict[str, Any] | None,
    key_parts: dict[str, str],
    out_prefix: str,
    started: float,
) -> dict[str, Any]:
    champion_label = f"champion v{champ['version']}" if champ else None
    if champ and stand_in is not None:
        champion_label = f"champion v{champ['version']} re-trained ({stand_in['key'][:12]})"
    anchor_label = f"anchor v{anchor_version['version']}" if anchor_version else None
    off_protocol = record.get("off_protocol_reason") or off_protocol_reason(record["params"], protocol)
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
        if champ and champion_label:
            model_bytes = (
                registry.load_model_bytes(champ)
                if stand_in is None
                else storage.get_bytes(stand_in["model_uri"], expected_sha256=stand_in["model_sha256"])
            )
            probas[champion_label] = predict_proba(load_bundle(model_bytes), test.features)
        if anchor_version and anchor_label and (champ is None or anchor_version["version"] != champ["version"]):
            probas[anchor_label] = predict_proba(load_bundle(registry.load_model_bytes(anchor_version)), test.features)
        metrics = {label: compute_metrics(test.labels, p, names) for label, p in probas.items()}

        anchor_version, anchor_info = _resolve_anchor(protocol, reg, champ, stand_in, anchor_version, metrics)
        if anchor_label and anchor_info["moved"]:
            # The anchor is now the champion: its comparison is the champion's; drop the old anchor's row.
            probas.pop(anchor_label, None)
            metrics.pop(anchor_label, None)
        anchor_is_champion = bool(anchor_version and champ and anchor_version["version"] == champ["version"])
        anchor_label = f"anchor v{anchor_version['version']}" if anchor_version else None
        if anchor_version and anchor_label and not anchor_is_champion and anchor_label not in probas:
            # Another run moved the anchor while this one scored: score the one now in place.
            probas[anchor_label] = predict_proba(load_bundle(registry.load_model_bytes(anchor_version)), test.features)
            metrics[anchor_label] = compute_metrics(test.labels, probas[anchor_label], names)

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

        def versus(other: str) -> dict[str, dict[str, float]]:
            return paired_bootstrap(
                test.labels,
                probas["candidate"],
                probas[other],
                names,
                protocol.bootstrap_resamples,
                protocol.bootstrap_seed,
                protocol.confidence,
            )

        vs_baseline = versus("baseline")
        vs_champion = versus(champion_label) if champion_label else None
        vs_anchor = versus(anchor_label) if anchor_label and not anchor_is_champion else None
        gate = decide(
            protocol,
            vs_champion,
            vs_baseline,
            champion_name=champion_label or "champion",
            vs_anchor=vs_anchor,
            anchor_name=anchor_label or "anchor",
            off_protocol=off_protocol,
        )
        comparisons = {"candidate - baseline": vs_baseline}
        if vs_champion is not None:
            comparisons[f"candidate - {champion_label}"] = vs_champion
        if vs_anchor is not None:
            comparisons[f"candidate - {anchor_label}"] = vs_anchor

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
        anchor_record = {
            **anchor_info,
            "version": anchor_version["version"] if anchor_version else None,
            "is_champion": anchor_is_champion,
            "experiment_key": anchor_version["experiment_key"] if anchor_version else None,
        }
        # The gate's details travel into a registered version's lineage: the anchor goes with them.
        gate.details["anchor_record"] = anchor_record
        report_uri = storage.join(out_prefix, "report.json")
        outputs = {
            "report_uri": report_uri,
            "report_html_uri": storage.join(out_prefix, "report.html"),
            "gate_passed": gate.passed,
            "gate_reason": gate.reason,
            "experiment_key": record["key"],
            "experiment_uri": experiment_uri,
            "off_protocol": off_protocol is not None,
            "cache_hit": False,
        }
        report = {
            "experiment_key": record["key"],
            "experiment_uri": experiment_uri,
            "protocol_id": protocol.id,
            "protocol_name": protocol.name,
            "dataset_version": record["dataset_version"],
            # The rows every model here was scored on: reports compare only on equal test sets.
            "test_set_id": compare.test_set_id(test.ids.tolist()),
            "test_rows": len(test.labels),
            "excluded_rows": len(protocol.excluded_row_ids),
            "evaluation_key": out_prefix.rsplit("/", 1)[-1],
            "evaluation_key_parts": key_parts,
            "off_protocol": off_protocol,
            "champion_version": champ["version"] if champ else None,
            # The champion is always re-scored here under this protocol, whatever it was registered under.
            "champion_registered_protocol_id": champ.get("protocol_id") if champ else None,
            "champion_retrained": (
                {"experiment_key": stand_in["key"], "experiment_uri": stand_in["uri"]} if stand_in else None
            ),
            "anchor": anchor_record,
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
            "\n\n".join([f"# Evaluation of {record['key']}", gate.reason, _references_text(report), *tables.values()])
            + "\n"
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


def _references_text(report: dict[str, Any]) -> str:
    """One line per reference the candidate was judged against: champion, baseline, anchor."""
    lines = ["The candidate was judged against:", "- baseline: the protocol's logistic regression"]
    if report["champion_version"] is None:
        lines.append("- champion: none yet")
    else:
        retrained = report["champion_retrained"]
        lines.append(
            f"- champion: v{report['champion_version']}"
            + (f", re-trained under this split as experiment {retrained['experiment_key']}" if retrained else "")
        )
    a = report["anchor"]
    if a["version"] is None:
        lines.append("- anchor: none yet (set when a model promoted under this protocol is champion)")
    else:
        lines.append(
            f"- anchor: v{a['version']}"
            + (" (the champion itself)" if a["is_champion"] else "")
            + (
                (f"; moved here from v{a['moved_from']}" if a["moved_from"] else "; set")
                + f" by this evaluation: {a['reason']}"
                if a["moved"]
                else ""
            )
        )
    if report["off_protocol"]:
        lines.append(f"- off-protocol: {report['off_protocol']}")
    return "\n".join(lines)
