"""Shared benchmark plumbing: the embedded S3 server, interleaved timing, machine facts, results.

Every benchmark talks to a real moto S3 server over HTTP (as the pipeline does) and compares
variants in interleaved rounds (A, B, A, B, ...), so load from other processes on this shared
machine hits every variant alike; figures are medians over the rounds and reported as ratios.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import platform
import statistics
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gauntlet.embedded_s3 import moto_server

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server on a free loopback port, unless AWS_ENDPOINT_URL already names one."""
    os.environ["GAUNTLET_HOME"] = str(ROOT)
    if os.environ.get("AWS_ENDPOINT_URL"):
        yield os.environ["AWS_ENDPOINT_URL"]
        return
    with moto_server(credentials="bench") as endpoint:
        yield endpoint


def fresh_store(tag: str) -> str:
    from gauntlet import storage

    bucket = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    storage.ensure_bucket(bucket)
    return f"s3://{bucket}"


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each variant once per round, in order, for `rounds` rounds; return every figure."""
    figures: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            figures[name].append(fn())
    return figures


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def digits_like_frame(rows: int, start: int, rng: np.random.Generator) -> Any:
    """Digits-shaped rows (row_id, label, pixel_0..63 ints in 0..16) with ids unique across calls."""
    import pandas as pd

    pixels = rng.integers(0, 17, size=(rows, 64), dtype=np.int64)
    frame = pd.DataFrame(pixels, columns=[f"pixel_{i}" for i in range(64)])
    frame.insert(0, "label", rng.integers(0, 10, size=rows, dtype=np.int64))
    frame.insert(0, "row_id", [f"bench-{i:09d}" for i in range(start, start + rows)])
    return frame


def commit_training_dataset(store: str, rows: int, seed: int = 0) -> str:
    """A committed dataset (train/dev splits, preprocessor, MANIFEST) for the training benchmarks.

    It is written in the layout preprocess commits, so the worker reads it exactly as in a run;
    labels follow a fixed random linear rule of the pixels, so the model has something to learn.
    """
    from gauntlet import layout, storage

    rng = np.random.default_rng(seed)
    frame = digits_like_frame(rows, 0, rng)
    features = [f"pixel_{i}" for i in range(64)]
    x = frame[features].to_numpy(np.float32)
    frame["label"] = np.argmax(x @ rng.normal(size=(64, 10)).astype(np.float32), axis=1).astype(np.int64)
    frame[features] = x
    frame.insert(1, "date", "2026-11-01")
    n_dev = max(rows // 10, 10)
    prefix = layout.dataset_prefix(store, "bench", f"rows-{rows}")
    with storage.temp_dir() as tmp:
        root = Path(tmp)
        for split, part in (("train", frame.iloc[n_dev:]), ("dev", frame.iloc[:n_dev])):
            (root / split).mkdir()
            part.to_parquet(root / split / "part-00000.parquet", index=False)
        (root / "preprocessor.json").write_text(
            json.dumps(
                {
                    "kind": "tabular",
                    "task": "classification",
                    "classes": list(range(10)),
                    "inputs": [{"name": name, "kind": "numeric", "impute": 0.0} for name in features],
                    "features": features,
                    "mean": x.mean(axis=0).tolist(),
                    "scale": np.where(x.std(axis=0) > 0, x.std(axis=0), 1).tolist(),
                }
            )
        )
        storage.commit_directory(
            root,
            prefix,
            {
                "version": f"bench-{rows}",
                "dataset": "bench",
                "schema": {
                    "id": "row_id",
                    "label": "label",
                    "task": "classification",
                    "features": features,
                    "encoded_features": features,
                    "classes": list(range(10)),
                },
                "rows": {"train": rows - n_dev, "dev": n_dev},
            },
        )
    return prefix


def land_raw_partitions(
    store: str, raw_prefix: str, rows: int, partitions: int, row_group: int = 250_000, seed: int = 0
) -> list[str]:
    """Land `rows` digits-shaped rows as daily Parquet partitions (generated and uploaded one at a time)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gauntlet import layout, storage

    rng = np.random.default_rng(seed)
    uris, start = [], 0
    for i, count in enumerate(np.array_split(np.arange(rows), partitions)):
        frame = digits_like_frame(len(count), start, rng)
        start += len(count)
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, row_group_size=row_group)
        del frame
        uri = layout.raw_partition_uri(store, raw_prefix, dt.date(2026, 11, 1) + dt.timedelta(days=i))
        storage.put_bytes(uri, buffer.getvalue())
        uris.append(uri)
    return uris


