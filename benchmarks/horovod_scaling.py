"""Horovod scaling (1 vs 2 ranks) as a share of the no-communication ceiling, and Horovod vs torch DDP,
on the pipeline's worker.

Both engines go through steps/train.py's own launchers (`horovodrun ... gauntlet.training.worker`,
or for `training.backend: ddp` `torchrun ... gauntlet.training.worker`, with the launch environment
the pipeline sets), reading a committed dataset from S3: the same data, model, per-rank batch, step
and clock, only the engine differs (training/backends.py).
Throughput is the worker's allreduced samples/s, median over the epochs after the first (warm-up)
and then over interleaved rounds (hvd-1, hvd-2, ddp-2, ceiling-1, ceiling-2, hvd-1, ...). The ceiling is
two independent single-thread processes running the worker's step with no communication at all;
each ratio is taken within a round and reported as the median and range over the rounds. Where a
Horovod step's time goes (compute, negotiation, each allreduce phase) is benchmarks/horovod_timeline.py's.

    python benchmarks/horovod_scaling.py [--quick] [--model mlp] [--rounds 3]
        [--candidate nofusion:HOROVOD_FUSION_THRESHOLD=0 ...]   # tuning experiments beside the worker
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import uuid
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import (
    ROOT,
    commit_training_dataset,
    fresh_store,
    interleaved,
    load_average,
    median,
    s3_server,
)

# Two models, each at 1 and 2 ranks. The target is taken on the pipeline's own model (the digits
# CNN of include/configs/digits.yaml) at a batch where compute dominates the gradient exchange:
# ~8 MFLOP a sample against 0.6 MB of gradients a step. The wide MLP is the hard case: 17 MB of
# gradients a step for ~13 GFLOP, so on 2 cores every byte allreduced costs a rank compute time.
MODELS = {
    "cnn": {
        "model": {"kind": "cnn", "image_shape": [8, 8], "channels": [32, 64], "hidden": [128]},
        "batch_size": 256,
    },
    "mlp": {"model": {"kind": "mlp", "hidden": [2048, 2048], "channels": [], "image_shape": []}, "batch_size": 512},
}
FULL = {"rows": 16_000, "epochs": 3, "rounds": 3, "ceiling_steps": 40, "models": ["cnn", "mlp"]}
QUICK = {"rows": 4_000, "epochs": 2, "rounds": 1, "ceiling_steps": 10, "models": ["cnn"]}
# The worker without its CPU thread scheduling (training/cpu_tuning.py): the plain recipe.
PLAIN_RECIPE = {"GAUNTLET_RANK_THREAD_SCHEDULING": "off"}


def params(cfg: dict[str, Any], model: str) -> dict[str, Any]:
    return {
        "model": MODELS[model]["model"],
        "epochs": cfg["epochs"],
        "patience": None,
        "seed": 0,
        "batch_size": MODELS[model]["batch_size"],
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "threads_per_worker": 1,
        "schedule": "constant",
    }


def _throughput(curve: list[dict[str, Any]]) -> float:
    steady = curve[1:] or curve  # the first epoch pays for allocation and the first allreduces
    return median([row["samples_per_s"] for row in steady])


def run_backend(
    store: str, dataset: str, ranks: int, p: dict[str, Any], backend: str, env: dict[str, str] | None = None
) -> float:
    """One training run through the train step's launcher for `backend`; its steady samples/s."""
    from gauntlet import layout, storage
    from gauntlet.steps import train

    experiment = layout.experiment_uri(store, f"bench-{uuid.uuid4().hex[:10]}")
    params = {**p, **({"backend": backend} if backend != train.HOROVOD else {})}  # as training_params names it
    args = ["--dataset", dataset, "--experiment", experiment, "--params", json.dumps(params)]
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the worker's epoch lines; figures come from S3
            train.launch(backend, ranks, args)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return _throughput(storage.get_json(layout.worker_report_uri(experiment))["curve"])


def run_horovod(store: str, dataset: str, ranks: int, p: dict[str, Any], env: dict[str, str] | None = None) -> float:
    return run_backend(store, dataset, ranks, p, "horovod", env)


