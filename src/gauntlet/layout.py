"""The store's layout: the one place that knows the store root and builds every S3 path.

Everything under one root (`$GAUNTLET_STORE`, default `s3://gauntlet`)::

    <raw_prefix>/date=YYYY-MM-DD/part-00000.{parquet,csv}   raw partitions, landed upstream
    runs/<run_id>/validation/result.json, docs/             one orchestrator run's validation
    runs/<run_id>/validation/drift.{json,png}               the new data's drift vs the earlier data
    runs/<run_id>/steps/<step>.json                         each step's outputs, for `summary`
    datasets/<dataset>/<version>/                           a committed dataset (MANIFEST.json last)
    dataset-parts/<dataset>/<partition key>/                one partition's split files and train statistics,
                                                            which datasets reference; index/<lineage>.json
    experiments/<key>/                                      RECORD.json (last), LEASE.json, model.pt,
                                                            worker.json, curve.jsonl, checkpoints/
    evaluations/<protocol>/<key>/<against>/<eval key>/      report.{json,md,html}, predictions.parquet, plots,
                                                            MANIFEST.json
    registry/<model>/                                       versions/, by-experiment/, aliases/, events/
    quarantine/<dataset>/<id>/                              rows a suite held back from one file
    ledgers/<dataset>/ledger.json                           suspected label errors
    sweeps/<run_id>/                                        comparison.{md,json,html}, learning_curves.png

Functions take the store root (or the prefix of one output, e.g. an experiment's URI, which steps
pass between them) and return URIs; nothing here speaks to S3. `storage.join` is the URI joiner.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from gauntlet.storage import MANIFEST_NAME, join

STORE_ENV = "GAUNTLET_STORE"
DEFAULT_STORE = "s3://gauntlet"

RECORD_NAME = "RECORD.json"
LEASE_NAME = "LEASE.json"
REPORT_NAME = "report.json"
PREDICTIONS_NAME = "predictions.parquet"

# Top-level folders whose next segment is an orchestrator run's id.
_RUN_FOLDERS = ("runs", "sweeps")


# --- the root ------------------------------------------------------------------------------------


def store_root(store: str | None = None) -> str:
    """`store` when given, else $GAUNTLET_STORE, else the default root."""
    return store or os.environ.get(STORE_ENV) or DEFAULT_STORE


def configured_store() -> str | None:
    """The root $GAUNTLET_STORE names, or None when it is unset (a step process then picks its own)."""
    return os.environ.get(STORE_ENV) or None


def run_id_under(store: str, uri: str) -> str | None:
    """The run id of an object under runs/<run_id>/ or sweeps/<run_id>/, or None for any other object."""
    root = store.rstrip("/") + "/"
    parts = uri[len(root) :].split("/") if uri.startswith(root) else []
    return parts[1] if len(parts) > 1 and parts[0] in _RUN_FOLDERS and parts[1] else None


# --- raw data ------------------------------------------------------------------------------------


def raw_root(store: str, raw_prefix: str) -> str:
    """Where a dataset's raw partitions land (the config's `dataset.raw_prefix`)."""
    return join(store, raw_prefix)


def raw_partition_uri(store: str, raw_prefix: str, day: dt.date, fmt: str = "parquet") -> str:
    return join(raw_root(store, raw_prefix), f"date={day.isoformat()}", f"part-00000.{fmt}")


# --- one orchestrator run ------------------------------------------------------------------------


def runs_root(store: str) -> str:
    return join(store, "runs")


def run_prefix(store: str, run_id: str) -> str:
    return join(runs_root(store), run_id)


def step_outputs_uri(store: str, run_id: str, step: str) -> str:
    """The outputs a step of a run returned, kept for `gauntlet summary`."""
    return join(run_prefix(store, run_id), "steps", f"{step}.json")


def run_of_step_outputs(store: str, uri: str, step: str) -> str | None:
    """The run id when `uri` is `step_outputs_uri(store, <run id>, step)`, else None."""
    run_id = run_id_under(store, uri)
    return run_id if run_id and uri == step_outputs_uri(store, run_id, step) else None


def validation_prefix(store: str, run_id: str) -> str:
    return join(run_prefix(store, run_id), "validation")


def validation_result_uri(store: str, run_id: str) -> str:
    return join(validation_prefix(store, run_id), "result.json")


def data_docs_prefix(store: str, run_id: str) -> str:
    return join(validation_prefix(store, run_id), "docs")


def data_docs_uri(store: str, run_id: str, relative: str = "index.html") -> str:
    """One file of a run's Data Docs (`relative` to the docs folder); the index by default."""
    return join(data_docs_prefix(store, run_id), relative)


