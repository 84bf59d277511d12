"""Benchmark 7: the worker's own train step on a GPU: samples/s, model FLOPs utilisation under the
worker's `training.precision: bf16`, the share of step time spent waiting for input, and allreduce
bandwidth from the Horovod Timeline.

Nothing here is a copy of the worker: the ranks start the worker's engine (training.backends, Horovod),
build the model with training.model.build_model, take their rows through the worker's input path
(training.worker.train_batches: on the device when they fit, else prefetched from pinned memory on a
side stream) and train with training.loop.train_epoch under the worker's autocast, which also times
the input wait (CUDA events on a GPU). On a GPU the prefetch path is measured too, forced, for rows
that would not fit. `horovodrun -np <GPUs>` starts the ranks with HOROVOD_TIMELINE set; rank 0 parses
the timeline for the *_ALLREDUCE activities (NCCL on a GPU build, Gloo otherwise) and sizes each
fused allreduce from the gradients it carried.

Targets, judged on a GPU only: input wait <= 5 % of step time and MFU >= 60 %. Without a GPU it says
so ("no GPU: CPU fallback") and runs a tiny configuration on the CPU, so the script and its parsing
stay tested (MFU then needs --peak-tflops):

    python benchmarks/gpu_train.py [--quick] [--ranks N] [--peak-tflops T]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Dense bf16 tensor-core peaks (TFLOP/s) by device name; override with --peak-tflops.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "H100": 756.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
}
GPU = {"hidden": [8192, 8192, 8192, 8192], "batch_size": 8192, "batches": 8, "steps": 60, "warmup": 10}
CPU = {"hidden": [256, 256], "batch_size": 256, "batches": 8, "steps": 12, "warmup": 3}
PRECISION = "bf16"
MAX_INPUT_WAIT, MIN_MFU = 0.05, 0.60
NO_GPU = "no GPU: CPU fallback"


def peak_tflops(device_name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in device_name:
            return value
    return None


def model_flops_per_sample(model: Any) -> float:
    """Training FLOPs per sample: 2 per multiply-add forward, twice that backward (Linear layers)."""
    from torch import nn

    macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    return 6.0 * macs


def allreduce_bandwidth(timeline_path: Path, tensor_bytes: dict[str, int], ranks: int) -> dict[str, Any]:
    """Bus bandwidth of the timeline's allreduce activities: a fused allreduce shows the same span
    on every tensor it carried, so spans are grouped and sized by the gradients in them."""
    text = timeline_path.read_text().strip()
    if not text.endswith("]"):
        text = text.rstrip(",\n") + "]"  # the timeline is flushed as a JSON array left open
    events = json.loads(text)
    names = {
        e["pid"]: e["args"].get("name", "") for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
    }
    open_spans: dict[Any, list[tuple[str, float]]] = {}
    spans: dict[tuple[float, float], list[str]] = {}
    kind = ""
    for e in events:
        if e.get("ph") == "B":
            open_spans.setdefault(e["pid"], []).append((e.get("name", ""), float(e["ts"])))
        elif e.get("ph") == "E" and open_spans.get(e["pid"]):
            name, start = open_spans[e["pid"]].pop()
            if name.endswith("_ALLREDUCE") and not name.startswith("NEGOTIATE"):
                kind = name
                spans.setdefault((start, float(e["ts"])), []).append(names.get(e["pid"], ""))
    # The tensors of one fused allreduce each log the activity with slightly different stamps:
    # overlapping spans are one operation on their combined bytes.
    groups: list[list[Any]] = []  # [start, end, bytes]
    for (start, end), tensors in sorted(spans.items()):
        size = sum(tensor_bytes.get(t.removeprefix("allreduce."), 0) for t in tensors)
        if groups and start <= groups[-1][1]:
            groups[-1][1] = max(groups[-1][1], end)
            groups[-1][2] += size
        else:
            groups.append([start, end, size])
    rates = [size / ((end - start) / 1e6) for start, end, size in groups if size and end > start]
    sizes = [size for start, end, size in groups if size and end > start]
    if not rates:
        return {"activity": kind or None, "allreduces": 0}
    rates.sort()
    algbw = rates[len(rates) // 2]
    # Ring allreduce moves 2(n-1)/n of the buffer per rank: "bus bandwidth", comparable across n.
    return {
        "activity": kind,
        "allreduces": len(rates),
        "median_bytes": sorted(sizes)[len(sizes) // 2],
        "algbw_gb_s": algbw / 1e9,
        "busbw_gb_s": algbw * 2 * (ranks - 1) / ranks / 1e9 if ranks > 1 else None,
    }


def _train_steps(
    model: Any, optimizer: Any, batches: Any, sampler: Any, device: Any, hooks: Any, steps: int
) -> tuple[float, float, float]:
    """`steps` steps of the worker's train_epoch under its bf16 autocast, over as many epochs of the
    input path as that takes: rows, seconds, and seconds spent waiting for input."""
    from gauntlet.training.loop import autocast_dtype, train_epoch

    autocast = autocast_dtype(PRECISION, device)
    seen = seconds = waited = 0.0
    done = epoch = 0
    while done < steps:
        epoch += 1
        sampler.set_epoch(epoch)
        totals = train_epoch(model, optimizer, batches, device, hooks, autocast=autocast, max_steps=steps - done)
        done += totals.steps
        seen, seconds, waited = seen + totals.seen, seconds + totals.seconds, waited + totals.input_seconds
    return seen, seconds, waited


def worker(args: argparse.Namespace) -> None:
    import torch
    from torch.utils.data import DistributedSampler, TensorDataset

    from gauntlet.training import backends
    from gauntlet.training.device_data import PREFETCH, DeviceBatches
    from gauntlet.training.model import build_model
    from gauntlet.training.worker import train_batches

    backend = backends.start(backends.HOROVOD)
    torch.set_num_threads(1)
    device = backend.device()
    cuda = device.type == "cuda"
    cfg: dict[str, Any] = dict(GPU if cuda and not args.quick else CPU)
    torch.manual_seed(0)
    rows = cfg["batch_size"] * cfg["batches"] * backend.size
    features = torch.randint(0, 17, (rows, 64)).float()
    labels = torch.randint(0, 10, (rows,))
    preprocessor = {"features": [f"pixel_{i}" for i in range(64)], "mean": [8.0] * 64, "scale": [5.0] * 64}
    model = build_model({"kind": "mlp", "hidden": cfg["hidden"]}, preprocessor, 10).to(device)
    optimizer = backend.distributed_optimizer(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), model)
    backend.broadcast_state(model, optimizer)
    trained = backend.trainable(model)
    dataset = TensorDataset(features, labels)
    sampler: DistributedSampler[Any] = DistributedSampler(dataset, backend.size, backend.rank, seed=0)
    paths = {"worker": train_batches(dataset, sampler, cfg["batch_size"], device)}
    if cuda:  # rows that would not fit: pinned memory, copied on a side stream
        paths[PREFETCH] = DeviceBatches(features, labels, sampler, cfg["batch_size"], device, PREFETCH)
    hooks = backend.step_hooks(1, not cuda)
    flops = model_flops_per_sample(model)
    results: dict[str, Any] = {}
    for name, batches in paths.items():
        _train_steps(trained, optimizer, batches, sampler, device, hooks, cfg["warmup"])  # allocation: not timed
        seen, stepped, waited = _train_steps(
            trained, optimizer, batches, sampler, device, hooks, cfg["steps"] - cfg["warmup"]
        )
        samples_per_s, wait_sum = backend.allreduce_sums([seen / stepped, waited / stepped], f"figures.{name}")
        results[name] = {
            "placement": batches.placement,
            "samples_per_s": samples_per_s,
            "input_wait_fraction": wait_sum / backend.size,
            "achieved_tflops": samples_per_s * flops / 1e12,
        }
    if backend.rank == 0:
        device_name = torch.cuda.get_device_name(device) if cuda else "cpu"
        peak = args.peak_tflops or (peak_tflops(device_name) if cuda else None)
        for r in results.values():
            r["mfu"] = r["achieved_tflops"] / (peak * backend.size) if peak else None
        tensor_bytes = {n: p.numel() * p.element_size() for n, p in model.named_parameters()}
        import horovod.torch as hvd

        print(
            "GPU_RESULT "
            + json.dumps(
                {
                    "device": device_name,
                    "gpu": cuda,
                    "ranks": backend.size,
                    "config": cfg,
                    "precision": PRECISION,
                    "peak_bf16_tflops_per_device": peak,
                    "nccl_built": bool(hvd.nccl_built()),
                    "flops_per_sample": flops,
                    "paths": results,
                    "tensor_bytes": tensor_bytes,
                }
            ),
            flush=True,
        )
    backend.close()


def launch(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    # Without a GPU, two CPU ranks so the timeline still holds allreduces to parse.
    ranks = args.ranks or torch.cuda.device_count() or 2
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        timeline = Path(tmp) / "timeline.json"
        env = {
            **os.environ,
            "HOROVOD_TIMELINE": str(timeline),
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
            ),
        }
        worker_cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            *(["--quick"] if args.quick else []),
            *(["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []),
        ]
        horovodrun = shutil.which("horovodrun", path=os.path.dirname(sys.executable))
        if horovodrun:
            gloo = [] if torch.cuda.is_available() else ["--gloo"]
            command = [horovodrun, "-np", str(ranks), "-H", f"localhost:{ranks}", *gloo, *worker_cmd]
        else:  # a single process initialises Horovod by itself
            ranks, command = 1, worker_cmd
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
        line = next((x for x in done.stdout.splitlines() if "GPU_RESULT " in x), None)
        if done.returncode != 0 or line is None:
            raise RuntimeError(
                f"gpu_train worker failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
            )
        result: dict[str, Any] = json.loads(line.split("GPU_RESULT ", 1)[1])
        result["allreduce"] = (
            allreduce_bandwidth(timeline, result.pop("tensor_bytes"), result["ranks"])
            if timeline.exists()
            else {"allreduces": 0}
        )
    return result


def bench(quick: bool = False, ranks: int | None = None, peak: float | None = None) -> dict[str, Any]:
    result = launch(argparse.Namespace(quick=quick, ranks=ranks, peak_tflops=peak))
    paths, ar, gpu = result["paths"], result["allreduce"], result["gpu"]
    names = list(paths)  # the worker's own path first, then (on a GPU) the forced prefetch path
    mine = paths["worker"]

    def each(figure: str) -> str:
        return " / ".join(figure_of(paths[name], figure) for name in names)

    # e.g. "resident (the worker's choice) / prefetch"
    label = " / ".join(
        paths[name]["placement"] + (" (the worker's choice)" if name == "worker" else "") for name in names
    )
    where = (
        f"{result['device']} x{result['ranks']}, MLP 64-{'-'.join(map(str, result['config']['hidden']))}-10, "
        f"batch {result['config']['batch_size']}/rank, {result['precision']} autocast"
    )
    bw = (
        (
            f"{ar['busbw_gb_s'] or ar['algbw_gb_s']:.2f} GB/s ({ar['activity']}, median of {ar['allreduces']}, "
            f"{ar['median_bytes'] / 1e6:.1f} MB)"
        )
        if ar.get("allreduces")
        else "n/a (no allreduce in the timeline)"
    )
    device_row = {"figure": "device", "value": where if gpu else f"{NO_GPU} ({where}; the targets are judged on a GPU)"}
    return {
        "name": "gpu train step",
        "result": result,
        "rows": [
            device_row,
            {"figure": f"samples/s, worker's step, rows {label}", "value": each("samples_per_s")},
            {
                "figure": f"model FLOPs utilisation, rows {label}",
                "value": each("mfu"),
                "target": f">= {MIN_MFU:.0%}",
                "met": mine["mfu"] >= MIN_MFU if gpu and mine["mfu"] is not None else None,
            },
            {
                "figure": f"share of step time waiting for input, rows {label}",
                "value": each("input_wait_fraction"),
                "target": f"<= {MAX_INPUT_WAIT:.0%}",
                "met": mine["input_wait_fraction"] <= MAX_INPUT_WAIT if gpu else None,
            },
            {"figure": "allreduce bus bandwidth from the Horovod Timeline", "value": bw},
        ],
    }


def figure_of(path: dict[str, Any], figure: str) -> str:
    value = path[figure]
    if figure == "samples_per_s":
        return f"{value:,.0f}"
    if value is None:
        return "n/a (no bf16 peak for this device: --peak-tflops)"
    return f"{value:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny configuration (always used on a CPU)")
    parser.add_argument("--ranks", type=int, default=None, help="Horovod ranks (default: GPUs, or 2 on a CPU)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak per device, for MFU")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    result = bench(args.quick, args.ranks, args.peak_tflops)
    if not result["result"]["gpu"]:
        print(f"{NO_GPU}: a tiny configuration on the CPU, so the script stays tested; no GPU figures", flush=True)
    for row in result["rows"]:
        print(f"{row['figure']}: {row['value']}")
    print(json.dumps(result["result"], indent=1))


if __name__ == "__main__":
    main()