def write_results(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str))
    md_path = out_dir / "results.md"
    md_path.write_text(markdown_table(results))
    return json_path, md_path


def _load(bench: dict[str, Any]) -> str:
    return " / ".join(map(str, bench.get("load_average") or [])) or "-"


def _with_target(bench: dict[str, Any], item: str, match: str = "") -> list[dict[str, Any]]:
    return [
        {"item": item, "figure": row["figure"], "value": row["value"], "target": row["target"], "met": row.get("met")}
        for row in bench.get("rows", [])
        if row.get("target") and match in row["figure"]
    ]


def _gpu_targets(bench: dict[str, Any]) -> list[dict[str, Any]]:
    """The GPU input path's two figures, or 'no GPU' where the benchmark ran its CPU fallback."""
    result = bench.get("result") or {}
    if result.get("device") != "cuda":
        return [
            {"item": "1", "figure": "GPU input wait / MFU", "value": "no GPU", "target": "<= 5% / >= 60%", "met": None}
        ]
    batch = (result.get("loaders") or {}).get("batch_loader") or {}
    wait, mfu = batch.get("input_wait_fraction"), batch.get("mfu")
    return [
        {
            "item": "1",
            "figure": "GPU: fraction of step time waiting for input (the worker's loader)",
            "value": "n/a" if wait is None else f"{wait:.1%}",
            "target": "<= 5%",
            "met": None if wait is None else wait <= 0.05,
        },
        {
            "item": "1",
            "figure": "GPU: model FLOPs utilisation (the worker's loader)",
            "value": "n/a" if mfu is None else f"{mfu:.1%}",
            "target": ">= 60%",
            "met": None if mfu is None else mfu >= 0.60,
        },
    ]


def target_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every performance target's figure, by the item of the performance plan it answers, with its
    benchmark's load average (before / after); a benchmark not in this run is named as such."""
    by_key = {bench.get("key", bench["name"]): bench for bench in results["benchmarks"]}
    plan: list[tuple[str, str, Callable[[dict[str, Any]], list[dict[str, Any]]]]] = [
        ("gpu", "1", _gpu_targets),
        ("incremental", "3", lambda b: _with_target(b, "3")),
        ("data", "4", lambda b: _with_target(b, "4", "preprocess rows/s / floor")),
        ("horovod", "5", lambda b: _with_target(b, "5")),
        ("stack", "6", lambda b: _with_target(b, "6")),
        ("pipeline", "6", lambda b: _with_target(b, "6", "DAG run wall")),
        (
            "nightly",
            "7",
            lambda b: [{**row, "item": "7", "target": "report; cut start-up", "met": None} for row in b["rows"][:2]],
        ),
    ]
    out: list[dict[str, Any]] = []
    for key, item, select in plan:
        bench = by_key.get(key)
        if bench is None:
            out.append({"item": item, "figure": f"{key} benchmark", "value": "not run", "target": "", "met": None})
        elif bench.get("error"):
            out.append({"item": item, "figure": f"{key} benchmark", "value": "error", "target": "", "met": False})
        else:
            out += [{**row, "load": _load(bench)} for row in select(bench)]
    return out


def markdown_table(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Benchmarks{' (quick configuration)' if results.get('quick') else ''}, {results['date']} on "
        f"{m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB); load average at start "
        f"{results['load_average_start']}, at end {results['load_average_end']}.",
        "",
        "Targets:",
        "",
        "| item | figure | measured | target | met | load avg before / after |",
        "|---|---|---|---|---|---|",
    ]
    for row in target_rows(results):
        met = "" if row.get("met") is None else ("met" if row["met"] else "**missed**")
        value = str(row["value"]).replace("|", "/")
        lines.append(f"| {row['item']} | {row['figure']} | {value} | {row['target']} | {met} | {row.get('load', '')} |")
    lines += [
        "",
        "All figures:",
        "",
        "| benchmark | figure | measured | target | met |",
        "|---|---|---|---|---|",
    ]
    for bench in results["benchmarks"]:
        for row in bench.get("rows", []):
            target = row.get("target", "")
            met = "" if row.get("met") is None else ("yes" if row["met"] else "**no**")
            value = str(row["value"]).replace("|", "/")
            lines.append(f"| {bench['name']} | {row['figure']} | {value} | {target} | {met} |")
        if bench.get("load_average"):
            lines.append(
                f"| {bench['name']} | load average before / after | {' / '.join(map(str, bench['load_average']))} | | |"
            )
    return "\n".join(lines) + "\n"