def drift_table_uri(store: str, run_id: str) -> str:
    """The new partitions' drift against the earlier ones, per column (beside the result)."""
    return join(validation_prefix(store, run_id), "drift.json")


def drift_plot_uri(store: str, run_id: str) -> str:
    return join(validation_prefix(store, run_id), "drift.png")


# --- datasets, quarantine, ledgers ---------------------------------------------------------------


def dataset_prefix(store: str, dataset: str, version: str) -> str:
    return join(store, "datasets", dataset, version)


def partition_output_prefix(store: str, dataset: str, key: str) -> str:
    """One raw partition's preprocessed output (its split files, committed by a MANIFEST.json that
    holds its train statistics), by partition key; datasets reference these files, never copy them."""
    return join(store, "dataset-parts", dataset, key)


def partition_output_file(store: str, dataset: str, key: str, name: str) -> str:
    """One file of a partition output (e.g. train.parquet)."""
    return join(partition_output_prefix(store, dataset, key), name)


def partition_index_uri(store: str, dataset: str, lineage: str) -> str:
    """The partition outputs of the latest dataset built with one dataset config, split and code: a
    cache that saves looking each partition up (never a commit point)."""
    return join(store, "dataset-parts", dataset, "index", f"{lineage}.json")


def quarantine_prefix(store: str, dataset: str, quarantine_id: str) -> str:
    return join(store, "quarantine", dataset, quarantine_id)


def ledger_uri(store: str, dataset: str) -> str:
    return join(store, "ledgers", dataset, "ledger.json")


# --- experiments ---------------------------------------------------------------------------------


def experiments_root(store: str) -> str:
    return join(store, "experiments")


def experiment_uri(store: str, key: str) -> str:
    return join(experiments_root(store), key)


def record_uri(experiment: str) -> str:
    """The experiment's RECORD.json, written last: without it the experiment does not exist."""
    return join(experiment, RECORD_NAME)


def lease_uri(experiment: str) -> str:
    return join(experiment, LEASE_NAME)


def model_uri(experiment: str) -> str:
    return join(experiment, "model.pt")


def worker_report_uri(experiment: str) -> str:
    """What rank 0 of the training job reports: curve, digests, world size, device."""
    return join(experiment, "worker.json")


def curve_uri(experiment: str) -> str:
    return join(experiment, "curve.jsonl")


def checkpoints_prefix(experiment: str) -> str:
    return join(experiment, "checkpoints")


def checkpoint_uri(experiment: str, epoch: int) -> str:
    return join(checkpoints_prefix(experiment), f"epoch-{epoch:04d}.pt")


def latest_checkpoint_uri(experiment: str) -> str:
    """The pointer to the newest checkpoint, written after it."""
    return join(checkpoints_prefix(experiment), "latest.json")


# --- evaluations ---------------------------------------------------------------------------------


def experiment_evaluations(store: str, protocol_id: str, experiment_key: str) -> str:
    """Every evaluation of one experiment under one protocol."""
    return join(store, "evaluations", protocol_id, experiment_key)


