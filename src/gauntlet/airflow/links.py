"""Operator extra links: from a task to what its step wrote (Data Docs, report, registry entry).

Airflow 3 computes a task's links in the task's own process when it ends and keeps them in XCom,
so a link must not carry credentials. By default a link points at the plugin's `/gauntlet/open`
endpoint on the Airflow API server, which checks the user's Airflow login and only then redirects
to a short-lived presigned S3 URL (plugins/gauntlet_links.py), after Airflow's auth manager says
the user may read the DAG the object belongs to. With GAUNTLET_LINK_BASE_URL set,
links are plain `<base>/<bucket>/<key>` URLs instead (a bucket website or an authenticating proxy).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode

from airflow.sdk import BaseOperatorLink

from gauntlet import layout, storage
from gauntlet.airflow.connection import s3_environment
from gauntlet.runids import safe_run_id

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

OPEN_PATH = "/gauntlet/open"
# The DAGs that write the pipeline's outputs; a link names the one whose task it belongs to.
PIPELINE_DAGS = ("gauntlet_nightly", "gauntlet_sweep")
DEFAULT_DAG = "gauntlet_nightly"


def browser_url(uri: str, dag_id: str | None = None) -> str:
    base = os.environ.get("GAUNTLET_LINK_BASE_URL", "").rstrip("/")
    if base:
        loc = storage.S3Uri.parse(uri)
        return f"{base}/{loc.bucket}/{loc.key}"
    # AIRFLOW__API__BASE_URL is the API server's public address; a relative link works in the UI.
    api = os.environ.get("AIRFLOW__API__BASE_URL", "").rstrip("/")
    query = {"uri": uri, **({"dag_id": dag_id} if dag_id else {})}
    return f"{api}{OPEN_PATH}?{urlencode(query)}"


def owning_dag(uri: str, dag_id: str | None = None, store: str | None = None) -> str:
    """The DAG whose read permission opens `uri`.

    A run's own outputs (runs/<dag_id>__<run>/..., sweeps/...) belong to the DAG named in their
    path, whatever the link says. Shared objects (datasets, experiments, evaluations, the registry)
    are written by every pipeline DAG: they open for a reader of the DAG the link names.
    """
    # A run's CLI id is `<dag_id>__<run_id>`: its folders are that one DAG's own.
    run_id = layout.run_id_under(layout.store_root(store), uri)
    if run_id and "__" in run_id:
        dag_id = run_id.split("__", 1)[0]
    dag_id = dag_id or DEFAULT_DAG
    if dag_id not in PIPELINE_DAGS:
        raise PermissionError(f"{uri} does not belong to a pipeline DAG ({', '.join(PIPELINE_DAGS)}), but {dag_id!r}")
    return dag_id


def presign_for_user(uri: str, store: str | None = None) -> str:
    """The redirect target for an authenticated click: only objects under the pipeline's store."""
    store = layout.store_root(store).rstrip("/") + "/"
    if not uri.startswith(store) or ".." in uri:
        raise PermissionError(f"{uri} is not under the pipeline's store {store}")
    # The API server may lack the steps' AWS settings: they can live in the Airflow connection.
    os.environ.update(s3_environment())
    return storage.presigned_url(uri, int(os.environ.get("GAUNTLET_LINK_EXPIRY_S", "300")))


class StepOutputLink(BaseOperatorLink):
    """A link to one S3 object named by the step's outputs (`output_key`)."""

    name: ClassVar[str] = "Step output"
    output_key: ClassVar[str] = ""
    suffix: ClassVar[str] = ""  # appended to a prefix URI (e.g. a record inside an experiment)

    def target(self, operator: Any) -> str | None:
        value = (getattr(operator, "outputs", None) or {}).get(self.output_key)
        return f"{value.rstrip('/')}/{self.suffix}" if value and self.suffix else value

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        uri = self.target(operator)
        return browser_url(uri, ti_key.dag_id) if uri else ""


class DataDocsLink(StepOutputLink):
    name = "Data Docs"
    output_key = "docs_uri"

    def target(self, operator: Any) -> str | None:
        # A failed validation returns no outputs, yet its Data Docs are the evidence: find them by run id.
        found = super().target(operator)
        if found or not getattr(operator, "cli_run_id", ""):
            return found
        return layout.data_docs_uri(layout.store_root(), safe_run_id(operator.cli_run_id))


class DatasetLink(StepOutputLink):
    name = "Dataset manifest"
    output_key = "dataset_uri"
    suffix = storage.MANIFEST_NAME


class ExperimentLink(StepOutputLink):
    name = "Experiment record"
    output_key = "experiment_uri"
    suffix = layout.RECORD_NAME


class ReportLink(StepOutputLink):
    name = "Evaluation report"
    output_key = "report_html_uri"


class RegistryEntryLink(StepOutputLink):
    name = "Registry entry"
    output_key = "version_uri"


class SweepReportLink(StepOutputLink):
    name = "Sweep comparison"
    output_key = "html_uri"


ALL_LINKS: tuple[type[StepOutputLink], ...] = (
    DataDocsLink,
    DatasetLink,
    ExperimentLink,
    ReportLink,
    RegistryEntryLink,
    SweepReportLink,
)
_BY_STEP: dict[str, tuple[type[StepOutputLink], ...]] = {
    "validate": (DataDocsLink,),
    "preprocess": (DatasetLink,),
    "train": (ExperimentLink,),
    "evaluate": (ReportLink,),
    "register": (RegistryEntryLink,),
    "sweep-report": (SweepReportLink,),
}


def links_for(step: str) -> list[BaseOperatorLink]:
    return [link() for link in _BY_STEP.get(step, ())]
