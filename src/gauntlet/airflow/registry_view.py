"""The model registry and the experiments as a page of the Airflow UI.

plugins/gauntlet_registry_view.py serves `registry_app` on the API server under URL_PREFIX and lists
it as an external view: the UI shows the page in an iframe on its own origin, so the browser sends
Airflow's session cookie (`_token`) with every request. Each request needs an Airflow login (the
API's `get_user`: a bearer token or that cookie; 401 without) and the auth manager's leave to read
the pipeline DAG the registry belongs to (403 without), asked by the same function the output links
use. The page only reads: registry versions, aliases and events, experiment records and their
committed evaluation reports; its links to objects go through the links' `/gauntlet/open`.
"""

from __future__ import annotations

import base64
import html
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

from gauntlet import experiments, layout, registry, storage
from gauntlet.airflow.links import DatasetLink, browser_url, owning_dag
from gauntlet.errors import StorageError
from gauntlet.scoring.compare import test_set_of

URL_PREFIX = "/gauntlet-registry"
VIEW_ROUTE = "gauntlet-registry"
VIEW_NAME = "Registry"
# Relative to the UI's <base href>, so the view also works behind a proxy that adds a path.
EXTERNAL_VIEW: dict[str, Any] = {
    "name": VIEW_NAME,
    "href": f"{VIEW_ROUTE}/",
    "url_route": VIEW_ROUTE,
    "destination": "nav",
    "nav_top_level": True,
}
RECENT_EVENTS = 12
# pyplot keeps global state; the API server renders pages on several threads at once.
_PLOT_LOCK = threading.Lock()

MayRead = Callable[[Any, str], bool]


# --- reading the store ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelView:
    name: str
    versions: list[dict[str, Any]]
    champion: int | None
    history: list[dict[str, Any]]
    events: list[dict[str, Any]]


def model_names(store: str) -> list[str]:
    """Every model with a registry under the store (none when the store's bucket is empty or absent)."""
    root = layout.registries_root(store) + "/"
    try:
        return sorted({obj["uri"][len(root) :].split("/", 1)[0] for obj in storage.list_objects(root)})
    except StorageError:
        return []


def recent_events(registry_uri: str, count: int = RECENT_EVENTS) -> list[dict[str, Any]]:
    """The newest `count` registry events, newest first (event names start with their time)."""
    uris = [obj["uri"] for obj in storage.list_objects(layout.events_prefix(registry_uri) + "/")][-count:]
    return [storage.get_json(uri) for uri in reversed(uris)]


def model_view(store: str, name: str) -> ModelView:
    reg = layout.registry_root(store, name)
    alias, _ = registry.get_alias(reg)
    return ModelView(
        name=name,
        versions=registry.list_versions(reg),
        champion=None if alias is None else int(alias["version"]),
        history=registry.alias_history(reg, registry.CHAMPION, alias),
        events=recent_events(reg),
    )


def protocol_of(record: dict[str, Any]) -> str:
    return str(record.get("protocol_id") or (record.get("key_parts") or {}).get("protocol") or "")


def newest_report(store: str, protocol_id: str, key: str) -> dict[str, Any] | None:
    """The newest committed evaluation report of one experiment under one protocol, or None.

    A report counts once its evaluation's MANIFEST.json exists: a crashed evaluation's files do not.
    """
    objects = [o["uri"] for o in storage.list_objects(layout.experiment_evaluations(store, protocol_id, key) + "/")]
    committed = {uri.rsplit("/", 1)[0] for uri in objects if uri.endswith("/" + storage.MANIFEST_NAME)}
    reports = [
        storage.get_json(uri) | {"report_uri": uri}
        for uri in objects
        if uri.endswith("/" + layout.REPORT_NAME) and uri.rsplit("/", 1)[0] in committed
    ]
    return max(reports, key=lambda r: str(r.get("created", "")), default=None)