def evaluations_against(store: str, protocol_id: str, experiment_key: str, against: str) -> str:
    """Every evaluation of one experiment against one set of references (`against`), under one protocol."""
    return join(experiment_evaluations(store, protocol_id, experiment_key), against)


def evaluation_prefix(store: str, protocol_id: str, experiment_key: str, against: str, evaluation_key: str) -> str:
    return join(evaluations_against(store, protocol_id, experiment_key, against), evaluation_key)


def report_uri(evaluation: str) -> str:
    return join(evaluation, REPORT_NAME)


def report_html_uri(evaluation: str) -> str:
    return join(evaluation, "report.html")


def predictions_uri(evaluation: str) -> str:
    """Every scored model's predictions on the test rows, committed with the report."""
    return join(evaluation, PREDICTIONS_NAME)


# --- the registry --------------------------------------------------------------------------------


def registry_root(store: str, model: str) -> str:
    return join(store, "registry", model)


def versions_prefix(registry: str) -> str:
    return join(registry, "versions")


def version_uri(registry: str, version: int) -> str:
    return join(versions_prefix(registry), f"{version:06d}.json")


def claim_uri(registry: str, experiment_key: str) -> str:
    """The claim that makes registering one experiment twice a no-op."""
    return join(registry, "by-experiment", f"{experiment_key}.json")


def alias_uri(registry: str, alias: str) -> str:
    return join(registry, "aliases", f"{alias}.json")


def events_prefix(registry: str) -> str:
    return join(registry, "events")


def event_uri(registry: str, name: str) -> str:
    return join(events_prefix(registry), f"{name}.json")


# --- sweeps --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepReport:
    """Where a sweep's comparison goes: one table in three formats and the learning curves."""

    table: str
    json: str
    html: str
    plot: str


def sweep_prefix(store: str, run_id: str) -> str:
    return join(store, "sweeps", run_id)


def sweep_report(store: str, run_id: str) -> SweepReport:
    prefix = sweep_prefix(store, run_id)
    return SweepReport(
        table=join(prefix, "comparison.md"),
        json=join(prefix, "comparison.json"),
        html=join(prefix, "comparison.html"),
        plot=join(prefix, "learning_curves.png"),
    )


# --- clean-up ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommittedFolder:
    """A store folder of outputs that each exist only once a marker object is written in them, last."""

    kind: str
    root: str
    depth: int  # path segments from the root to one output's prefix
    marker: str


def committed_folders(store: str) -> list[CommittedFolder]:
    return [
        CommittedFolder("dataset", join(store, "datasets"), 2, MANIFEST_NAME),
        CommittedFolder("experiment", experiments_root(store), 1, RECORD_NAME),
        CommittedFolder("evaluation", join(store, "evaluations"), 4, MANIFEST_NAME),
        CommittedFolder("quarantine", join(store, "quarantine"), 2, MANIFEST_NAME),
    ]


def output_of(folder: CommittedFolder, uri: str) -> str | None:
    """The prefix of the one output `uri` lies in, or None for an object above that depth."""
    root = folder.root + "/"
    parts = uri[len(root) :].split("/") if uri.startswith(root) else []
    return join(folder.root, *parts[: folder.depth]) if len(parts) > folder.depth and all(parts) else None


def marker_uri(folder: CommittedFolder, output: str) -> str:
    """The object that commits one output of the folder."""
    return join(output, folder.marker)


def registries_root(store: str) -> str:
    """Where every model's registry lies."""
    return join(store, "registry")


def claim_of(store: str, uri: str) -> tuple[str, str] | None:
    """(registry, experiment key) when `uri` is a registry's by-experiment claim, else None."""
    root = registries_root(store) + "/"
    parts = uri[len(root) :].split("/") if uri.startswith(root) else []
    if len(parts) != 3 or not parts[0] or not parts[2].endswith(".json"):
        return None
    registry, key = registry_root(store, parts[0]), parts[2].removesuffix(".json")
    return (registry, key) if uri == claim_uri(registry, key) else None
