"""The benchmarks' moving parts, so they cannot rot: the vectorised validation engine against the
bad-input corpus, the streamed scaler and split hash against what they replace, the timeline
parser, and the quick configurations of the data-path and GPU benchmarks (CPU fallback) end to end.
The Horovod and Airflow benchmarks run in CI through `benchmarks/run_all.py --quick`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from corpus import BAD_DAY, GOOD_DAY, cases, frames, parquet

from gauntlet import errors, fastchecks, rawdata, storage
from gauntlet.config import load_config, resolve
from gauntlet.hashing import sha256_u64
from gauntlet.splits import unit_hash
from gauntlet.steps import preprocess, validate

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SUITE = json.loads((ROOT / "include" / "expectations" / "digits.json").read_text())
GOOD, BAD = frames()
# A bad date directory is refused when partitions are listed, before any engine sees the data.
CASES = [c for c in cases(BAD) if c.expect in ("fail", "quarantine") and c.name != "partition_for_an_invalid_date"]


def _verdict(files: dict[str, bytes]) -> bool:
    checker = fastchecks.SuiteChecker(SUITE)
    try:
        for name, data in files.items():
            checker.start_partition(name)
            for batch in rawdata.iter_batches(name, data, batch_rows=64):  # several batches per file
                checker.add(batch)
    except errors.RawDataError:
        return False
    return checker.verdict()[0]


def test_vectorised_engine_covers_the_suite_and_passes_good_data() -> None:
    assert fastchecks.unsupported(SUITE) == []
    assert _verdict(
        {
            f"date={GOOD_DAY}/part-00000.parquet": parquet(GOOD),
            f"date={BAD_DAY}/part-00000.parquet": parquet(GOOD.assign(row_id=GOOD["row_id"] + "-b")),
        }
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_vectorised_engine_never_passes_what_gx_rejects(case: Any) -> None:
    """Every corpus case that GX fails or quarantines is 'not passed' here, so GX gets the final word."""
    files = {f"date={GOOD_DAY}/part-00000.parquet": parquet(GOOD), **case.build(BAD)}
    assert not _verdict(files), case.name


def test_duplicate_ids_across_partitions_are_caught() -> None:
    assert not _verdict({"a/part-0.parquet": parquet(GOOD), "b/part-0.parquet": parquet(GOOD)})


def test_split_hash_is_bit_identical_to_the_per_row_rule() -> None:
    ids = [f"digits-{i:05d}" for i in range(3000)] + ["17", "é", ""]
    assert np.array_equal(sha256_u64(ids, "salt:") / 2**64, [unit_hash("salt", r) for r in ids])


def test_streamed_moments_match_standard_scaler() -> None:
    import pyarrow as pa
    from sklearn.preprocessing import StandardScaler

    from gauntlet import encoding

    x = np.random.default_rng(0).integers(0, 17, size=(5000, 8)).astype(np.float32)
    x[:, 3] = 0  # a constant column keeps scale 1
    moments = encoding.Moments(x.shape[1])
    for chunk in np.array_split(x, 7):
        moments.add([pa.array(column) for column in chunk.T])  # column by column, as preprocess passes a batch
    scaler = StandardScaler().fit(x)
    np.testing.assert_allclose(moments.mean, scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(moments.scale(), scaler.scale_, rtol=1e-9)


def test_vectorised_validate_then_streamed_preprocess(seeded_store: str) -> None:
    """The vectorised engine passes the demo snapshot with the same partitions GX reports, and the
    streamed preprocess commits a dataset with every row once, in the frozen splits."""
    from gauntlet.protocol import load_protocol
    from gauntlet.splits import split_of

    config = load_config(resolve("include/configs/digits.yaml"), ["dataset.validation=vectorised"])
    outputs = validate.run(config, seeded_store, dt.date(2026, 11, 7), dt.date(2026, 11, 8), "vec")
    result = storage.get_json(outputs["result_uri"])
    assert result["verdict"] == "passed" and result["engine"]["engine"] == "vectorised"
    assert result["rows"] == 1797 and outputs["new_partitions"] == 1
    assert storage.exists(outputs["docs_uri"])
    protocol = load_protocol(resolve(config.protocol))
    dataset = preprocess.run(config, protocol, seeded_store, outputs["result_uri"])
    manifest = storage.read_manifest(dataset["dataset_uri"])
    assert sum(manifest["rows"].values()) == 1797
    for split in ("train", "test"):
        rel = f"{split}/part-00000.parquet"
        frame = pd.read_parquet(io.BytesIO(storage.read_committed_file(dataset["dataset_uri"], rel)))
        assert {split_of(r, protocol) for r in frame["row_id"]} == {split}
        assert frame["pixel_5"].dtype == np.float32 and frame["label"].dtype == np.int64
    pre = json.loads(storage.read_committed_file(dataset["dataset_uri"], "preprocessor.json"))
    assert len(pre["mean"]) == 64 and min(pre["scale"]) > 0


def test_vectorised_validate_leaves_a_failure_to_gx(store: str) -> None:
    prefix = "raw/vec-bad"
    storage.put_bytes(f"{store}/{prefix}/date={GOOD_DAY}/part-00000.parquet", parquet(GOOD.assign(label=42)))
    config = load_config(
        resolve("include/configs/digits.yaml"), [f"dataset.raw_prefix={prefix}", "dataset.validation=vectorised"]
    )
    with pytest.raises(errors.ValidationFailed, match="expect_column_values_to_be_in_set"):
        validate.run(config, store, dt.date(2026, 11, 7), dt.date(2026, 11, 8), "vec-bad")


def test_timeline_parser_groups_fused_allreduces(tmp_path: Path) -> None:
    from benchmarks.gpu_train import allreduce_bandwidth

    events = [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "allreduce.w"}},
        {"name": "process_name", "ph": "M", "pid": 2, "args": {"name": "allreduce.b"}},
        {"ph": "B", "name": "NCCL_ALLREDUCE", "ts": 100, "pid": 1},
        {"ph": "B", "name": "NCCL_ALLREDUCE", "ts": 101, "pid": 2},
        {"ph": "E", "ts": 1100, "pid": 2},
        {"ph": "E", "ts": 1100, "pid": 1},
    ]
    path = tmp_path / "timeline.json"
    path.write_text("[\n" + ",\n".join(json.dumps(e) for e in events) + ",\n")  # left open, as Horovod does
    figures = allreduce_bandwidth(path, {"w": 3_000_000, "b": 1_000_000}, ranks=2)
    assert figures["allreduces"] == 1 and figures["median_bytes"] == 4_000_000
    assert figures["algbw_gb_s"] == pytest.approx(4.0, rel=1e-3) and figures["busbw_gb_s"] == pytest.approx(4.0, 1e-3)


def test_horovod_timeline_breakdown_per_step(tmp_path: Path) -> None:
    from benchmarks.horovod_timeline import analyze

    names = ["allreduce.2.weight", "allreduce.2.bias", "allreduce.train.1"]
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": i + 1, "args": {"name": n}} for i, n in enumerate(names)
    ]

    def span(pid: int, name: str, start: int, end: int, args: dict[str, str] | None = None) -> None:
        events.append({"ph": "B", "name": name, "ts": start, "pid": pid})
        events.append({"ph": "E", "ts": end, "pid": pid, **({"args": args} if args else {})})

    shapes = {1: "[4, 8]", 2: "[4]"}  # 128 + 16 bytes of float32, fused into one allreduce per step
    for step in range(4):
        t = 10_000 * step  # 10 ms a step: 6 ms of compute, then 1 + 0.5 + 2 + 0.5 ms of collective
        for pid in (1, 2):
            span(pid, "NEGOTIATE_ALLREDUCE", t + 6000, t + 7000)
            events.append({"ph": "B", "name": "ALLREDUCE", "ts": t + 7000, "pid": pid})
            span(pid, "MEMCPY_IN_FUSION_BUFFER", t + 7000, t + 7500)
            span(pid, "GLOO_ALLREDUCE", t + 7500, t + 9500)
            span(pid, "MEMCPY_OUT_FUSION_BUFFER", t + 9500, t + 10_000)
            events.append({"ph": "E", "ts": t + 10_000, "pid": pid, "args": {"dtype": "float32", "shape": shapes[pid]}})
    span(3, "ALLREDUCE", 41_000, 41_100, {"dtype": "float64", "shape": "[3]"})  # a metric, once an epoch
    path = tmp_path / "timeline.json"
    path.write_text("[\n" + ",\n".join(json.dumps(e) for e in events) + ",\n")  # left open, as Horovod may
    result = analyze(str(path), skip_steps=0)
    assert result["steps"] == 3 and result["gradient_tensors"] == 2 and result["gradient_bytes"] == 144
    assert result["fused_allreduces_per_step"] == 1 and result["fusion_patterns"] == [{"bytes": [144], "steps": 3}]
    ms = result["median_ms_per_step"]
    assert ms["period_ms"] == 10 and ms["compute_ms"] == 6 and ms["compute_before_first_negotiation_ms"] == 6
    assert ms["negotiate_ms"] == 1 and ms["GLOO_ALLREDUCE"] == 2 and ms["MEMCPY_IN_FUSION_BUFFER"] == 0.5
    assert ms["MEMCPY_OUT_FUSION_BUFFER"] == 0.5 and ms["allreduce_other_ms"] == 0
    assert result["other_collectives"] == {"allreduce.train.1": 1}


@pytest.mark.slow
def test_gpu_benchmark_falls_back_to_cpu_and_reports_its_figures() -> None:
    from benchmarks import gpu_train

    result = gpu_train.bench(quick=True, ranks=1)
    figures = result["result"]
    mine = figures["paths"]["worker"]  # the worker's own input path and step, as it chose them here
    assert (figures["gpu"], figures["precision"], mine["placement"]) == (False, "bf16", "host")
    assert mine["samples_per_s"] > 0 and 0 < mine["input_wait_fraction"] < 1
    rows = {row["figure"].split(",")[0]: row for row in result["rows"]}
    assert rows["device"]["value"].startswith("no GPU: CPU fallback")
    # The targets are stated, and judged only on a GPU.
    assert rows["model FLOPs utilisation"]["target"] == ">= 60%" and rows["model FLOPs utilisation"]["met"] is None
    wait = rows["share of step time waiting for input"]
    assert wait["target"] == "<= 5%" and wait["met"] is None


@pytest.mark.slow
def test_data_path_benchmark_quick(s3_endpoint: str) -> None:
    from benchmarks import data_path

    result = data_path.bench(quick=True)
    assert result["results"][0]["seconds"]["preprocess"] > 0
    assert any("peak RSS" in row["figure"] for row in result["rows"])


@pytest.mark.slow
def test_incremental_benchmark_quick(s3_endpoint: str) -> None:
    """Each night reuses its history and processes the new partition; a full rebuild processes all."""
    from benchmarks import incremental

    result = incremental.bench(quick=True)
    long = incremental.QUICK["histories"][1]
    nights, fulls = result["samples"][f"night {long}"], result["samples"][f"full {long}"]
    assert [(s["reused"], s["processed"]) for s in nights] == [(long, 1)]
    assert [(s["reused"], s["processed"]) for s in fulls] == [(0, long + 1)]
    assert any(row.get("target") == "<= 1.5x" for row in result["rows"])


def test_pipeline_benchmark_reads_the_execution_api_start_from_the_task_log() -> None:
    from benchmarks.pipeline import _execution_api_start_seconds

    started = dt.datetime(2026, 12, 1, 19, 12, 16, 242175, tzinfo=dt.UTC)
    log = (
        "2026-12-01T19:12:15.733544Z [warning  ] Using `httpx` with `starlette.testclient` is deprecated\n"
        "2026-12-01T19:12:18.375370Z [info     ] Task started                   [airflow.api_fastapi...]\n"
        "2026-12-01T19:12:23.208277Z [info     ] Task started                   [airflow.api_fastapi...]\n"
    )
    assert _execution_api_start_seconds(log, started) == pytest.approx(2.133195)
    assert _execution_api_start_seconds("no such line\n", started) is None


def test_horovod_ceiling_share_is_taken_round_by_round() -> None:
    from benchmarks.horovod_scaling import FULL, model_rows, per_round

    figures = {  # round 2 ran under twice the load: every variant halves, the ratios stay
        "horovod_1": [100.0, 50.0],
        "horovod_2": [190.0, 95.0],
        "ddp_2": [200.0, 90.0],
        "compute_1": [100.0, 50.0],
        "compute_2": [200.0, 100.0],
        "horovod_2_nofusion": [209.0, 95.0],
    }
    r = per_round(figures)
    assert r["share"] == pytest.approx([0.95, 0.95]) and r["versus_ddp"] == pytest.approx([0.95, 95 / 90])
    assert r["horovod_2_nofusion / horovod_2"] == pytest.approx([1.1, 1.0])
    rows = {row["figure"]: row for row in model_rows("mlp", FULL, figures)}
    share = rows["mlp: Horovod 2-rank scaling as a share of the no-communication ceiling"]
    assert share["met"] and share["value"] == "0.95 (0.95-0.95, 2 rounds)"
    versus = rows["mlp: Horovod / DDP throughput (2 ranks, same global batch)"]
    assert versus["met"] and versus["value"] == "1.00 (0.95-1.06, 2 rounds)x"


def _night() -> dict[str, Any]:
    """A nightly as the REST API returns it: validate 10 s, train 20 s, publish_champion 1 s."""

    def at(seconds: float) -> str:
        return (dt.datetime(2026, 12, 5, 2, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()

    def ti(task: str, queued: float, start: float, end: float) -> dict[str, Any]:
        return {
            "task_id": task,
            "queued_when": at(queued),
            "start_date": at(start),
            "end_date": at(end),
            "duration": end - start,
        }

    return {
        "run": {"dag_run_id": "manual__x", "queued_at": at(-2), "start_date": at(0), "end_date": at(40)},
        "task_instances": [
            ti("validate", 1, 2, 12),
            ti("train", 13, 15, 35),
            {"task_id": "approval", "queued_when": None, "start_date": None, "end_date": None, "duration": None},
            ti("publish_champion", 36, 37, 38),
        ],
        "outputs": {"validate": {"step_seconds": 8.0}, "train": {"step_seconds": 18.0, "wall_seconds": 16.0}},
        "trigger_to_end_seconds": 43.0,
    }


def test_stack_overhead_splits_the_run_wall_into_scheduler_executor_and_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import stack_overhead

    monkeypatch.setattr(stack_overhead, "STEPS", ("validate", "train"))
    night = _night()
    night["outputs"]["train"]["experiment_uri"] = "s3://b/experiments/x"
    a = stack_overhead.analyze(night)
    assert a["wall_seconds"] == 40 and a["task_seconds"] == {"validate": 10, "train": 20, "publish_champion": 1}
    assert a["ratio"] == pytest.approx(40 / 31) and a["ratio_to_steps"] == pytest.approx(40 / 26)
    assert a["scheduler_gap_seconds"] == {"validate": 1, "train": 1, "publish_champion": 1}
    assert a["executor_gap_seconds"] == {"validate": 1, "train": 2, "publish_champion": 1}
    assert a["run_end_lag_seconds"] == 2 and a["queued_seconds"] == 2
    assert a["task_beyond_step_seconds"] == {"validate": 2, "train": 2}
    assert not stack_overhead.rows(a)[0]["met"]


def test_nightly_breakdown_accounts_for_the_whole_night(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import nightly_breakdown, stack_overhead

    monkeypatch.setattr(stack_overhead, "STEPS", ("validate", "train"))
    monkeypatch.setattr(nightly_breakdown, "STEPS", ("validate", "train"))
    night = _night()
    night["outputs"]["train"]["experiment_uri"] = "s3://b/experiments/x"
    a = {**stack_overhead.analyze(night), "worker_curve": [{"epoch_seconds": 5.0}, {"epoch_seconds": 6.0}]}
    imports = {"interpreter": 0.1, "gauntlet CLI": 0.5, "CLI + validate": 1.5, "CLI + train": 0.7}
    imports["rank: torch + horovod"] = 2.1
    b = nightly_breakdown.breakdown(a, imports)
    parts = list(b["parts_seconds"].values())
    # Airflow: 3 s from the trigger to the run's start, 3 s scheduler gaps, 4 s executor gaps, 2 s at the end.
    assert parts == pytest.approx([12.0, 5.0, 1.2, 5.0])
    assert b["startup_seconds"] + b["work_seconds"] == pytest.approx(43.0)
    assert b["rank_import_seconds"] == pytest.approx(2.0) and b["train_epochs_seconds"] == 11


def test_bench_report_lists_every_target_with_its_load_average() -> None:
    from benchmarks.common import markdown_table, target_rows

    results = {
        "date": "2026-12-05T02:00:00+00:00",
        "quick": True,
        "machine": {"cpu": "cpu", "cores": 2, "memory_gib": 8},
        "load_average_start": 1.0,
        "load_average_end": 2.0,
        "benchmarks": [
            {"key": "gpu", "name": "gpu train step", "result": {"device": "cpu"}, "rows": [], "load_average": [1, 2]},
            {
                "key": "horovod",
                "name": "horovod",
                "load_average": [0.5, 1.5],
                "rows": [
                    {"figure": "samples/s", "value": "1 / 2 / 2"},
                    {"figure": "cnn: share", "value": "0.97", "target": ">= 0.95", "met": True},
                ],
            },
            {"key": "stack", "name": "stack overhead", "error": "no stack", "rows": []},
        ],
    }
    rows = target_rows(results)
    assert [(r["item"], r["value"]) for r in rows] == [
        ("1", "no GPU"),
        ("3", "not run"),
        ("4", "not run"),
        ("5", "0.97"),
        ("6", "error"),
        ("6", "not run"),
        ("7", "not run"),
    ]
    table = markdown_table(results)
    assert "| 5 | cnn: share | 0.97 | >= 0.95 | met | 0.5 / 1.5 |" in table
    assert "| 6 | stack benchmark | error |  | **missed** |  |" in table