def comparison_rows(
    store: str, protocol_id: str, records: Sequence[dict[str, Any]], versions: dict[str, str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per experiment under the protocol, newest first, with its newest report's test metrics.

    Rows are grouped as the sweep's comparison groups them (one protocol version, one test set):
    the returned notes say what each group is and why it is not comparable with the first.
    """
    from gauntlet.steps.sweep import mark_comparable_groups

    mine = [r for r in records if protocol_of(r) == protocol_id][::-1]
    with ThreadPoolExecutor(max_workers=8) as pool:
        reports = list(pool.map(lambda r: newest_report(store, protocol_id, r["key"]), mine))
    rows = [_row(record, report, versions.get(record["key"], "")) for record, report in zip(mine, reports, strict=True)]
    return rows, mark_comparable_groups(rows)


def _row(record: dict[str, Any], report: dict[str, Any] | None, registered: str) -> dict[str, Any]:
    params = record.get("params") or {}
    row: dict[str, Any] = {
        "experiment_key": record["key"],
        "experiment_uri": record.get("uri"),
        "dataset_version": record.get("dataset_version"),
        "model": (params.get("model") or {}).get("kind", ""),
        "lr": params.get("lr"),
        "epochs": params.get("epochs"),
        "final": record.get("final") or {},
        "wall_seconds": record.get("wall_seconds"),
        "cost_usd": record.get("cost_usd"),
        "registered": registered,
    }
    if report is not None:
        row.update(
            test=report.get("metrics", {}).get("candidate", {}),
            protocol_id=report.get("protocol_id"),
            test_set_id=report.get("test_set_id"),
            test_set=test_set_of(report),
            gate=report.get("gate") or {},
            report_uri=report["report_uri"],
        )
    return row


def dev_curve(record: dict[str, Any]) -> list[tuple[float, float]]:
    """(step, dev error) per epoch; a regression run records its dev RMSE instead."""
    return [
        (float(p["step"]), float(p["dev_error"] if "dev_error" in p else p["dev_rmse"]))
        for p in record.get("curve") or []
        if "step" in p and ("dev_error" in p or "dev_rmse" in p)
    ]


def curve_label(record: dict[str, Any]) -> str:
    params = record.get("params") or {}
    kind = (params.get("model") or {}).get("kind", "")
    return f"{record['key'][:8]} {kind} lr={params.get('lr')} ep={params.get('epochs')}"


def curves_png(records: Sequence[dict[str, Any]], title: str) -> bytes:
    """Every experiment's dev curve on one log-log plot, as the evaluation report draws it."""
    from gauntlet import plots

    regression = any(r.get("curve_metric") == "rmse" for r in records)
    with storage.temp_dir() as tmp, _PLOT_LOCK:
        path = plots.learning_curves(
            {curve_label(r): dev_curve(r) for r in records},
            f"{tmp}/curves.png",
            title,
            ylabel="dev RMSE" if regression else "dev error",
        )
        return path.read_bytes()


# --- rendering -----------------------------------------------------------------------------------

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:16px 24px;color:#1a202c;font-size:14px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #e2e8f0}h3{font-size:15px}"
    "table{border-collapse:collapse;margin:6px 0 14px}td,th{border:1px solid #e2e8f0;padding:3px 8px;"
    "text-align:left;vertical-align:top}th{background:#f7fafc}.pass{color:#276749;font-weight:600}"
    ".fail{color:#9b2c2c;font-weight:600}.champion{background:#fefcbf}.muted{color:#718096}"
    "code{font-size:12px}a{color:#2b6cb0}img{max-width:640px;border:1px solid #e2e8f0}"
)


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def link(uri: str | None, text: str, dag_id: str) -> str:
    """A link to a store object through the authenticated `/gauntlet/open` redirect."""
    if not uri:
        return ""
    return f"<a href='{esc(browser_url(uri, dag_id))}'>{esc(text)}</a>"


def table(head: Sequence[str], rows: Iterable[Sequence[str]], classes: Iterable[str] = ()) -> str:
    """An HTML table; cells are HTML already (escape text with `esc`); `classes` mark rows in order."""
    marks = list(classes)
    lines = []
    for i, row in enumerate(rows):
        mark = marks[i] if i < len(marks) else ""
        lines.append(f"<tr{f' class={mark!r}' if mark else ''}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>" + "".join(lines) + "</table>"


def verdict(gate: dict[str, Any] | None) -> str:
    if not gate:
        return "<span class='muted'>no verdict</span>"
    word = "pass" if gate.get("passed") else "fail"
    return f"<span class='{word}'>{word}</span> {esc(gate.get('reason'))}"


def metrics_text(metrics: dict[str, Any] | None) -> str:
    return ", ".join(f"{esc(k)} {float(v):.4f}" for k, v in sorted((metrics or {}).items()) if _number(v))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def report_page_uri(evaluation_uri: str | None) -> str | None:
    """report.html beside a version's report.json."""
    return layout.report_html_uri(evaluation_uri.rsplit("/", 1)[0]) if evaluation_uri else None


def manifest_uri(prefix: str | None) -> str | None:
    """The MANIFEST.json that commits a dataset version, as the dataset link names it."""
    return DatasetLink().target(SimpleNamespace(outputs={"dataset_uri": prefix})) if prefix else None


def version_rows(view: ModelView, dag_id: str) -> list[list[str]]:
    rows = []
    for v in reversed(view.versions):
        key = str(v.get("experiment_key") or "")
        rows.append(
            [
                f"<b>v{esc(v['version'])}</b>" + (" (champion)" if v["version"] == view.champion else ""),
                esc(str(v.get("registered_at") or "")[:19]),
                link(layout.record_uri(v["experiment_uri"]) if v.get("experiment_uri") else None, key[:12], dag_id),
                link(manifest_uri(v.get("dataset_uri")), str(v.get("dataset_version") or ""), dag_id),
                f"<code>{esc(str(v.get('protocol_id') or '')[:12])}</code>",
                metrics_text(v.get("metrics")),
                verdict(v.get("gate")),
                link(report_page_uri(v.get("evaluation_uri")), "report", dag_id),
                esc(v.get("airflow_run_id")),
            ]
        )
    return rows


def model_html(view: ModelView, dag_id: str) -> str:
    champion = f"v{view.champion}" if view.champion is not None else "none yet"
    versions = table(
        ["version", "registered", "experiment", "dataset", "protocol", "test metrics", "gate", "evaluation", "run"],
        version_rows(view, dag_id),
        ["champion" if v["version"] == view.champion else "" for v in reversed(view.versions)],
    )
    history = table(
        ["set at", "version", "event", "reason", "run"],
        (
            [
                esc(str(h.get("set_at") or "")[:19]),
                f"v{esc(h.get('version'))}",
                esc(h.get("event")),
                esc(h.get("reason")),
                esc(h.get("run_id")),
            ]
            for h in reversed(view.history)
        ),
    )
    events = table(
        ["at", "event", "version", "details"],
        (
            [esc(str(e.get("at") or "")[:19]), esc(e.get("event")), esc(e.get("version")), esc(_details(e))]
            for e in view.events
        ),
    )
    return (
        f"<h2>Model {esc(view.name)}</h2><p>Champion: <b>{esc(champion)}</b> · {len(view.versions)} versions</p>"
        f"<h3>Versions (newest first) and their lineage</h3>{versions}"
        f"<h3>Champion alias history (newest first)</h3>{history}"
        f"<h3>Recent registry events</h3>{events}"
    )


def _details(event: dict[str, Any]) -> str:
    skip = {"event", "at", "version", "alias"}
    return ", ".join(f"{k}={v}" for k, v in event.items() if k not in skip and v not in (None, ""))


def protocol_choices(records: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """(protocol id, experiments) for every protocol with a record, the newest record's first."""
    counts: dict[str, int] = {}
    for record in reversed(records):
        counts[protocol_of(record)] = counts.get(protocol_of(record), 0) + 1
    return [(p, n) for p, n in counts.items() if p]


def comparison_html(rows: Sequence[dict[str, Any]], notes: Sequence[str], dag_id: str) -> str:
    metric_names = sorted({m for r in rows for m, v in (r.get("test") or {}).items() if _number(v)})
    head = [
        "experiment",
        "model",
        "lr",
        "epochs",
        "train error",
        "dev error",
        *(f"test {m}" for m in metric_names),
        "group",
        "gate",
        "registry",
        "wall s",
        "cost $",
    ]
    cells = []
    for r in rows:
        test, final = r.get("test") or {}, r["final"]
        cells.append(
            [
                link(
                    layout.record_uri(r["experiment_uri"]) if r.get("experiment_uri") else None,
                    r["experiment_key"][:12],
                    dag_id,
                ),
                esc(r["model"]),
                esc(r["lr"]),
                esc(r["epochs"]),
                _fixed(final.get("train_error")),
                _fixed(final.get("dev_error")),
                *(_fixed(test.get(m)) for m in metric_names),
                esc(r.get("comparable_group", "not evaluated")),
                verdict(r.get("gate")) + " " + link(report_page_uri(r.get("report_uri")), "report", dag_id),
                esc(r["registered"]),
                _fixed(r.get("wall_seconds"), 1),
                _fixed(r.get("cost_usd"), 6),
            ]
        )
    listed = "".join(f"<li>{esc(note)}</li>" for note in notes)
    explain = (
        f"<p>Test metrics compare only within one group (one protocol version, one test set):</p><ul>{listed}</ul>"
    )
    return table(head, cells) + (explain if notes else "")


def _fixed(value: Any, places: int = 4) -> str:
    return f"{float(value):.{places}f}" if _number(value) else ""


def experiments_html(
    store: str,
    protocol_id: str | None,
    records: Sequence[dict[str, Any]],
    versions: dict[str, str],
    dag_id: str,
    default_protocol: str = "",
) -> str:
    """The chosen protocol's experiments (else `default_protocol`'s, else the newest record's)."""
    choices = protocol_choices(records)
    if not choices:
        return "<h2>Experiments</h2><p class='muted'>No experiment has been recorded yet.</p>"
    chosen = protocol_id if protocol_id in dict(choices) else default_protocol
    chosen = chosen if chosen in dict(choices) else choices[0][0]
    menu = " · ".join(
        (
            f"<b>{esc(p[:12])}</b>"
            if p == chosen
            else f"<a href='?{esc(urlencode({'protocol': p, 'dag_id': dag_id}))}'>{esc(p[:12])}</a>"
        )
        + f" ({n})"
        for p, n in choices
    )
    mine = [r for r in records if protocol_of(r) == chosen]
    rows, notes = comparison_rows(store, chosen, records, versions)
    png = base64.b64encode(curves_png(mine, f"Learning curves, protocol {chosen[:8]}")).decode()
    return (
        f"<h2>Experiments under protocol <code>{esc(chosen)}</code></h2><p>Protocols: {menu}</p>"
        f"<img alt='learning curves' src='data:image/png;base64,{png}'>"
        f"<h3>Comparison (newest first)</h3>{comparison_html(rows, notes, dag_id)}"
    )


def registered_as(views: Sequence[ModelView]) -> dict[str, str]:
    """experiment key -> "model vN" (champion marked) for every registered experiment."""
    return {
        str(v.get("experiment_key")): f"{view.name} v{v['version']}"
        + (" (champion)" if v["version"] == view.champion else "")
        for view in views
        for v in view.versions
    }


def champions_protocol(views: Sequence[ModelView]) -> str:
    """The protocol the first model's champion was registered under: what a reader most likely compares."""
    for view in views:
        for version in view.versions:
            if version["version"] == view.champion:
                return str(version.get("protocol_id") or "")
    return ""


def render_page(store: str, protocol_id: str | None, dag_id: str, user_name: str = "") -> str:
    views = [model_view(store, name) for name in model_names(store)]
    try:
        records = experiments.list_records(store)
    except StorageError:
        records = []
    models = "".join(model_html(view, dag_id) for view in views) or (
        "<h2>Models</h2><p class='muted'>No model has been registered yet.</p>"
    )
    who = f" · signed in as {esc(user_name)}" if user_name else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(VIEW_NAME)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>gauntlet: models and experiments</h1>"
        f"<p class='muted'>Store <code>{esc(store)}</code>{who}</p>"
        f"{models}{experiments_html(store, protocol_id, records, registered_as(views), dag_id, champions_protocol(views))}"
        "</body></html>"
    )


# --- the app -------------------------------------------------------------------------------------


def registry_app(may_read: MayRead) -> Any:
    """The FastAPI app behind the view; `may_read(user, dag_id)` is the auth manager's verdict."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import HTMLResponse

    from gauntlet.airflow.connection import s3_environment

    app = FastAPI(title="gauntlet registry")
    logged_in = Depends(get_user)

    def reader(user: Any = logged_in, dag_id: str | None = Query(None)) -> Any:
        store = layout.store_root()
        try:
            dag = owning_dag(layout.registries_root(store), dag_id, store)
            if not may_read(user, dag):
                raise PermissionError(
                    f"user {user.get_name()!r} may not read DAG {dag!r}, which the registry belongs to"
                )
        except PermissionError as error:
            raise HTTPException(status_code=403, detail=str(error)) from error
        return user

    may_read_registry = Depends(reader)

    @app.get("/", response_class=HTMLResponse)
    def page(
        protocol: str | None = Query(None, description="the protocol whose experiments to compare"),
        dag_id: str | None = Query(None, description="the pipeline DAG whose readers may see the registry"),
        user: Any = may_read_registry,
    ) -> HTMLResponse:
        # The API server may lack the steps' AWS settings: they can live in the Airflow connection.
        os.environ.update(s3_environment())
        dag = owning_dag(layout.registries_root(layout.store_root()), dag_id)
        return HTMLResponse(render_page(layout.store_root(), protocol, dag, user.get_name()))

    return app