def run_ddp(store: str, dataset: str, ranks: int, p: dict[str, Any]) -> float:
    return run_backend(store, dataset, ranks, p, "ddp")


_CEILING = """
import json, sys, torch
from gauntlet.training.loop import train_epoch
from gauntlet.training.model import build_model
torch.set_num_threads(1)
spec, batch, steps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pre = {"features": list(range(64)), "mean": [0.0] * 64, "scale": [1.0] * 64}
model = build_model(spec, pre, 10)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x, y = torch.rand(batch, 64), torch.randint(0, 10, (batch,))
cpu = torch.device("cpu")
train_epoch(model, opt, [(x, y)] * 2, cpu)  # warm-up
totals = train_epoch(model, opt, [(x, y)] * steps, cpu)
print(totals.seen / totals.seconds)
"""


def compute_ceiling(p: dict[str, Any], processes: int, steps: int) -> float:
    """Samples/s of `processes` independent single-thread copies of the worker's step (train_epoch), with
    no communication at all: what this machine's cores give two ranks before any allreduce (shared
    caches, memory, neighbours)."""
    args = [sys.executable, "-c", _CEILING, json.dumps(p["model"]), str(p["batch_size"]), str(steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    running = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env) for _ in range(processes)]
    return sum(float(proc.communicate()[0].strip().splitlines()[-1]) for proc in running)


def describe(model: str, cfg: dict[str, Any]) -> str:
    spec, batch = MODELS[model]["model"], MODELS[model]["batch_size"]
    layers = "-".join(map(str, spec["hidden"]))
    shape = (
        f"CNN conv {'-'.join(map(str, spec['channels']))}, fc {layers}"
        if spec["kind"] == "cnn"
        else f"MLP 64-{layers}-10"
    )
    return f"{shape}, batch {batch}/rank, {cfg['rows']} rows"


def spread(values: list[float]) -> str:
    """Median and range over the rounds, e.g. '0.97 (0.95-0.99, 3 rounds)'."""
    if len(values) == 1:
        return f"{values[0]:.2f} (1 round)"
    return f"{median(values):.2f} ({min(values):.2f}-{max(values):.2f}, {len(values)} rounds)"


def per_round(figures: dict[str, list[float]]) -> dict[str, list[float]]:
    """The ratios of each round, from that round's variants alone (a round shares one load)."""
    out: dict[str, list[float]] = {"scaling": [], "ceiling": [], "share": [], "versus_ddp": []}
    for h1, h2, d2, c1, c2 in zip(
        figures["horovod_1"],
        figures["horovod_2"],
        figures["ddp_2"],
        figures["compute_1"],
        figures["compute_2"],
        strict=True,
    ):
        out["scaling"].append(h2 / h1)
        out["ceiling"].append(c2 / c1)
        out["share"].append((h2 / h1) / (c2 / c1))
        out["versus_ddp"].append(h2 / d2)
    for name in figures:
        if name.startswith("horovod_2_"):  # a tuning candidate or the plain recipe, against the worker
            out[f"{name} / horovod_2"] = [c / h for c, h in zip(figures[name], figures["horovod_2"], strict=True)]
    return out


