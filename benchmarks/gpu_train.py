"""Benchmark 7: the train step on a GPU: samples/s, model FLOPs utilisation (bf16 autocast), the
fraction of step time spent waiting for input, and allreduce bandwidth from the Horovod Timeline.

The step is the pipeline's own (training/model.py's build_model, SGD with momentum wrapped in
hvd.DistributedOptimizer, training.loop.train_epoch), on a wide MLP sized for a GPU and digits-shaped input.
Two input paths are compared: the worker's (training.data.batch_loader: one gather per batch, from
pinned memory on a GPU) and a DataLoader collating rows one by one (the worker's until that one
starved small models), to show the input path's share of a step. `horovodrun -np <GPUs>` starts the
ranks with HOROVOD_TIMELINE set; rank 0 parses the timeline for the *_ALLREDUCE activities (NCCL on
a GPU build, Gloo otherwise) and sizes each fused allreduce from the gradients it carried.

Without a GPU it falls back to the CPU in a tiny configuration (and MFU needs --peak-tflops), so
the script and its parsing stay tested:

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
GPU = {"hidden": [8192, 8192, 8192, 8192], "batch_size": 8192, "steps": 60, "warmup": 10}
CPU = {"hidden": [256, 256], "batch_size": 256, "steps": 12, "warmup": 3}


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


def _train_steps(model: Any, optimizer: Any, loader: Any, device: Any, steps: int) -> tuple[float, float, float]:
    """`steps` steps of the pipeline's train_epoch under bf16 autocast, over as many passes of the
    loader as that takes: rows, seconds, and seconds spent waiting for input."""
    import torch

    from gauntlet.training.loop import train_epoch

    seen = seconds = waited = 0.0
    done = 0
    while done < steps:
        totals = train_epoch(model, optimizer, loader, device, autocast=torch.bfloat16, max_steps=steps - done)
        done += totals.steps
        seen, seconds, waited = seen + totals.seen, seconds + totals.seconds, waited + totals.input_seconds
    return seen, seconds, waited


def worker(args: argparse.Namespace) -> None:
    import horovod.torch as hvd
    import torch
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    from gauntlet.training.data import batch_loader
    from gauntlet.training.model import build_model

    hvd.init()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(hvd.local_rank())
    device = torch.device("cuda", hvd.local_rank()) if cuda else torch.device("cpu")
    cfg: dict[str, Any] = dict(GPU if cuda and not args.quick else CPU)
    torch.manual_seed(0)
    rows = cfg["batch_size"] * 8
    features = torch.randint(0, 17, (rows, 64)).float()
    labels = torch.randint(0, 10, (rows,))
    preprocessor = {"features": [f"pixel_{i}" for i in range(64)], "mean": [8.0] * 64, "scale": [5.0] * 64}
    model = build_model({"kind": "mlp", "hidden": cfg["hidden"]}, preprocessor, 10).to(device)
    optimizer = hvd.DistributedOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), named_parameters=model.named_parameters()
    )
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    dataset = TensorDataset(features, labels)
    loaders = {
        # rows fetched and collated one at a time (the worker's loader before training.data.batch_loader)
        "per_row_loader": DataLoader(dataset, batch_size=cfg["batch_size"], shuffle=True, pin_memory=cuda),
        # the worker's: one gather per batch
        "batch_loader": batch_loader(dataset, RandomSampler(dataset), cfg["batch_size"], pin_memory=cuda),
    }
    flops = model_flops_per_sample(model)
    results: dict[str, Any] = {}
    for name, loader in loaders.items():
        _train_steps(model, optimizer, loader, device, cfg["warmup"])  # allocation, first allreduces: not timed
        seen, stepped, waited = _train_steps(model, optimizer, loader, device, cfg["steps"] - cfg["warmup"])
        samples_per_s = hvd.allreduce(torch.tensor(seen / stepped), op=hvd.Sum, name=f"sps.{name}").item()
        results[name] = {
            "samples_per_s": samples_per_s,
            "input_wait_fraction": waited / stepped,
            "achieved_tflops": samples_per_s * flops / 1e12,
        }
    if hvd.rank() == 0:
        device_name = torch.cuda.get_device_name(device) if cuda else "cpu"
        peak = args.peak_tflops or (peak_tflops(device_name) if cuda else None)
        for r in results.values():
            r["mfu"] = r["achieved_tflops"] / (peak * hvd.size()) if peak else None
        tensor_bytes = {n: p.numel() * p.element_size() for n, p in model.named_parameters()}
        print(
            "GPU_RESULT "
            + json.dumps(
                {
                    "device": device_name,
                    "ranks": hvd.size(),
                    "config": cfg,
                    "peak_bf16_tflops_per_device": peak,
                    "nccl_built": bool(hvd.nccl_built()),
                    "flops_per_sample": flops,
                    "loaders": results,
                    "tensor_bytes": tensor_bytes,
                }
            ),
            flush=True,
        )
    hvd.shutdown()


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
    w, b, ar = result["loaders"]["per_row_loader"], result["loaders"]["batch_loader"], result["allreduce"]

    def mfu(r: dict[str, Any]) -> str:
        return f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a (no bf16 peak for this device)"

    where = (
        f"{result['device']} x{result['ranks']}, MLP 64-{'-'.join(map(str, result['config']['hidden']))}-10, "
        f"batch {result['config']['batch_size']}/rank, bf16 autocast"
    )
    bw = (
        (
            f"{ar['busbw_gb_s'] or ar['algbw_gb_s']:.2f} GB/s ({ar['activity']}, median of {ar['allreduces']}, "
            f"{ar['median_bytes'] / 1e6:.1f} MB)"
        )
        if ar.get("allreduces")
        else "n/a (no allreduce in the timeline)"
    )
    return {
        "name": "gpu train step",
        "result": result,
        "rows": [
            {
                "figure": f"samples/s per-row loader / batch_loader (the worker's) ({where})",
                "value": f"{w['samples_per_s']:,.0f} / {b['samples_per_s']:,.0f}",
            },
            {
                "figure": "model FLOPs utilisation, per-row loader / batch_loader (the worker's)",
                "value": f"{mfu(w)} / {mfu(b)}",
            },
            {
                "figure": "fraction of step time waiting for input, per-row loader / batch_loader (the worker's)",
                "value": f"{w['input_wait_fraction']:.1%} / {b['input_wait_fraction']:.1%}",
            },
            {"figure": "allreduce bus bandwidth from the Horovod Timeline", "value": bw},
        ],
    }


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
    for row in result["rows"]:
        print(f"{row['figure']}: {row['value']}")
    print(json.dumps(result["result"], indent=1))


if __name__ == "__main__":
    main()
