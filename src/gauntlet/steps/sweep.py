"""sweep: plan a grid of configs x past snapshot dates, and compare what the grid produced.

`plan` turns the grid into one entry per (config, snapshot date) pair: the validate interval that
reads exactly the partitions dated up to the snapshot date, and the param-like options (config file,
overrides) that make the pair's experiment. Every config is loaded once here, so a typo fails the
sweep before anything trains. `report` reads each pair's experiment record and evaluation and
writes one comparison table (Markdown, JSON, HTML) and the stacked learning curves. Test metrics are
comparable only between rows scored under one protocol on one test set (snapshots differ in their
test rows): each row names its group, and the notes under the table say why groups differ.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from gauntlet import experiments, layout, plots, storage
from gauntlet.config import config_file, load_config
from gauntlet.errors import BadInput, ConfigError
from gauntlet.logs import get_logger
from gauntlet.scoring.compare import test_set_of, why_not_comparable
from gauntlet.scoring.report import sweep_html

log = get_logger("gauntlet.sweep")


def _overrides(entry: dict[str, Any]) -> dict[str, Any]:
    overrides = entry.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"grid entry {entry.get('name')!r}: overrides must map config keys to values")
    return overrides


def plan(grid: list[dict[str, Any]], dates: list[str], default_config: str) -> dict[str, Any]:
    if not grid or not dates:
        raise ConfigError("a sweep needs at least one grid entry and one snapshot date")
    names = [str(entry.get("name") or "") for entry in grid]
    if "" in names or len(set(names)) != len(names):
        raise ConfigError(f"every grid entry needs a unique name, got {names}")
    snapshots = sorted({dt.date.fromisoformat(d.strip()) for d in dates})
    pairs: list[dict[str, Any]] = []
    for entry, name in zip(grid, names, strict=True):
        config_path = str(entry.get("config") or default_config)
        overrides = _overrides(entry)
        load_config(config_file(config_path), [f"{k}={v}" for k, v in overrides.items()])  # fail early
        for day in snapshots:
            pairs.append(
                {
                    "label": f"{name} @ {day.isoformat()}",
                    "options": {"config": config_path, "overrides": overrides},
                    # The snapshot of date D is every partition dated up to D: the nightly run of D + 1.
                    "start": day.isoformat(),
                    "end": (day + dt.timedelta(days=1)).isoformat(),
                }
            )
    log.info("sweep of %d configs x %d snapshot dates = %d pairs", len(grid), len(snapshots), len(pairs))
    for pair in pairs:
        log.info("  %s: overrides %s", pair["label"], json.dumps(pair["options"]["overrides"]))
    return {"pairs": pairs, "count": len(pairs)}


def _row(pair: dict[str, Any], trained: dict[str, Any] | None, evaluated: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "label": pair["label"],
        "snapshot": pair["start"],
        "overrides": pair["options"].get("overrides") or {},
    }
    record = experiments.find_record(trained["experiment_uri"]) if trained else None
    if record is None:
        return {**row, "status": "missing"}
    row.update(
        status="ok",
        experiment_key=record["key"],
        dataset_version=record["dataset_version"],
        model=record["params"]["model"]["kind"],
        epochs=record["params"]["epochs"],
        lr=record["params"]["lr"],
        train_error=record["final"].get("train_error"),
        dev_error=record["final"]["dev_error"],
        wall_seconds=record["wall_seconds"],
        cache_hit=bool(trained and trained.get("cache_hit")),
        curve=[(r["step"], r["dev_error"]) for r in record["curve"]],
    )
    if evaluated and evaluated.get("report_uri"):
        report = storage.get_json(evaluated["report_uri"])
        row.update(
            test=report["metrics"]["candidate"],
            protocol_id=report["protocol_id"],
            test_set_id=report.get("test_set_id"),
            test_set=test_set_of(report),
            gate_passed=report["gate"]["passed"],
            report_uri=evaluated.get("report_html_uri"),
        )
        if report.get("diagnosis"):  # reports before the bias/variance diagnosis have none
            row.update(test_error=report["diagnosis"]["errors"]["test"], diagnosis=report["diagnosis"]["findings"])
    return row


def _markdown(rows: list[dict[str, Any]], metrics: list[str]) -> str:
    head = [
        "pair",
        "experiment",
        "model",
        "epochs",
        "lr",
        "train error",
        "dev error",
        "test error",
        "diagnosis",
        *(f"test {m}" for m in metrics),
        "gate",
        "compared within",
        "wall s",
        "trained",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | (no record) |" + " |" * (len(head) - 2))
            continue
        test = r.get("test") or {}
        cells = [
            r["label"],
            r["experiment_key"][:12],
            r["model"],
            str(r["epochs"]),
            f"{r['lr']:g}",
            _error(r.get("train_error")),
            _error(r["dev_error"]),
            _error(r.get("test_error")),
            ", ".join(r.get("diagnosis") or []),
            *(f"{test[m]:.4f}" if m in test else "" for m in metrics),
            "" if "gate_passed" not in r else ("pass" if r["gate_passed"] else "fail"),
            r.get("comparable_group", ""),
            f"{r['wall_seconds']:.1f}",
            "cache hit" if r["cache_hit"] else "yes",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _error(value: float | None) -> str:
    """An error cell (the run's curve metric: error rate, or RMSE for regression); blank when unknown."""
    return "" if value is None else f"{value:.4f}"


def _identity(row: dict[str, Any]) -> dict[str, Any]:
    """What compare.why_not_comparable needs of a row: protocol and test-set identity."""
    return {k: row.get(k) for k in ("experiment_key", "protocol_id", "test_set_id", "dataset_version")}


def mark_comparable_groups(rows: list[dict[str, Any]]) -> list[str]:
    """Label each scored row with its group (one protocol, one test set); return one note per group.

    Test metrics mean something side by side only within a group: the notes say, for every group
    after the first, why it is not comparable with the first.
    """
    firsts: list[dict[str, Any]] = []
    notes: list[str] = []
    for row in rows:
        if "protocol_id" not in row:
            continue
        for number, first in enumerate(firsts, start=1):
            if why_not_comparable(_identity(first), _identity(row)) is None:
                row["comparable_group"] = f"T{number}"
                break
        else:
            firsts.append(row)
            group = f"T{len(firsts)}"
            row["comparable_group"] = group
            why = why_not_comparable(_identity(firsts[0]), _identity(row)) if len(firsts) > 1 else None
            row["not_comparable_with_T1"] = why
            notes.append(
                f"{group}: protocol {row['protocol_id']}, {row['test_set']}"
                + (f" — not comparable with T1: {why}" if why else "")
            )
    return notes


def report(
    store: str,
    run_id: str,
    pairs: list[dict[str, Any]],
    trained: list[dict[str, Any] | None],
    evaluated: list[dict[str, Any] | None],
) -> dict[str, Any]:
    """One comparison of the sweep's pairs, in the plan's order; a pair without a record is listed as missing."""
    if len(trained) != len(pairs) or len(evaluated) != len(pairs):
        raise BadInput(f"{len(pairs)} pairs but {len(trained)} train and {len(evaluated)} evaluate outputs")
    rows = [_row(p, t, e) for p, t, e in zip(pairs, trained, evaluated, strict=True)]
    # Test metrics side by side mean something only under one protocol version, on one test set.
    notes = mark_comparable_groups(rows)
    metrics = sorted({m for r in rows for m in (r.get("test") or {})})
    table = _markdown(rows, metrics)
    if len(notes) > 1:
        log.warning("the sweep's test metrics fall in %d groups that are not comparable with each other", len(notes))
    notes_text = "\n".join(
        ["Test metrics are comparable only between rows of one group (same protocol and test set):", *notes]
    )
    uris = layout.sweep_report(store, run_id)
    title = f"Sweep {run_id}: {len(pairs)} pairs"
    with storage.temp_dir() as tmp:
        work = Path(tmp)
        plots.learning_curves(
            {r["label"]: r["curve"] for r in rows if r["status"] == "ok"},
            work / "learning_curves.png",
            f"Sweep of {len(pairs)} pairs",
        )
        storage.upload_file(work / "learning_curves.png", uris.plot, "image/png")
        plot_png = (work / "learning_curves.png").read_bytes()
    storage.put_bytes(
        uris.table,
        (f"# {title}\n\n{table}\n\n{notes_text}\n").encode(),
        content_type="text/markdown",
    )
    storage.put_bytes(
        uris.html,
        sweep_html(title, table, plot_png, notes_text).encode(),
        content_type="text/html",
    )
    storage.put_json(
        uris.json,
        {"run_id": run_id, "rows": [{k: v for k, v in r.items() if k != "curve"} for r in rows], "notes": notes},
    )
    ok = [r for r in rows if r["status"] == "ok"]
    outputs = {
        "table_uri": uris.table,
        "json_uri": uris.json,
        "html_uri": uris.html,
        "plot_uri": uris.plot,
        "pairs": len(pairs),
        "experiments": len({r["experiment_key"] for r in ok}),
        "trained": sum(1 for r in ok if not r["cache_hit"]),
        "cache_hits": sum(1 for r in ok if r["cache_hit"]),
        "missing": len(rows) - len(ok),
    }
    print(f"\n{title}\n{table}\n\n{notes_text}\n", flush=True)
    log.info(
        "sweep: %d experiments, %d trained now, %d cache hits; table %s",
        outputs["experiments"],
        outputs["trained"],
        outputs["cache_hits"],
        outputs["table_uri"],
    )
    return outputs
