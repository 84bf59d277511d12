"""`python -m gauntlet <command>`: one entry point for every step, on a laptop, in Docker or a pod.

Each step command takes S3 locations and config, calls one plain function, and prints its outputs
as the last stdout line (`GAUNTLET_OUTPUTS {...}`) for the orchestrator. An error exits with the code
its class in `gauntlet.errors` stands for (`gauntlet.contract`: 2 bad input, never retried; 1 a
retryable failure; 99 nothing to do), with one clear message on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from gauntlet import hostinfo, layout, storage
from gauntlet.config import DEFAULT_CONFIG, PipelineConfig, config_file, load_config, protocol_file, store_prefix
from gauntlet.contract import (
    ERROR_PREFIX,
    EXIT_BAD_INPUT,
    EXIT_OK,
    SKIP_PREFIX,
    exit_code,
    outputs_json,
    write_outputs,
)
from gauntlet.errors import BadInput, NothingToDo, ObjectNotFound, Retryable
from gauntlet.logs import get_logger, setup_logging
from gauntlet.runids import safe_run_id

log = get_logger("gauntlet.cli")
STEP_COMMANDS = ("validate", "preprocess", "train", "evaluate", "register")


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text[:10])


def _load(args: argparse.Namespace) -> tuple[PipelineConfig, Any]:
    from gauntlet.protocol import load_protocol

    config = load_config(config_file(args.config), args.set)
    protocol = load_protocol(protocol_file(args.protocol or config.protocol))
    return config, protocol


def cmd_seed(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet import demo

    raw_prefix = args.raw_prefix
    if raw_prefix is None and args.dataset is None:
        raw_prefix = load_config(config_file(args.config), args.set).dataset.raw_prefix  # the digits demo's
    dataset = args.dataset or "digits"
    # Another table lands at raw/<name> by default: where `gauntlet init` points its config.
    prefix = store_prefix(raw_prefix or f"raw/{dataset}", "--raw-prefix")
    landed = demo.seed(args.store, prefix, _date(args.first_day), args.days, dataset=dataset)
    for item in landed:
        log.info("landed %s (%d rows)", item["uri"], item["rows"])
    return {"partitions": landed}


def cmd_init(args: argparse.Namespace) -> dict[str, Any]:
    """Profile a sample of the table, then write its config, expectation suite and protocol for review."""
    from gauntlet import profiling, scaffold

    scaffold.check_name(args.name)
    scaffold.refuse_existing(args.name, args.force)
    profile = profiling.read_sample(args.source, args.id, max_rows=args.max_rows)
    for line in profiling.summary_lines(profile, args.label if args.label in profile.names else None):
        print(line)
    plan = scaffold.plan(profile, args.name, args.id, args.label, args.task, args.store)
    texts = scaffold.render(profile, plan)
    print("decided:")
    for line in plan.decisions:
        print(f"  {line}")
    written = scaffold.write(args.name, texts, args.force)
    shown = {role: scaffold.shown_path(path) for role, path in written.items()}
    print("wrote (review them before the first run):")
    for path in shown.values():
        print(f"  {path}")
    print(f"then trigger the nightly DAG with config={shown['config']}")
    return {"files": shown, "task": plan.task, "rows": profile.rows, "features": list(plan.features)}


def cmd_validate(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet.steps import validate

    config = load_config(config_file(args.config), args.set)
    return validate.run(
        config, args.store, _date(args.start), _date(args.end), safe_run_id(args.run_id), require_new=args.require_new
    )


def cmd_preprocess(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet.steps import preprocess

    config, protocol = _load(args)
    return preprocess.run(config, protocol, args.store, args.validation)


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet.steps import train

    config, protocol = _load(args)
    return train.run(config, protocol, args.store, args.dataset, workers=args.workers)


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet.steps import evaluate

    config, protocol = _load(args)
    return evaluate.run(protocol, args.store, args.experiment, config.model.name)


def cmd_register(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet.steps import register

    config, protocol = _load(args)  # the protocol's gate.approval decides who moves the champion
    return register.run(args.store, config.model.name, args.report, args.run_id, force=args.force, protocol=protocol)


def cmd_promote(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet.steps import promote

    config = load_config(config_file(args.config), args.set)
    return promote.run(args.store, config.model.name, args.report, args.run_id, args.approved_by)


def cmd_registry(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet import registry

    config = load_config(config_file(args.config), args.set)
    reg = layout.registry_root(args.store, config.model.name)
    if args.action == "list":
        alias, _ = registry.get_alias(reg)
        champ = alias["version"] if alias else None
        versions = registry.list_versions(reg)
        print(f"{'version':>7}  {'champion':8}  {'primary':>8}  {'experiment':16}  {'dataset':16}  registered")
        for v in versions:
            primary = v["gate"]["details"]["primary"]["metric"] if v.get("gate") else "error_rate"
            print(
                f"{v['version']:>7}  {'*' if v['version'] == champ else '':8}  "
                f"{v['metrics'].get(primary, float('nan')):8.4f}  {v['experiment_key']:16}  "
                f"{v['dataset_version']:16}  {v['registered_at'][:19]}"
            )
        return {"versions": [v["version"] for v in versions], "champion": champ}
    if args.action == "promote" and args.version is None:
        raise BadInput(f"registry {args.action} needs a version number, e.g. `registry {args.action} 3`")
    if args.action == "show":  # a version (if given), then the champion's history
        if args.version is not None:
            version = registry.get_version(reg, args.version)
            print(json.dumps({k: v for k, v in version.items() if k != "experiment"}, indent=2))
        history = registry.alias_history(reg)
        print("\n".join(registry.history_lines(history)))
        return {"version": args.version, "champion_history": [h["version"] for h in history]}
    if args.action == "promote":
        registry.promote(reg, args.version, args.reason)
        return {"champion": args.version}
    if args.action == "rollback":
        return {"champion": registry.rollback(reg, args.reason)}
    raise BadInput(f"unknown registry action {args.action!r}")


def cmd_ledger(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet import ledger

    config = load_config(config_file(args.config), args.set)
    if args.action == "list":
        entries = storage.get_json(layout.ledger_uri(args.store, config.dataset.name))["entries"]
        for row_id, entry in sorted(entries.items()):
            label = entry.get("label_name", entry["label"])
            predicted = entry.get("predicted_name", entry["predicted"])
            print(f"{row_id}  label={label} predicted={predicted}  {entry['status']}")
        return {"entries": len(entries)}
    if not args.row_id or not args.output:
        raise BadInput("ledger confirm needs a row id and --output PATH for the new protocol file")
    result = ledger.confirm(
        args.store, config.dataset.name, args.row_id, protocol_file(args.protocol or config.protocol), args.output
    )
    print(
        f"new protocol {result['new_protocol']} written to {result['protocol_file']}; "
        f"{len(result['rescore'])} experiments must be re-scored under it: {', '.join(result['rescore'])}"
    )
    return result


def cmd_gc(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet import cleanup

    return cleanup.run(args.store, args.grace_hours, apply=args.apply)


def cmd_compare(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet.scoring import compare

    result = compare.compare_reports(storage.get_json(args.report_a), storage.get_json(args.report_b))
    print(compare.comparison_text(result))
    return result


def _json_list(text: str) -> list[Any]:
    """A JSON list argument; a single object (one mapped task) counts as a list of one."""
    value = json.loads(text)
    return value if isinstance(value, list) else [value]


def cmd_sweep_plan(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet.steps import sweep

    return sweep.plan(_json_list(args.grid), [d for d in args.dates.split(",") if d.strip()], args.config)


def cmd_sweep_report(args: argparse.Namespace) -> dict[str, Any]:
    from gauntlet.steps import sweep

    return sweep.report(
        args.store,
        safe_run_id(args.run_id),
        _json_list(args.pairs),
        _json_list(args.trained),
        _json_list(args.evaluated),
    )


def latest_run(store: str) -> str:
    """The run whose validate step started most recently."""
    runs = [
        (o["last_modified"], run)
        for o in storage.list_objects(layout.runs_root(store) + "/")
        if (run := layout.run_of_step_outputs(store, o["uri"], "validate"))
    ]
    if not runs:
        raise ObjectNotFound(f"no runs under {layout.runs_root(store)}")
    return max(runs, key=lambda found: found[0])[1]


def cmd_summary(args: argparse.Namespace) -> dict[str, Any]:
    run_id = latest_run(args.store) if args.run_id == "latest" else safe_run_id(args.run_id)
    steps = {}
    for step in STEP_COMMANDS:
        uri = layout.step_outputs_uri(args.store, run_id, step)
        steps[step] = storage.get_json(uri) if storage.exists(uri) else None
    print(render_summary({**steps, "run_id": run_id}))
    return {"steps": [s for s, v in steps.items() if v]}


def render_summary(steps: dict[str, Any]) -> str:
    lines = ["", f"=== gauntlet run summary: {steps.get('run_id', '')} ==="]
    v, p, t, e, r = (steps.get(s) for s in ("validate", "preprocess", "train", "evaluate", "register"))
    if v:
        lines.append(
            f"validate   : {v['verdict']} — {v['rows']} rows in {v['partitions']} partitions "
            f"({v['new_partitions']} new); Data Docs {v['docs_uri']}"
        )
        if v.get("drift"):
            lines.append(f"drift      : {v['drift']}")
    if p:
        lines.append(
            f"preprocess : dataset {p['version']} — "
            + ", ".join(f"{k} {n}" for k, n in p["rows"].items())
            + (" (cache hit)" if p["cache_hit"] else "")
        )
    if t:
        lines.append(
            f"train      : experiment {t['key']} — dev {t.get('curve_metric', 'error_rate')} {t['dev_error']:.4f}, "
            f"{t['wall_seconds']:.1f}s" + (" (cache hit)" if t["cache_hit"] else "")
        )
    if e:
        lines.append(f"evaluate   : {e['gate_reason']}\n             report {e['report_html_uri']}")
    timed = {
        name: step["step_seconds"]
        for name, step in zip(STEP_COMMANDS, (v, p, t, e, r), strict=True)
        if step and "step_seconds" in step
    }
    if timed:
        lines.append(
            "step times : "
            + ", ".join(f"{name} {sec:.1f}s" for name, sec in timed.items())
            + f" (total {sum(timed.values()):.1f}s)"
        )
    if r:
        if r.get("already_registered_as") is not None:
            lines.append(
                f"register   : already registered as v{r['already_registered_as']}"
                f"{' — champion' if r['champion'] else ''}; this run's gate: {r['reason']}"
            )
        elif r["registered"]:
            lines.append(
                f"register   : version {r['version']}{' — champion' if r['champion'] else ''}; {r['version_uri']}"
            )
        else:
            lines.append(f"register   : not registered — {r['reason']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gauntlet", description=__doc__)
    parser.add_argument(
        "--store",
        default=layout.store_root(),
        help=f"S3 root of all pipeline data (default: ${layout.STORE_ENV} or {layout.DEFAULT_STORE})",
    )
    parser.add_argument("--config", default=os.environ.get("GAUNTLET_CONFIG", DEFAULT_CONFIG))
    parser.add_argument("--protocol", default=None, help="protocol file (default: the config's)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set training.lr=0.1",
    )
    parser.add_argument("--run-id", default=None, help="orchestrator run id (step outputs are kept under it)")
    parser.add_argument("--outputs-file", default=None, help="also write the outputs JSON here")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], dict[str, Any]], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        return p

    p = add("seed", cmd_seed, "land a demo table's raw partitions in S3")
    p.add_argument("--dataset", default=None, help="digits (default) | wine | diabetes")
    p.add_argument("--raw-prefix", default=None, help="default: the config's for digits, else raw/<dataset>")
    p.add_argument("--first-day", default="2026-11-01")
    p.add_argument("--days", type=int, default=7)
    p = add("init", cmd_init, "profile your table and write its config, expectation suite and protocol")
    p.add_argument("name", help="dataset name: include/configs/NAME.yaml, raw/NAME, the registered model")
    p.add_argument("--from", dest="source", required=True, help="s3:// prefix of the partitions, a folder or a file")
    p.add_argument("--id", required=True, help="the row id column")
    p.add_argument("--label", required=True, help="the label column")
    p.add_argument("--task", choices=["classification", "regression"], default=None, help="default: from the label")
    p.add_argument("--max-rows", type=int, default=50_000, help="rows read from the partitions (a spread sample)")
    p.add_argument("--force", action="store_true", help="replace the three files if they exist")
    p = add("validate", cmd_validate, "run the expectation suite on the raw partitions")
    p.add_argument("--start", required=True, help="data interval start (YYYY-MM-DD)")
    p.add_argument("--end", required=True, help="data interval end, exclusive (YYYY-MM-DD)")
    p.add_argument(
        "--require-new", action="store_true", help="exit 99 (nothing to do) when no partition landed in [start, end)"
    )
    p = add("preprocess", cmd_preprocess, "build the split, content-addressed dataset")
    p.add_argument("--validation", required=True, help="URI of a passed validation result.json")
    p = add("train", cmd_train, "train one experiment under Horovod (or report the cache hit)")
    p.add_argument("--dataset", required=True, help="committed dataset prefix")
    p.add_argument("--workers", type=int, default=None, help="Horovod ranks (default: config)")
    p = add("evaluate", cmd_evaluate, "score candidate, baseline and champion under the protocol")
    p.add_argument("--experiment", required=True, help="experiment prefix")
    p = add("register", cmd_register, "register the candidate; move champion if the gate passed")
    p.add_argument("--report", required=True, help="URI of the evaluation report.json")
    p.add_argument("--force", action="store_true", help="register even if the gate failed (never promotes)")
    p = add("promote", cmd_promote, "make an approved candidate champion (protocols with gate.approval: required)")
    p.add_argument("--report", required=True, help="URI of the evaluation report.json the approval was asked for")
    p.add_argument("--approved-by", required=True, help="who approved it (recorded in the promotion event)")
    p = add("registry", cmd_registry, "list | show | promote | rollback")
    p.add_argument("action", choices=["list", "show", "promote", "rollback"])
    p.add_argument("version", type=int, nargs="?")
    p.add_argument("--reason", default="manual change")
    p = add("ledger", cmd_ledger, "list | confirm the label-error ledger")
    p.add_argument("action", choices=["list", "confirm"])
    p.add_argument("row_id", nargs="?")
    p.add_argument("--output", help="where confirm writes the new protocol file")
    add("summary", cmd_summary, "print what a run did")
    p = add("sweep-plan", cmd_sweep_plan, "expand a grid of configs x snapshot dates into pairs")
    p.add_argument("--grid", required=True, help='JSON list of {"name", "config"?, "overrides"?}')
    p.add_argument("--dates", required=True, help="comma-separated snapshot dates (YYYY-MM-DD)")
    p = add("sweep-report", cmd_sweep_report, "compare a sweep's experiments: table and learning curves")
    p.add_argument("--pairs", required=True, help="JSON list of the plan's pairs")
    p.add_argument("--trained", required=True, help="JSON list of the train outputs, in pair order")
    p.add_argument("--evaluated", required=True, help="JSON list of the evaluate outputs, in pair order")
    p = add("gc", cmd_gc, "list what no manifest or record commits, older than a grace period (--apply: delete)")
    p.add_argument("--apply", action="store_true", help="delete what it lists (default: list only)")
    p.add_argument("--grace-hours", type=float, default=24.0, help="keep anything younger (default: 24)")
    p = add("compare", cmd_compare, "compare two evaluation reports (only under one protocol version)")
    p.add_argument("report_a", help="URI of a report.json")
    p.add_argument("report_b", help="URI of a report.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    if args.command in ("validate", "register", "promote", "summary", "sweep-report") and not args.run_id:
        print(f"{ERROR_PREFIX} {args.command} needs --run-id", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.command in ("validate", "preprocess", "train", "evaluate", "register"):
        log.info("gauntlet %s on %s", args.command, hostinfo.describe())
    started = time.perf_counter()
    try:
        outputs = dict(args.func(args))
    except Exception as error:  # the exit code follows the error's base class in gauntlet.errors alone
        if not isinstance(error, (BadInput, NothingToDo, Retryable)):
            log.exception("unexpected error in %s", args.command)  # a bug or an unforeseen failure: keep the trace
        prefix = SKIP_PREFIX if isinstance(error, NothingToDo) else ERROR_PREFIX
        print(f"{prefix} {error}", file=sys.stderr)
        return exit_code(error)
    if args.command in STEP_COMMANDS:
        outputs["step_seconds"] = round(time.perf_counter() - started, 2)
    if args.run_id and args.command in STEP_COMMANDS:
        storage.put_json(layout.step_outputs_uri(args.store, safe_run_id(args.run_id), args.command), outputs)
    if args.outputs_file:
        with open(args.outputs_file, "w") as handle:
            handle.write(outputs_json(outputs))
    write_outputs(outputs, sys.stdout)
    return EXIT_OK
