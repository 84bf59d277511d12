"""gauntlet.layout: the store root and the tree of paths under it."""

from __future__ import annotations

import datetime as dt

import pytest

from gauntlet import layout, rawdata, storage

STORE = "s3://bucket"


def test_the_store_root_is_the_explicit_one_else_the_environment_else_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GAUNTLET_STORE", raising=False)
    assert layout.store_root() == "s3://gauntlet"
    assert layout.configured_store() is None
    monkeypatch.setenv("GAUNTLET_STORE", "")
    assert layout.store_root() == "s3://gauntlet" and layout.configured_store() is None
    monkeypatch.setenv("GAUNTLET_STORE", "s3://elsewhere")
    assert layout.store_root() == "s3://elsewhere" == layout.configured_store()
    assert layout.store_root("s3://given") == "s3://given"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (layout.raw_root(STORE, "raw/digits"), "raw/digits"),
        (
            layout.raw_partition_uri(STORE, "raw/digits", dt.date(2026, 11, 2)),
            "raw/digits/date=2026-11-02/part-00000.parquet",
        ),
        (layout.raw_partition_uri(STORE, "raw/d", dt.date(2026, 1, 9), "csv"), "raw/d/date=2026-01-09/part-00000.csv"),
        (layout.runs_root(STORE), "runs"),
        (layout.step_outputs_uri(STORE, "r1", "train"), "runs/r1/steps/train.json"),
        (layout.validation_result_uri(STORE, "r1"), "runs/r1/validation/result.json"),
        (layout.data_docs_uri(STORE, "r1"), "runs/r1/validation/docs/index.html"),
        (layout.data_docs_uri(STORE, "r1", "static/a.css"), "runs/r1/validation/docs/static/a.css"),
        (layout.dataset_prefix(STORE, "digits", "v1"), "datasets/digits/v1"),
        (layout.quarantine_prefix(STORE, "digits", "q1"), "quarantine/digits/q1"),
        (layout.ledger_uri(STORE, "digits"), "ledgers/digits/ledger.json"),
        (layout.experiment_uri(STORE, "k1"), "experiments/k1"),
        (layout.record_uri(layout.experiment_uri(STORE, "k1")), "experiments/k1/RECORD.json"),
        (layout.lease_uri(layout.experiment_uri(STORE, "k1")), "experiments/k1/LEASE.json"),
        (layout.model_uri(layout.experiment_uri(STORE, "k1")), "experiments/k1/model.pt"),
        (layout.worker_report_uri(layout.experiment_uri(STORE, "k1")), "experiments/k1/worker.json"),
        (layout.curve_uri(layout.experiment_uri(STORE, "k1")), "experiments/k1/curve.jsonl"),
        (layout.checkpoint_uri(layout.experiment_uri(STORE, "k1"), 7), "experiments/k1/checkpoints/epoch-0007.pt"),
        (layout.latest_checkpoint_uri(layout.experiment_uri(STORE, "k1")), "experiments/k1/checkpoints/latest.json"),
        (layout.evaluation_prefix(STORE, "p1", "k1", "baseline-only", "e1"), "evaluations/p1/k1/baseline-only/e1"),
        (layout.report_uri(layout.evaluation_prefix(STORE, "p", "k", "a", "e")), "evaluations/p/k/a/e/report.json"),
        (
            layout.report_html_uri(layout.evaluation_prefix(STORE, "p", "k", "a", "e")),
            "evaluations/p/k/a/e/report.html",
        ),
        (layout.registry_root(STORE, "m"), "registry/m"),
        (layout.version_uri(layout.registry_root(STORE, "m"), 12), "registry/m/versions/000012.json"),
        (layout.claim_uri(layout.registry_root(STORE, "m"), "k1"), "registry/m/by-experiment/k1.json"),
        (layout.alias_uri(layout.registry_root(STORE, "m"), "champion"), "registry/m/aliases/champion.json"),
        (layout.event_uri(layout.registry_root(STORE, "m"), "t-1"), "registry/m/events/t-1.json"),
        (layout.sweep_report(STORE, "s1").table, "sweeps/s1/comparison.md"),
        (layout.sweep_report(STORE, "s1").json, "sweeps/s1/comparison.json"),
        (layout.sweep_report(STORE, "s1").html, "sweeps/s1/comparison.html"),
        (layout.sweep_report(STORE, "s1").plot, "sweeps/s1/learning_curves.png"),
    ],
)
def test_each_output_has_one_place_under_the_store(uri: str, expected: str) -> None:
    assert uri == f"{STORE}/{expected}"


def test_a_trailing_slash_on_the_root_makes_no_double_slash() -> None:
    assert (
        layout.experiment_uri("s3://bucket/", "k")
        == layout.experiment_uri("s3://bucket", "k")
        == "s3://bucket/experiments/k"
    )
    assert layout.dataset_prefix("s3://bucket/team/", "d", "v") == "s3://bucket/team/datasets/d/v"


def test_prefixes_hold_their_files() -> None:
    """Listing a prefix finds what lies in it: every file function extends its folder function."""
    experiment = layout.experiment_uri(STORE, "k")
    assert layout.checkpoint_uri(experiment, 1).startswith(layout.checkpoints_prefix(experiment) + "/")
    registry = layout.registry_root(STORE, "m")
    assert layout.version_uri(registry, 1).startswith(layout.versions_prefix(registry) + "/")
    assert layout.event_uri(registry, "e").startswith(layout.events_prefix(registry) + "/")
    assert layout.step_outputs_uri(STORE, "r", "validate").startswith(layout.runs_root(STORE) + "/")
    assert layout.data_docs_uri(STORE, "r").startswith(layout.data_docs_prefix(STORE, "r") + "/")
    assert layout.experiment_uri(STORE, "k").startswith(layout.experiments_root(STORE) + "/")
    evaluation = layout.evaluation_prefix(STORE, "p", "k", "a", "e")
    assert evaluation.startswith(layout.evaluations_against(STORE, "p", "k", "a") + "/")
    assert evaluation.startswith(layout.experiment_evaluations(STORE, "p", "k") + "/")


def test_a_run_id_is_read_back_only_from_a_runs_own_folders() -> None:
    assert layout.run_id_under(STORE, layout.data_docs_uri(STORE, "nightly__r1")) == "nightly__r1"
    assert layout.run_id_under(STORE, layout.sweep_report(STORE, "sweep__r2").html) == "sweep__r2"
    assert layout.run_id_under(STORE, layout.dataset_prefix(STORE, "d", "v")) is None
    assert layout.run_id_under("s3://other", layout.data_docs_uri(STORE, "r1")) is None
    assert layout.run_id_under(STORE, f"{STORE}/runs") is None


def test_the_run_of_a_steps_outputs_is_found_by_step() -> None:
    uri = layout.step_outputs_uri(STORE, "nightly__r1", "validate")
    assert layout.run_of_step_outputs(STORE, uri, "validate") == "nightly__r1"
    assert layout.run_of_step_outputs(STORE, uri, "train") is None
    assert layout.run_of_step_outputs(STORE, layout.validation_result_uri(STORE, "nightly__r1"), "validate") is None


def test_the_demo_lands_partitions_where_layout_says_and_rawdata_finds_them(seeded_store: str) -> None:
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(7)]
    expected = [layout.raw_partition_uri(seeded_store, "raw/digits", day) for day in days]
    assert all(storage.exists(uri) for uri in expected)
    assert [p.uri for p in rawdata.list_partitions(seeded_store, "raw/digits")] == expected
