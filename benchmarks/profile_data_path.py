"""Profile validate (vectorised) and preprocess with py-spy on generated rows in S3.

    python benchmarks/profile_data_path.py --rows 1000000 [--out artifacts/bench/profiles]

Writes collapsed stacks (<step>.txt, for flamegraph tools) and prints the functions with the
most samples (self and total), which is what the README's gap analysis quotes.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import BIN, ROOT, fresh_store, land_raw_partitions, s3_server
from benchmarks.data_path import PARTITIONS, RAW_PREFIX, run_validate


def summarize(collapsed: Path, top: int = 12) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{collapsed.stem}: {samples} samples", "  self:"]
    lines += [f"    {100 * n / samples:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["  total (inclusive):"]
    lines += [
        f"    {100 * n / samples:5.1f}%  {name}"
        for name, n in total.most_common(top + 8)
        if "<module>" not in name and "_run_code" not in name
    ][:top]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "bench" / "profiles"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pyspy = shutil.which("py-spy", path=str(BIN)) or "py-spy"
    with s3_server():
        store = fresh_store("prof")
        land_raw_partitions(store, RAW_PREFIX, args.rows, PARTITIONS)
        validation = run_validate(store, "vectorised")["outputs"]["result_uri"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        steps = {
            "validate": [
                "--run-id",
                f"prof-{uuid.uuid4().hex[:6]}",
                "--set",
                "dataset.validation=vectorised",
                "validate",
                "--start",
                "2026-11-01",
                "--end",
                "2026-12-01",
            ],
            "preprocess": ["--set", "dataset.validation=vectorised", "preprocess", "--validation", validation],
        }
        for step, args_ in steps.items():
            target = out / f"{step}.txt"
            subprocess.run(
                [
                    pyspy,
                    "record",
                    "--subprocesses",  # train's ranks and any process a step starts
                    "--format",
                    "raw",
                    "--rate",
                    "50",
                    "-o",
                    str(target),
                    "--",
                    sys.executable,
                    "-m",
                    "gauntlet",
                    "--store",
                    store,
                    *args_,
                ],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            print(summarize(target))


if __name__ == "__main__":
    main()
