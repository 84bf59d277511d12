"""Mirror experiments and registry versions to an MLflow tracking server, when one is configured.

With MLFLOW_TRACKING_URI set to an http(s) server (the Airflow operator fills it from the connection
`gauntlet_mlflow`), each experiment record becomes an MLflow run in an experiment named after the
protocol (params, per-epoch metrics, tags with the experiment key, dataset version and protocol id,
the record and curve as artifacts); each evaluation adds the candidate's test metrics, the gate and
the report files; each registry version becomes a version of the registered model of the same name,
and the `champion` alias follows gauntlet's.

gauntlet's own records stay the source of truth; the mirror only copies from them. A failure here is
a warning in the task log, never a failed step. Every call first looks for what it would write (a run
by its experiment-key tag, a version by its gauntlet-version tag, an evaluation by its tag), so a
repeat writes nothing twice and a later step back-fills whatever an earlier one missed.

Plain REST over urllib: MLflow's client library pins clash with Airflow's, so it is no dependency.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import inspect
import json
import math
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec

from gauntlet import experiments, layout, registry, storage
from gauntlet.errors import MirrorError
from gauntlet.logs import get_logger

log = get_logger("gauntlet.mlflow")

KEY_TAG = "gauntlet.experiment_key"
VERSION_TAG = "gauntlet.version"
EVALUATION_TAG = "gauntlet.evaluation."  # + evaluation key: set once that evaluation is mirrored
CHAMPION = registry.CHAMPION
# MLflow's limits per log-batch request, and on one param and one tag value.
_BATCH_METRICS, _BATCH_PARAMS, _BATCH_TAGS = 1000, 100, 100
_PARAM_CHARS, _TAG_CHARS = 6000, 5000
# Files of a report above this size are not copied (the evaluation folder's URI is a tag).
_MAX_ARTIFACT_BYTES = 50 * 1024 * 1024
P = ParamSpec("P")
# Curve columns that place a row (the epoch is the MLflow step; `step` counts samples seen), not metrics.
_CURVE_AXES = ("epoch", "step")


# --- public hooks: each one call from a step, none ever raises ----------------------------------


def tracking_uri() -> str | None:
    """The configured MLflow server, or None (the mirror is off)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def mirror_experiment(record: dict[str, Any], protocol_name: str) -> None:
    """The experiment record as an MLflow run (after train writes or finds the record)."""
    _best_effort(f"experiment {record.get('key')}", lambda client: ensure_run(client, record, protocol_name))


def mirror_evaluation(report_uri: str) -> None:
    """The evaluation's metrics, gate and report files on the experiment's run (after evaluate commits)."""
    _best_effort(f"evaluation {report_uri}", lambda client: _mirror_evaluation(client, report_uri))


def mirror_registration(store: str, model_name: str, report_uri: str) -> None:
    """The evaluation (and its run), then every registry version of the model and the champion alias
    (after register); versions and alias moves an earlier run could not mirror are back-filled."""

    def mirror(client: Client) -> None:
        _mirror_evaluation(client, report_uri)
        sync_registry(client, layout.registry_root(store, model_name), model_name)

    _best_effort(f"registry of model {model_name}", mirror)


