"""`gauntlet gc`: the CLI lists before it deletes and refuses a bad grace period; the layout finds the
output an object belongs to and the claims in a registry; sizes read as people write them."""

from __future__ import annotations

import time

import pytest
from testkit import object_keys, run_cli

from gauntlet import cleanup, layout, storage
from gauntlet.contract import EXIT_BAD_INPUT


def test_each_committed_folder_finds_the_output_an_object_lies_in() -> None:
    store = "s3://bucket/root"
    outputs = {
        "dataset": layout.dataset_prefix(store, "digits", "v1"),
        "experiment": layout.experiment_uri(store, "k1"),
        "evaluation": layout.evaluation_prefix(store, "p1", "k1", "refs", "e1"),
        "quarantine": layout.quarantine_prefix(store, "digits", "q1"),
    }
    for folder in layout.committed_folders(store):
        output = outputs[folder.kind]
        assert layout.output_of(folder, storage.join(output, "a", "b.json")) == output
        assert layout.output_of(folder, storage.join(output, "x.json")) == output
        assert layout.output_of(folder, output) is None  # the prefix itself is no object in it
        assert layout.marker_uri(folder, output).startswith(output + "/")
    datasets = layout.committed_folders(store)[0]
    assert layout.output_of(datasets, layout.experiment_uri(store, "k1") + "/RECORD.json") is None


def test_claims_are_told_apart_from_other_registry_objects() -> None:
    store = "s3://bucket"
    reg = layout.registry_root(store, "m")
    assert layout.claim_of(store, layout.claim_uri(reg, "abc")) == (reg, "abc")
    assert layout.claim_of(store, layout.version_uri(reg, 3)) is None
    assert layout.claim_of(store, layout.alias_uri(reg, "champion")) is None
    assert layout.claim_of(store, layout.event_uri(reg, "e1")) is None


def test_sizes_read_as_people_write_them() -> None:
    assert [cleanup.human_size(n) for n in (0, 1023, 2048, 5 * 1024**2, 3 * 1024**4)] == [
        "0 B",
        "1023 B",
        "2.0 KB",
        "5.0 MB",
        "3072.0 GB",
    ]


def test_gc_lists_first_and_deletes_only_with_apply(store: str) -> None:
    crashed = layout.dataset_prefix(store, "digits", "v-crashed")
    storage.put_bytes(storage.join(crashed, "train.parquet"), b"x" * 100)
    time.sleep(1.05)  # older than 0 h at the server's one-second resolution

    process, outputs = run_cli(store, "gc")
    assert outputs["found"] == 0, "inside the default 24 h grace period nothing is an orphan"
    assert "found 0 not committed and older than 24h" in process.stdout

    process, outputs = run_cli(store, "gc", "--grace-hours", "0")
    assert [(o["kind"], o["uri"], o["bytes"]) for o in outputs["orphans"]] == [(cleanup.UNCOMMITTED, crashed, 100)]
    assert "deleted nothing (--apply deletes them)" in process.stdout
    assert object_keys(store), "listing deletes nothing"

    process, outputs = run_cli(store, "gc", "--grace-hours", "0", "--apply")
    assert (outputs["freed"], outputs["freed_bytes"]) == (1, 100)
    assert "freed 100 B: 1 uncommitted output" in process.stdout
    assert not object_keys(store)


@pytest.mark.parametrize("hours", ["-1", "nan"])
def test_gc_refuses_a_grace_period_that_is_no_number_of_hours(store: str, hours: str) -> None:
    storage.put_bytes(storage.join(layout.dataset_prefix(store, "d", "v"), "f"), b"x")
    process, _ = run_cli(store, "gc", "--grace-hours", hours, "--apply", check=False)
    assert process.returncode == EXIT_BAD_INPUT
    assert "--grace-hours must be a number of hours >= 0" in process.stderr
    assert object_keys(store)


def test_deleting_a_missing_object_counts_as_deleted(store: str) -> None:
    uri = storage.join(layout.dataset_prefix(store, "d", "v"), "f")
    storage.put_bytes(uri, b"x")
    storage.delete_objects([uri, uri + "-never-written"])
    assert not storage.exists(uri)
    storage.abort_multipart_upload(uri, "no-such-upload")  # already gone: nothing to do
