"""train: run one experiment under Horovod (or DDP), or report the cache hit if it was already run.

The experiment key hashes (protocol id, dataset version, training params, code version). With a
RECORD.json under experiments/<key>/ the work is done and nothing trains. Otherwise `horovodrun`
(or, for `training.backend: ddp`, `torchrun`) starts N worker processes (training/worker.py); their
rank-0 lines stream into this process's log as they happen, warnings from any rank keep their rank
prefix. RECORD.json is written last.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from gauntlet import experiments, layout, lease, mlflow_mirror, preflight, storage
from gauntlet.config import BACKENDS, PRECISIONS, PipelineConfig
from gauntlet.errors import BadInput, PreconditionFailed, TrainingFailed
from gauntlet.hashing import TRAINING_CODE, code_version
from gauntlet.logs import get_logger
from gauntlet.protocol import Protocol, off_protocol_reason
from gauntlet.scoring import compare
from gauntlet.training import credentials, topology

log = get_logger("gauntlet.train")

# horovodrun prefixes every line with "[<rank>]<stdout>:" or "[<rank>]<stderr>:"; torchrun with the
# template below, "[<rank>]:".
_RANK_PREFIX = re.compile(r"^\[(\d+)\](<stdout>|<stderr>)?:(.*)$")
_TORCHRUN_PREFIX = "[${rank}]:"
# A dead rank must end the job, not hang it: Gloo gives up on a silent peer after this long.
DEFAULT_GLOO_TIMEOUT_S = 60
HOROVOD, DDP = BACKENDS
# The last curve row's values a record keeps as "final" (the rmse pair only in regression rows).
FINAL_KEYS = ("train_loss", "train_error", "dev_loss", "dev_error", "train_rmse", "dev_rmse")


def training_params(config: PipelineConfig, protocol: Protocol, workers: int | None = None) -> dict[str, Any]:
    t = config.training
    return {
        "model": config.model.spec(),
        "epochs": t.epochs if t.epochs is not None else protocol.epochs,
        "patience": protocol.patience,  # None: fixed budget; else "epochs" is the until-plateau cap
        "seed": protocol.seed,
        "batch_size": t.batch_size,
        "lr": t.lr,
        "momentum": t.momentum,
        "weight_decay": t.weight_decay,
        "workers": workers or t.workers,
        "threads_per_worker": t.threads_per_worker,
        "schedule": t.schedule,
        # Only a non-default engine is named, so every Horovod experiment keeps the key it had.
        **({"backend": t.backend} if t.backend != HOROVOD else {}),
        **({"precision": t.precision} if t.precision != PRECISIONS[0] else {}),  # likewise fp32
    }


def horovod_hosts(workers: int) -> list[str]:
    """Where ranks run: this machine, the hosts of a hostfile (an MPIJob's /etc/mpi/hostfile), or
    GAUNTLET_HOROVOD_HOSTS (`hostA:1,hostB:1`, horovodrun's -H).

    Ranks on other hosts are started over ssh: GAUNTLET_HOROVOD_SSH_PORT names a non-root sshd's port,
    GAUNTLET_HOROVOD_SSH_IDENTITY the run's private key, GAUNTLET_HOROVOD_IFACE the interface the
    ranks reach each other on (else horovodrun probes every host for common routed interfaces).
    """
    hostfile, hosts = os.environ.get("GAUNTLET_HOROVOD_HOSTFILE"), os.environ.get("GAUNTLET_HOROVOD_HOSTS")
    if not (hostfile or hosts):
        return ["-H", f"localhost:{workers}"]
    if hostfile and hosts:
        raise BadInput(
            f"both GAUNTLET_HOROVOD_HOSTFILE ({hostfile}) and GAUNTLET_HOROVOD_HOSTS ({hosts}) name the hosts "
            "of the ranks: unset one of them"
        )
    slots = sum(entry["slots"] for entry in topology.parse_hosts(hosts)) if hosts else workers
    if slots < workers:
        raise BadInput(
            f"GAUNTLET_HOROVOD_HOSTS ({hosts}) offers {slots} slots for {workers} Horovod workers: "
            "add hosts or slots (`host:slots`), or lower training.workers"
        )
    ssh_port = os.environ.get("GAUNTLET_HOROVOD_SSH_PORT")
    identity = os.environ.get("GAUNTLET_HOROVOD_SSH_IDENTITY")
    iface = os.environ.get("GAUNTLET_HOROVOD_IFACE")
    return [
        *(["--hostfile", hostfile] if hostfile else ["-H", str(hosts)]),
        *(["--ssh-port", ssh_port] if ssh_port else []),
        *(["--ssh-identity-file", identity] if identity else []),
        *(["--network-interface", iface] if iface else []),
    ]


def horovod_command(workers: int, worker_args: list[str]) -> list[str]:
    horovodrun = shutil.which("horovodrun", path=os.path.dirname(sys.executable)) or "horovodrun"
    return [
        horovodrun,
        "-np",
        str(workers),
        *horovod_hosts(workers),
        "--gloo",
        "--gloo-timeout-seconds",
        str(int(os.environ.get("GAUNTLET_GLOO_TIMEOUT_S", DEFAULT_GLOO_TIMEOUT_S))),
        sys.executable,
        "-m",
        "gauntlet.training.worker",
        *worker_args,
    ]


def _stream(process: subprocess.Popen[str], tail: list[str], rank_hosts: dict[int, str] | None = None) -> None:
    """Relay rank 0's lines, each rank's host line, and warnings or errors from any rank, into this
    process's log; the host each rank says it runs on goes into `rank_hosts`."""
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.rstrip("\n")
        tail.append(line)
        del tail[:-40]
        match = _RANK_PREFIX.match(line)
        if match is None:
            print(line, flush=True)
            continue
        rank, _, text = match.groups()
        placed = topology.rank_host(text)
        if placed is not None and rank_hosts is not None:
            rank_hosts[placed[0]] = placed[1]
        if rank == "0" and " INFO " in text:
            print(text, flush=True)
        elif placed is not None or any(level in text for level in (" WARNING ", " ERROR ", "Traceback", "Error")):
            print(f"[rank {rank}] {text}", flush=True)


def run_horovod(workers: int, worker_args: list[str], rank_hosts: dict[int, str] | None = None) -> float:
    """horovodrun to the end; the host each rank reported lands in `rank_hosts` when given."""
    command = horovod_command(workers, worker_args)
    env = {
        **os.environ,
        "HOROVOD_GLOO_TIMEOUT_SECONDS": os.environ.get("GAUNTLET_GLOO_TIMEOUT_S", str(DEFAULT_GLOO_TIMEOUT_S)),
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    if os.environ.get("GAUNTLET_HOROVOD_IFACE"):
        # Gloo's own sockets on the interface the hosts share (horovodrun sets it too; explicit here
        # so a rank never binds a container's other interfaces).
        env["HOROVOD_GLOO_IFACE"] = os.environ["GAUNTLET_HOROVOD_IFACE"]
    log.info("launching: %s", " ".join(command[: command.index(sys.executable)]) + " ... gauntlet.training.worker")
    # horovodrun puts its whole environment on each rank's command line: keys travel in a file instead.
    hosts = credentials.remote_hosts(
        os.environ.get("GAUNTLET_HOROVOD_HOSTFILE"), os.environ.get("GAUNTLET_HOROVOD_HOSTS")
    )
    ssh = credentials.SshSettings(
        os.environ.get("GAUNTLET_HOROVOD_SSH_PORT"), os.environ.get("GAUNTLET_HOROVOD_SSH_IDENTITY")
    )
    with credentials.rank_environment(env, hosts, ssh) as rank_env:
        return _launch("horovodrun", command, rank_env, rank_hosts)


def torchrun_command(workers: int, worker_args: list[str], log_dir: str) -> list[str]:
    """torchrun on this host: a standalone rendezvous (its own store on a free port) with rank 0's
    address on loopback, no restarts (a retry is the orchestrator's), each rank's output teed with
    its rank prefix."""
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    return [
        torchrun,
        "--standalone",
        "--local-addr",
        "127.0.0.1",
        "--nproc-per-node",
        str(workers),
        "--max-restarts",
        "0",
        "--tee",
        "3",
        "--log-dir",
        log_dir,
        "-m",
        "gauntlet.training.worker",
        *worker_args,
    ]


def run_torchrun(workers: int, worker_args: list[str], rank_hosts: dict[int, str] | None = None) -> float:
    """The ddp backend's launch. torchrun hands its environment to the ranks directly (never on a
    command line), so the AWS keys stay where they are."""
    env = {
        **os.environ,
        "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": _TORCHRUN_PREFIX,
        "GAUNTLET_GLOO_TIMEOUT_S": os.environ.get("GAUNTLET_GLOO_TIMEOUT_S", str(DEFAULT_GLOO_TIMEOUT_S)),
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        # Gloo's and NCCL's own sockets on loopback too, like the rendezvous.
        "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo"),
        "NCCL_SOCKET_IFNAME": os.environ.get("NCCL_SOCKET_IFNAME", "lo"),
    }
    with tempfile.TemporaryDirectory(prefix="gauntlet-torchrun-") as log_dir:
        command = torchrun_command(workers, worker_args, log_dir)
        log.info("launching: %s", " ".join(command[:6]) + f" {workers} ... gauntlet.training.worker")
        return _launch("torchrun", command, env, rank_hosts)


def _launch(launcher: str, command: list[str], env: dict[str, str], rank_hosts: dict[int, str] | None = None) -> float:
    """Run a launcher to the end, relaying its ranks' lines; its wall time, or TrainingFailed."""
    started = time.perf_counter()
    tail: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
        _stream(process, tail, rank_hosts)
        code = process.wait()
    if code != 0:
        raise TrainingFailed(f"{launcher} exited with {code}; last lines:\n" + "\n".join(tail[-15:]))
    return time.perf_counter() - started


def launch(backend: str, workers: int, worker_args: list[str], rank_hosts: dict[int, str] | None = None) -> float:
    """Start the worker's ranks under the run's engine; the launch's wall time (the host each rank
    reported lands in `rank_hosts` when given)."""
    if backend == DDP:
        return run_torchrun(workers, worker_args, rank_hosts)
    return run_horovod(workers, worker_args, rank_hosts)


def _require_launchable(backend: str) -> None:
    """torchrun starts ranks on this host only; an MPIJob's hostfile is Horovod's to use."""
    for setting in ("GAUNTLET_HOROVOD_HOSTFILE", "GAUNTLET_HOROVOD_HOSTS"):
        hosts = os.environ.get(setting)
        if backend == DDP and hosts:
            raise BadInput(
                f"training.backend ddp starts its ranks on this host only, but {setting} ({hosts}) asks for "
                f"ranks across hosts (an MPIJob launcher): set training.backend=horovod for a multi-host run, "
                f"or unset {setting}"
            )


def _require_protocol_split(dataset_uri: str, manifest: dict[str, Any], protocol: Protocol) -> None:
    """Refuse a dataset split under another protocol's split: its dev and test rows are not this protocol's."""
    recorded = manifest.get("protocol_split")
    differs = compare.split_difference(recorded, compare.protocol_split(protocol))
    if differs:
        raise BadInput(
            f"dataset {dataset_uri} was split with {compare.describe_split(recorded)}, but protocol {protocol.name} "
            f"({protocol.id}) splits with {compare.describe_split(compare.protocol_split(protocol))} (differs in "
            f"{', '.join(differs)}): a model trained on it would be scored on rows it trained on. Run preprocess "
            "under this protocol (same --protocol) and train on the dataset it commits"
        )


def run(
    config: PipelineConfig, protocol: Protocol, store: str, dataset_uri: str, workers: int | None = None
) -> dict[str, Any]:
    dataset_manifest = storage.read_manifest(dataset_uri)
    _require_protocol_split(dataset_uri, dataset_manifest, protocol)
    params = training_params(config, protocol, workers)
    off_protocol = off_protocol_reason(params, protocol)
    if off_protocol:
        log.warning("%s: the experiment is kept and reported, but never promoted", off_protocol)
    parts = experiments.key_parts(
        protocol.id, dataset_manifest["version"], params, code_version(TRAINING_CODE), experiments.runtime()
    )
    key = experiments.experiment_key(parts)
    experiment_uri = layout.experiment_uri(store, key)

    record = experiments.find_record(experiment_uri)
    if record is not None:
        log.info(
            "cache hit: experiment %s already ran (finished %s); record at %s; not training again",
            key,
            record["finished"],
            layout.record_uri(experiment_uri),
        )
        mlflow_mirror.mirror_experiment(record, protocol.name)  # back-fills a run an earlier mirror missed
        return _outputs(experiment_uri, record, cache_hit=True)
    explanation = experiments.explain_miss(parts, experiments.list_records(store))
    log.info("cache miss: experiment %s is new%s", key, f"; {explanation}" if explanation else "")
    _require_launchable(params.get("backend", HOROVOD))
    estimate = _preflight(config, params, dataset_uri)

    # An overlapping run (a backfill beside the nightly run) may be training this very key: one
    # holds the lease and trains, the other waits for its RECORD instead of writing the same prefix.
    claim, record = lease.claim_or_wait(
        layout.lease_uri(experiment_uri),
        lambda: experiments.find_record(experiment_uri),
        lease.new_owner(key),
    )
    if claim is None:
        assert record is not None
        log.info("experiment %s was trained by a concurrent run meanwhile; using its record", key)
        return _outputs(experiment_uri, record, cache_hit=True)
    try:
        return _train(config, protocol, dataset_uri, dataset_manifest, params, parts, key, experiment_uri, estimate)
    finally:
        claim.release()  # a failed attempt lets its retry (or another run) take over at once


def _train(
    config: PipelineConfig,
    protocol: Protocol,
    dataset_uri: str,
    dataset_manifest: dict[str, Any],
    params: dict[str, Any],
    parts: dict[str, Any],
    key: str,
    experiment_uri: str,
    estimate: dict[str, Any],
) -> dict[str, Any]:
    started_at = dt.datetime.now(dt.UTC)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    rank_hosts: dict[int, str] = {}
    wall = launch(
        params.get("backend", HOROVOD),
        params["workers"],
        ["--dataset", dataset_uri, "--experiment", experiment_uri, "--params", json.dumps(params)],
        rank_hosts,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    worker = storage.get_json(layout.worker_report_uri(experiment_uri))
    hardware = experiments.hardware()
    gpu_seconds = wall * worker["world_size"] if worker["device"] == "cuda" else 0.0
    final = worker["curve"][-1]
    record = {
        "key": key,
        "key_parts": parts,
        "uri": experiment_uri,
        "params": params,
        "config": config.raw,
        "dataset_uri": dataset_uri,
        "dataset_version": dataset_manifest["version"],
        "protocol_id": protocol.id,
        "code_version": parts["code"],
        "image_digest": os.environ.get("GAUNTLET_IMAGE_DIGEST"),
        "hardware": {**hardware, "world_size": worker["world_size"], "device": worker["device"]},
        "backend": worker.get("backend", HOROVOD),
        "precision": worker.get("precision", PRECISIONS[0]),
        "input": worker.get("input"),  # where the rows sat, and the share of step time spent waiting for them
        # Where the ranks ran; not part of the key: the same ranks on one host or several compute the same.
        "topology": topology.describe(params["workers"], rank_hosts),
        "started": started_at.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "gpu_seconds": round(gpu_seconds, 3),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),  # largest single child process
        "cost_usd": experiments.estimate_cost(cpu_seconds, gpu_seconds, hardware["gpu_model"]),
        "curve": worker["curve"],
        "final": {k: final[k] for k in FINAL_KEYS if k in final},
        # What train_error/dev_error hold: the error rate, or the RMSE for regression (then also train_rmse/dev_rmse).
        "task": worker.get("task", "classification"),
        "curve_metric": worker.get("curve_metric", "error_rate"),
        "samples_per_s": sum(r["samples_per_s"] for r in worker["curve"]) / len(worker["curve"]),
        "model_uri": layout.model_uri(experiment_uri),
        "model_sha256": worker["model_sha256"],
        "rank_parameter_digests": worker["rank_parameter_digests"],
        "resumed_from_epoch": worker.get("resumed_from_epoch"),
        "epochs_run": worker.get("epochs_run", len(worker["curve"])),
        "stopped_early": worker.get("stopped_early", False),
        # A run off the protocol's budget is kept and reported, never promoted (the gate fails it).
        "off_protocol": off_protocol_reason(params, protocol) is not None,
        "off_protocol_reason": off_protocol_reason(params, protocol),
    }
    record["preflight"] = _preflight_against_actual(estimate, record)
    try:
        storage.put_json(layout.record_uri(experiment_uri), record, if_none_match=True)
    except PreconditionFailed:
        log.info("experiment %s was recorded by a concurrent run first; keeping theirs", key)
        record = storage.get_json(layout.record_uri(experiment_uri))
    log.info(
        "experiment %s recorded: dev_%s=%.4f, %.1fs wall, %.1f CPU-s, $%.6f, %d ranks",
        key,
        "rmse" if record.get("curve_metric") == "rmse" else "error",
        record["final"]["dev_error"],
        record["wall_seconds"],
        record["cpu_seconds"],
        record["cost_usd"],
        record["hardware"]["world_size"],
    )
    mlflow_mirror.mirror_experiment(record, protocol.name)  # when configured; a failure is only a warning
    return _outputs(experiment_uri, record, cache_hit=False)


def _preflight(config: PipelineConfig, params: dict[str, Any], dataset_uri: str) -> dict[str, Any]:
    """The run's compute estimate, stated before any rank starts; over training.max_hours or
    training.max_cost it is a refusal (OverBudget), with nothing written."""
    estimate = preflight.estimate(params, dataset_uri)
    log.info("%s", preflight.describe(estimate))
    preflight.enforce(estimate, config.training)
    return estimate


def _preflight_against_actual(estimate: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The estimate with the run's actual wall time and cost beside it, for the record."""
    found = preflight.with_actual(estimate, record["wall_seconds"], record["cost_usd"])
    ratio = found["actual_over_estimate"]
    log.info(
        "preflight estimate vs actual: %.1fs vs %.1fs wall (actual/estimate %s), $%.6f vs $%.6f (%s)",
        estimate["wall_seconds"],
        record["wall_seconds"],
        ratio["wall_seconds"],
        estimate["cost_usd"],
        record["cost_usd"],
        ratio["cost_usd"],
    )
    return found


def _outputs(experiment_uri: str, record: dict[str, Any], cache_hit: bool) -> dict[str, Any]:
    return {
        "experiment_uri": experiment_uri,
        "key": record["key"],
        "cache_hit": cache_hit,
        "dev_error": record["final"]["dev_error"],
        "curve_metric": record.get("curve_metric", "error_rate"),
        "wall_seconds": record["wall_seconds"],
    }
