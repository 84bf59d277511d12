"""Benchmark 8: a night's preprocess costs its new data, not its history.

Digits-shaped daily partitions are landed in S3. For each history (10 and 40 partitions) a dataset
of the history is built once, untimed; then each round lands one new partition and times, as the
DAG's task runs it (`python -m gauntlet preprocess`, its own step_seconds), the night that adds it
to each history (its earlier partitions reused) and a full rebuild of the same partitions (a dataset
name never built, so nothing is reused) for contrast. Rounds are interleaved; each sample records
the load average, and every run's log must say how many partitions it reused and processed.

    python benchmarks/incremental.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import uuid
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import ROOT, fresh_store, land_raw_partitions, load_average, median, s3_server
from gauntlet.contract import parse_outputs

RAW_PREFIX = "raw/digits"
FULL = {"histories": [10, 40], "rows_per_partition": 50_000, "rounds": 5}
QUICK = {"histories": [2, 6], "rows_per_partition": 2_000, "rounds": 1}
TARGET = 1.5  # the night's seconds may grow at most this much from the short history to the long one
_REUSED = re.compile(r"reused (\d+) partitions?, processed (\d+)")


def _validation(store: str, name: str, partitions: list[dict[str, Any]]) -> str:
    """A passed validation naming these partitions (what validate hands preprocess)."""
    from gauntlet import layout, storage

    uri = layout.validation_result_uri(store, name)
    storage.put_json(uri, {"verdict": "passed", "partitions": partitions})
    return uri


def run_preprocess(store: str, dataset: str, validation_uri: str) -> dict[str, Any]:
    """One preprocess as the DAG runs it; its step seconds and the partitions it reused and processed."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gauntlet",
            "--store",
            store,
            "--set",
            "dataset.validation=vectorised",
            "--set",
            f"dataset.name={dataset}",
            "preprocess",
            "--validation",
            validation_uri,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"preprocess of {dataset} exited {done.returncode}:\n{done.stderr[-3000:]}")
    outputs = parse_outputs(done.stdout.splitlines()) or {}
    found = _REUSED.search(done.stderr)
    if found is None or outputs.get("cache_hit"):
        raise RuntimeError(
            f"preprocess of {dataset} built nothing (cache hit or no reuse line):\n{done.stderr[-2000:]}"
        )
    return {
        "seconds": float(outputs["step_seconds"]),
        "reused": int(found.group(1)),
        "processed": int(found.group(2)),
        "load": load_average(),
    }


def _expect(result: dict[str, Any], reused: int, processed: int, what: str) -> dict[str, Any]:
    if (result["reused"], result["processed"]) != (reused, processed):
        raise RuntimeError(
            f"{what}: reused {result['reused']}, processed {result['processed']}; expected {reused}, {processed}"
        )
    return result


def measure(store: str, cfg: dict[str, Any]) -> dict[str, Any]:
    from gauntlet import rawdata

    histories, rounds = cfg["histories"], cfg["rounds"]
    total = max(histories) + rounds
    land_raw_partitions(store, RAW_PREFIX, cfg["rows_per_partition"] * total, total, seed=1)
    landed = [p.as_dict() for p in rawdata.list_partitions(store, RAW_PREFIX)]
    for h in histories:  # each history's dataset, once, untimed: what earlier nights left
        run_preprocess(store, f"digits-night-{h}", _validation(store, f"history-{h}", landed[:h]))
    samples: dict[str, list[dict[str, Any]]] = {f"{kind} {h}": [] for kind in ("night", "full") for h in histories}
    for r in range(rounds):
        new = landed[max(histories) + r]
        for kind in ("night", "full"):
            for h in histories:
                uri = _validation(store, f"{kind}-{h}-{r}", [*landed[:h], new])
                if kind == "night":
                    result = _expect(run_preprocess(store, f"digits-night-{h}", uri), h, 1, f"night {h}")
                else:
                    name = f"digits-full-{uuid.uuid4().hex[:8]}"
                    result = _expect(run_preprocess(store, name, uri), 0, h + 1, f"full {h}")
                samples[f"{kind} {h}"].append(result)
    return samples


def bench(quick: bool = False) -> dict[str, Any]:
    cfg = QUICK if quick else FULL
    load_before = load_average()
    with s3_server():
        samples = measure(fresh_store("incremental"), cfg)
    short, long = cfg["histories"]
    seconds = {k: median([s["seconds"] for s in v]) for k, v in samples.items()}
    per_round = {
        kind: [
            b["seconds"] / a["seconds"]
            for a, b in zip(samples[f"{kind} {short}"], samples[f"{kind} {long}"], strict=True)
        ]
        for kind in ("night", "full")
    }
    night, full = (
        seconds[f"night {long}"] / seconds[f"night {short}"],
        seconds[f"full {long}"] / seconds[f"full {short}"],
    )
    rows = cfg["rows_per_partition"]
    table = [
        {
            "figure": f"night's preprocess s, history {short} / {long} + 1 new partition ({rows:,} rows each)",
            "value": f"{seconds[f'night {short}']:.2f} / {seconds[f'night {long}']:.2f}",
        },
        {
            "figure": f"night's preprocess s, history {long} / history {short} (per round)",
            "value": f"{night:.2f}x ({', '.join(f'{x:.2f}' for x in per_round['night'])})",
            "target": f"<= {TARGET}x",
            "met": night <= TARGET,
        },
        {
            "figure": f"full rebuild s, {short + 1} / {long + 1} partitions (contrast)",
            "value": f"{seconds[f'full {short}']:.2f} / {seconds[f'full {long}']:.2f}",
        },
        {
            "figure": f"full rebuild s, {long + 1} / {short + 1} partitions (per round)",
            "value": f"{full:.2f}x ({', '.join(f'{x:.2f}' for x in per_round['full'])})",
        },
        {
            "figure": "load average during the rounds (min-max)",
            "value": "{:.1f}-{:.1f}".format(
                min(s["load"] for v in samples.values() for s in v), max(s["load"] for v in samples.values() for s in v)
            ),
        },
    ]
    return {
        "name": "incremental night",
        "config": cfg,
        "samples": samples,
        "rows": table,
        "load_average": [load_before, load_average()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = bench(args.quick)
    for row in result["rows"]:
        print(f"{row['figure']}: {row['value']}  (target {row.get('target', '-')})")


if __name__ == "__main__":
    main()