def after_registry_step(step: Callable[P, dict[str, Any]]) -> Callable[P, dict[str, Any]]:
    """Decorates a step's `run(store, model_name, report_uri, ...)` that may change the registry (register,
    promote): whichever way it returns, the evaluation, the versions and the alias are mirrored after it."""
    signature = inspect.signature(step)

    @functools.wraps(step)
    def run(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        outputs = step(*args, **kwargs)
        bound = signature.bind(*args, **kwargs).arguments
        mirror_registration(bound["store"], bound["model_name"], bound["report_uri"])
        return outputs

    return run


def _best_effort(what: str, work: Callable[[Client], object]) -> None:
    uri = tracking_uri()
    if uri is None:
        return
    try:
        work(Client.from_environment(uri))
    except Exception as error:  # the mirror must never fail a step: say what was missed, go on
        log.warning(
            "MLflow mirror: %s not mirrored to %s (%s); gauntlet's records are unaffected and a later run back-fills it",
            what,
            _without_credentials(uri),
            error,
        )


# --- REST client ---------------------------------------------------------------------------------


class Client:
    """MLflow's REST API 2.0 over urllib: JSON in, JSON out, MirrorError on any failure."""

    def __init__(
        self, base_url: str, headers: dict[str, str], timeout_s: float, context: ssl.SSLContext | None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.timeout_s = timeout_s
        self.context = context

    @classmethod
    def from_environment(cls, uri: str) -> Client:
        """MLflow's own variables: MLFLOW_TRACKING_TOKEN (bearer) or _USERNAME/_PASSWORD (basic),
        MLFLOW_TRACKING_INSECURE_TLS; GAUNTLET_MLFLOW_TIMEOUT_S bounds each request (10 s)."""
        parsed = urllib.parse.urlsplit(uri)
        if parsed.scheme not in ("http", "https"):
            raise MirrorError(
                f"MLFLOW_TRACKING_URI must be an http(s) tracking server (the mirror speaks MLflow's REST API), "
                f"not {parsed.scheme or 'a path'}"
            )
        headers: dict[str, str] = {}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif user:
            pair = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        context = None
        if parsed.scheme == "https" and os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            context = ssl._create_unverified_context()
        return cls(uri, headers, float(os.environ.get("GAUNTLET_MLFLOW_TIMEOUT_S", "10")), context)

    def call(
        self, method: str, resource: str, action: str, body: dict[str, Any] | None = None, **query: Any
    ) -> dict[str, Any]:
        """One API call, /api/2.0/mlflow/<resource>/<action> (runs/create); GET arguments go in the query."""
        url = f"{self.base_url}/api/2.0/mlflow/{resource}/{action}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        return self._send(method, url, data, "application/json")

    def upload(self, artifact_uri: str, path: str, data: bytes) -> None:
        """PUT one file under a run's artifact root through the server's artifact proxy."""
        root = urllib.parse.urlsplit(artifact_uri).path.strip("/")
        url = f"{self.base_url}/api/2.0/mlflow-artifacts/artifacts/{urllib.parse.quote(f'{root}/{path}')}"
        self._send("PUT", url, data, "application/octet-stream")

    def _send(self, method: str, url: str, data: bytes | None, content_type: str) -> dict[str, Any]:
        request = urllib.request.Request(
            url, data=data, method=method, headers={**self.headers, "Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self.context) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            raise _http_error(method, url, error) from None
        except (OSError, ValueError) as error:  # refused, timed out, DNS, a bad URL
            raise MirrorError(f"{method} {_path(url)}: {error}") from None
        result: dict[str, Any] = json.loads(text) if text.strip() else {}
        return result


def _http_error(method: str, url: str, error: urllib.error.HTTPError) -> MirrorError:
    body = error.read().decode("utf-8", "replace")
    try:
        parsed = json.loads(body)
        code, message = parsed.get("error_code", ""), parsed.get("message", "")
    except ValueError:
        code, message = "", body[:300]
    return MirrorError(f"{method} {_path(url)} answered {error.code} {code}: {message[:300]}", code)


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def _without_credentials(uri: str) -> str:
    parsed = urllib.parse.urlsplit(uri)
    return parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl()


# --- experiments and runs ------------------------------------------------------------------------


def experiment_id(client: Client, name: str) -> str:
    """The MLflow experiment called `name`, created if missing (another writer may create it first)."""
    for attempt in range(2):
        try:
            found = client.call("GET", "experiments", "get-by-name", experiment_name=name)
            return str(found["experiment"]["experiment_id"])
        except MirrorError as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST" or attempt:
                raise
        try:
            return str(client.call("POST", "experiments", "create", {"name": name})["experiment_id"])
        except MirrorError as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    raise MirrorError(f"experiment {name!r} neither found nor created")


def find_runs(client: Client, experiment: str, key: str) -> list[dict[str, Any]]:
    """Active runs tagged with this experiment key, oldest id first."""
    found = client.call(
        "POST",
        "runs",
        "search",
        {"experiment_ids": [experiment], "filter": f"tags.`{KEY_TAG}` = '{key}'", "max_results": 100},
    )
    return sorted(found.get("runs", []), key=lambda run: run["info"]["run_id"])


def ensure_run(client: Client, record: dict[str, Any], protocol_name: str) -> dict[str, Any]:
    """The run mirroring `record`: found by its key tag, else created and filled. A run left RUNNING
    (its mirror was cut off) is filled again: every write is a repeat of the same values."""
    experiment = experiment_id(client, protocol_name)
    runs = find_runs(client, experiment, record["key"])
    run = runs[0] if runs else _create_run(client, experiment, record, protocol_name)
    if run["info"]["status"] != "FINISHED":
        _fill_run(client, run, record)
        run["info"]["status"] = "FINISHED"
    return run


def _create_run(client: Client, experiment: str, record: dict[str, Any], protocol_name: str) -> dict[str, Any]:
    body = {
        "experiment_id": experiment,
        "run_name": record["key"][:12],
        "start_time": _millis(record.get("started")),
        "tags": [{"key": KEY_TAG, "value": record["key"]}],
    }
    created: dict[str, Any] = client.call("POST", "runs", "create", body)["run"]
    # Two mirrors of one record at once (a backfill beside the nightly run) both create a run: each
    # then keeps the oldest id and deletes its own if it lost, so one run per key remains.
    runs = find_runs(client, experiment, record["key"])
    if runs and runs[0]["info"]["run_id"] != created["info"]["run_id"]:
        client.call("POST", "runs", "delete", {"run_id": created["info"]["run_id"]})
        return runs[0]
    return created


def _fill_run(client: Client, run: dict[str, Any], record: dict[str, Any]) -> None:
    run_id = run["info"]["run_id"]
    for batch in _batches(run_params(record), run_metrics(record), run_tags(record)):
        client.call("POST", "runs", "log-batch", {"run_id": run_id, **batch})
    if _proxies_artifacts(run):
        client.upload(run["info"]["artifact_uri"], f"gauntlet/{layout.RECORD_NAME}", _json_bytes(record))
        client.upload(run["info"]["artifact_uri"], "gauntlet/curve.json", _json_bytes(record.get("curve", [])))
    # FINISHED last: it is the mark that the run holds the whole record.
    client.call(
        "POST", "runs", "update", {"run_id": run_id, "status": "FINISHED", "end_time": _millis(record["finished"])}
    )


def run_params(record: dict[str, Any]) -> dict[str, str]:
    """The training params, nested ones as dotted keys (model.kind, model.hidden)."""
    return {key: _text(value)[:_PARAM_CHARS] for key, value in _flatten(record.get("params", {})).items()}


def run_metrics(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every numeric column of the learning curve at its epoch, and the run's cost figures at step 0.

    Timestamps come from the record, not the clock, so logging them again is a no-op in MLflow."""
    stamp = _millis(record["finished"])
    metrics = [
        _metric(name, value, stamp, int(row.get("epoch", index + 1)))
        for index, row in enumerate(record.get("curve", []))
        for name, value in row.items()
        if name not in _CURVE_AXES
    ]
    metrics += [_metric(name, record.get(name), stamp, 0) for name in ("wall_seconds", "cpu_seconds", "cost_usd")]
    return [m for m in metrics if m is not None]


def run_tags(record: dict[str, Any]) -> dict[str, str]:
    tags = {
        KEY_TAG: record["key"],
        "gauntlet.dataset_version": record.get("dataset_version"),
        "gauntlet.protocol_id": record.get("protocol_id"),
        "gauntlet.code_version": record.get("code_version"),
        "gauntlet.task": record.get("task", "classification"),
        "gauntlet.record_uri": layout.record_uri(record["uri"]),
        "gauntlet.dataset_uri": record.get("dataset_uri"),
        "gauntlet.model_uri": record.get("model_uri"),
        "gauntlet.off_protocol": record.get("off_protocol_reason") or "",
        "mlflow.note.content": (
            f"Mirrored from gauntlet. The record ({layout.record_uri(record['uri'])}) is the source of truth."
        ),
    }
    return {key: _text(value)[:_TAG_CHARS] for key, value in tags.items() if value not in (None, "")}


def _batches(params: dict[str, str], metrics: list[dict[str, Any]], tags: dict[str, str]) -> Iterator[dict[str, Any]]:
    param_list = [{"key": k, "value": v} for k, v in params.items()]
    tag_list = [{"key": k, "value": v} for k, v in tags.items()]
    for start in range(0, max(len(param_list), len(tag_list)), max(_BATCH_PARAMS, _BATCH_TAGS)):
        yield {
            "params": param_list[start : start + _BATCH_PARAMS],
            "tags": tag_list[start : start + _BATCH_TAGS],
            "metrics": [],
        }
    for start in range(0, len(metrics), _BATCH_METRICS):
        yield {"params": [], "tags": [], "metrics": metrics[start : start + _BATCH_METRICS]}


# --- evaluations ---------------------------------------------------------------------------------


def _mirror_evaluation(client: Client, report_uri: str) -> None:
    report = storage.get_json(report_uri)
    record = experiments.find_record(report["experiment_uri"])
    if record is None:
        raise MirrorError(f"{report['experiment_uri']} has no record")
    run = ensure_run(client, record, report["protocol_name"])
    evaluation_key = str(report["evaluation_key"])
    if _run_tag(client, run["info"]["run_id"], EVALUATION_TAG + evaluation_key) is not None:
        return
    prefix = report_uri.rsplit("/", 1)[0]  # the committed evaluation folder report.json sits in
    too_big = _upload_evaluation(client, run, prefix, report) if _proxies_artifacts(run) else []
    stamp = _millis(report.get("created"))
    metrics = [_metric(f"test_{name}", value, stamp, 0) for name, value in report["metrics"]["candidate"].items()]
    gate = report["gate"]
    tags = {
        "gauntlet.gate": "passed" if gate["passed"] else "failed",
        "gauntlet.gate_reason": str(gate["reason"])[:_TAG_CHARS],
        "gauntlet.report_uri": report_uri,
        "gauntlet.report_html_uri": layout.report_html_uri(prefix),
        "gauntlet.evaluation_uri": prefix,
        **({"gauntlet.not_uploaded": ", ".join(too_big)[:_TAG_CHARS]} if too_big else {}),
    }
    for batch in _batches({}, [m for m in metrics if m is not None], tags):
        client.call("POST", "runs", "log-batch", {"run_id": run["info"]["run_id"], **batch})
    # Last: the mark that this evaluation is on the run.
    client.call(
        "POST",
        "runs",
        "set-tag",
        {"run_id": run["info"]["run_id"], "key": EVALUATION_TAG + evaluation_key, "value": report_uri},
    )


def _upload_evaluation(client: Client, run: dict[str, Any], prefix: str, report: dict[str, Any]) -> list[str]:
    """Upload the committed report folder under evaluation/<against>/<evaluation key>/; the files too
    big to copy are returned (they stay behind the gauntlet.evaluation_uri tag)."""
    against = prefix.rsplit("/", 2)[-2]
    folder = f"evaluation/{against}/{str(report['evaluation_key'])[:12]}"
    too_big = []
    for rel, info in sorted(storage.read_manifest(prefix)["files"].items()):
        if info["size"] > _MAX_ARTIFACT_BYTES:
            too_big.append(rel)
            continue
        client.upload(run["info"]["artifact_uri"], f"{folder}/{rel}", storage.read_committed_file(prefix, rel))
    return too_big


def _run_tag(client: Client, run_id: str, key: str) -> str | None:
    run = client.call("GET", "runs", "get", run_id=run_id)["run"]
    return next((tag["value"] for tag in run["data"].get("tags", []) if tag["key"] == key), None)


def _proxies_artifacts(run: dict[str, Any]) -> bool:
    """Uploads go through the server's artifact proxy; a server without one gets the S3 links (tags) only."""
    return str(run["info"].get("artifact_uri", "")).startswith("mlflow-artifacts:")


# --- registry ------------------------------------------------------------------------------------


def sync_registry(client: Client, reg: str, model_name: str) -> None:
    """Every gauntlet version as an MLflow model version (in version order), then the champion alias."""
    _ensure_registered_model(client, model_name, reg)
    mirrored = mirrored_versions(client, model_name)
    for version in registry.list_versions(reg):
        if version["version"] not in mirrored:
            mirrored[version["version"]] = _create_version(client, model_name, version)
    champion, _ = registry.get_alias(reg)
    ours = None if champion is None else int(champion["version"])
    want = None if ours is None else mirrored.get(ours)
    have = _alias(client, model_name)
    if want is not None and want != have:
        client.call("POST", "registered-models", "alias", {"name": model_name, "alias": CHAMPION, "version": want})
        log.info("MLflow mirror: %s@%s is version %s (gauntlet v%s)", model_name, CHAMPION, want, ours)
    elif ours is None and have is not None:
        client.call("DELETE", "registered-models", "alias", {"name": model_name, "alias": CHAMPION})


def _ensure_registered_model(client: Client, model_name: str, reg: str) -> None:
    body = {"name": model_name, "description": f"Mirrored from gauntlet's registry {reg} (the source of truth)."}
    try:
        client.call("POST", "registered-models", "create", body)
    except MirrorError as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def mirrored_versions(client: Client, model_name: str) -> dict[int, str]:
    """gauntlet version -> MLflow version, from the versions' tags (the lowest MLflow version wins a tie)."""
    out: dict[int, str] = {}
    token = None
    while True:
        query: dict[str, Any] = {
            "filter": f"name='{_quoted(model_name)}'",
            "max_results": 1000,
            **({"page_token": token} if token else {}),
        }
        page = client.call("GET", "model-versions", "search", **query)
        for version in page.get("model_versions", []):
            tags = {tag["key"]: tag["value"] for tag in version.get("tags", [])}
            if VERSION_TAG in tags:
                ours = int(tags[VERSION_TAG])
                if ours not in out or int(version["version"]) < int(out[ours]):
                    out[ours] = str(version["version"])
        token = page.get("next_page_token")
        if not token:
            return out


def _create_version(client: Client, model_name: str, version: dict[str, Any]) -> str:
    record = version["experiment"]
    run = ensure_run(client, record, _protocol_name(version))
    tags = {
        VERSION_TAG: str(version["version"]),
        KEY_TAG: record["key"],
        "gauntlet.dataset_version": version.get("dataset_version"),
        "gauntlet.protocol_id": version.get("protocol_id"),
        "gauntlet.gate": "passed" if version.get("gate", {}).get("passed") else "failed (registered by force)",
        "gauntlet.evaluation_uri": version.get("evaluation_uri"),
    }
    body = {
        "name": model_name,
        "source": version["model_uri"],
        "run_id": run["info"]["run_id"],
        "description": str(version.get("gate", {}).get("reason", ""))[:_TAG_CHARS],
        "tags": [{"key": k, "value": _text(v)[:_TAG_CHARS]} for k, v in tags.items() if v is not None],
    }
    created = str(client.call("POST", "model-versions", "create", body)["model_version"]["version"])
    log.info("MLflow mirror: gauntlet %s v%d is MLflow version %s", model_name, version["version"], created)
    return created


def _protocol_name(version: dict[str, Any]) -> str:
    """The protocol's name, which names the MLflow experiment: from the version's evaluation report."""
    report = storage.get_json(version["evaluation_uri"])
    return str(report["protocol_name"])


def _alias(client: Client, model_name: str) -> str | None:
    model = client.call("GET", "registered-models", "get", name=model_name)["registered_model"]
    return next((str(a["version"]) for a in model.get("aliases", []) if a["alias"] == CHAMPION), None)


# --- values --------------------------------------------------------------------------------------


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _metric(name: str, value: Any, timestamp: int, step: int) -> dict[str, Any] | None:
    """A metric entry, or None for what is not a finite number (MLflow's JSON has no NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return {"key": name, "value": float(value), "timestamp": timestamp, "step": step}


def _millis(stamp: str | None) -> int:
    moment = dt.datetime.fromisoformat(stamp) if stamp else dt.datetime.now(dt.UTC)
    return int(moment.timestamp() * 1000)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, default=str).encode()


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")