def model_rows(model: str, cfg: dict[str, Any], figures: dict[str, list[float]]) -> list[dict[str, Any]]:
    """The table rows of one model. The share of the ceiling is Horovod's 2-rank / 1-rank scaling over
    the no-communication processes' 2 / 1 scaling, round by round: the machine's load moves both alike."""
    m = {k: median(v) for k, v in figures.items()}
    r = per_round(figures)
    share, versus = median(r["share"]), median(r["versus_ddp"])
    rows: list[dict[str, Any]] = [
        {
            "figure": f"samples/s 1 rank / 2 ranks / DDP 2 ranks ({describe(model, cfg)})",
            "value": f"{m['horovod_1']:.0f} / {m['horovod_2']:.0f} / {m['ddp_2']:.0f}",
        },
        {
            "figure": f"{model}: Horovod 2-rank / 1-rank scaling, against the ceiling (2 independent processes / 1)",
            "value": f"{spread(r['scaling'])} against {spread(r['ceiling'])}",
        },
        {
            "figure": f"{model}: Horovod 2-rank scaling as a share of the no-communication ceiling",
            "value": spread(r["share"]),
            "target": ">= 0.95",
            "met": share >= 0.95,
        },
        {
            "figure": f"{model}: Horovod / DDP throughput (2 ranks, same global batch)",
            "value": spread(r["versus_ddp"]) + "x",
            "target": ">= 1.0x",
            "met": versus >= 1.0,
        },
        {
            "figure": f"{model}: DDP scaling, 2-rank DDP / 1-rank Horovod",
            "value": f"{m['ddp_2'] / m['horovod_1']:.2f}x",
        },
    ]
    for name, ratios in r.items():
        if name.startswith("horovod_2_plain"):
            rows.append(
                {
                    "figure": f"{model}: worker with its rank-thread scheduling / plain Horovod recipe (2 ranks)",
                    "value": spread([1 / x for x in ratios]) + "x",
                }
            )
        elif name.startswith("horovod_2_"):
            rows.append({"figure": f"{model}: {name}", "value": spread(ratios) + "x"})
    return rows


def bench(
    quick: bool = False,
    models: list[str] | None = None,
    rounds: int | None = None,
    candidates: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Every variant of each model in interleaved rounds; `candidates` adds 2-rank Horovod runs with
    extra launch environment (tuning experiments: HOROVOD_FUSION_THRESHOLD, HOROVOD_CYCLE_TIME, ...)."""
    cfg = {**(QUICK if quick else FULL)}
    cfg["models"] = models or cfg["models"]
    cfg["rounds"] = rounds or cfg["rounds"]
    load_before = load_average()
    figures: dict[str, dict[str, list[float]]] = {}
    with s3_server():
        store = fresh_store("hvd")
        dataset = commit_training_dataset(store, cfg["rows"])
        for model in cfg["models"]:
            p = params(cfg, model)
            variants = {
                "horovod_1": lambda p=p: run_horovod(store, dataset, 1, p),
                "horovod_2": lambda p=p: run_horovod(store, dataset, 2, p),
                "ddp_2": lambda p=p: run_ddp(store, dataset, 2, p),
                "compute_1": lambda p=p: compute_ceiling(p, 1, cfg["ceiling_steps"]),
                "compute_2": lambda p=p: compute_ceiling(p, 2, cfg["ceiling_steps"]),
            }
            if model == "mlp" and not quick:  # where the gradient exchange competes with compute the most
                variants["horovod_2_plain"] = lambda p=p: run_horovod(store, dataset, 2, p, PLAIN_RECIPE)
            for name, env in (candidates or {}).items():
                variants[f"horovod_2_{name}"] = lambda p=p, env=env: run_horovod(store, dataset, 2, p, env)
            figures[model] = interleaved(variants, cfg["rounds"])
    rows = []
    for model in cfg["models"]:
        rows += model_rows(model, cfg, figures[model])
    return {
        "name": "horovod",
        "config": {**cfg, "models": {m: describe(m, cfg) for m in cfg["models"]}},
        "samples_per_s": figures,
        "load_average": [load_before, load_average()],
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", action="append", choices=sorted(MODELS), help="only these models")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default: the configuration's)")
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE[,KEY=VALUE]",
        help="a 2-rank Horovod variant with extra launch environment, e.g. nofusion:HOROVOD_FUSION_THRESHOLD=0",
    )
    args = parser.parse_args()
    candidates = {
        name: dict(item.split("=", 1) for item in spec.split(","))
        for name, spec in (c.split(":", 1) for c in args.candidate)
    }
    result = bench(args.quick, args.model, args.rounds, candidates)
    print(f"load average {result['load_average'][0]} -> {result['load_average'][1]}")
    for row in result["rows"]:
        print(f"{row['figure']}: {row['value']}  (target {row.get('target', '-')})")
    print("per round:", json.dumps(result["samples_per_s"]))


if __name__ == "__main__":
    main()
