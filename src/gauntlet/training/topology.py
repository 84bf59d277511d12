"""Where a Horovod run's ranks are: the hosts and slots it was launched on, and the host each rank
reported from itself.

The launch names its hosts as horovodrun's `-H host:slots,...` (GAUNTLET_HOROVOD_HOSTS), an MPI
hostfile (`host slots=N` lines, GAUNTLET_HOROVOD_HOSTFILE), or neither (every rank on this host).
Each rank logs one line `rank R of N on host H` as it starts; the train step reads those from the
launcher's output, so the record shows where the ranks really ran, not only where they were sent.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

from gauntlet.errors import BadInput

RANK_LINE = "rank %d of %d on host %s"
_RANK_LINE = re.compile(r"\brank (\d+) of (\d+) on host (\S+)")
_HOST = re.compile(r"[A-Za-z0-9_.\-]+")


def parse_hosts(text: str, setting: str = "GAUNTLET_HOROVOD_HOSTS") -> list[dict[str, Any]]:
    """`hostA:1,hostB:2` (a host without `:slots` has one slot) as [{"host", "slots"}]."""
    hosts: list[dict[str, Any]] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, _, slots = entry.partition(":")
        if not _HOST.fullmatch(name) or not (slots or "1").isdigit() or int(slots or "1") < 1:
            raise BadInput(f"{setting}: '{entry}' is not `host:slots` (e.g. hostA:1,hostB:1)")
        hosts.append({"host": name, "slots": int(slots or "1")})
    if not hosts:
        raise BadInput(f"{setting} names no host: give `host:slots` entries, e.g. hostA:1,hostB:1")
    return hosts


def parse_hostfile(path: str) -> list[dict[str, Any]]:
    """An MPI hostfile's `host slots=N` lines (OpenMPI's format; a line without slots has one)."""
    hosts: list[dict[str, Any]] = []
    for line in Path(path).read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        slots = next((f.partition("=")[2] for f in fields[1:] if f.startswith("slots=")), "1")
        hosts.append({"host": fields[0], "slots": int(slots)})
    return hosts


def launch_hosts(workers: int) -> tuple[str, list[dict[str, Any]]]:
    """How the ranks were placed (`hosts`, `hostfile` or `local`) and the hosts with their slots."""
    hosts, hostfile = os.environ.get("GAUNTLET_HOROVOD_HOSTS"), os.environ.get("GAUNTLET_HOROVOD_HOSTFILE")
    if hosts:
        return "hosts", parse_hosts(hosts)
    if hostfile:
        return "hostfile", parse_hostfile(hostfile)
    return "local", [{"host": socket.gethostname(), "slots": workers}]


def rank_host(text: str) -> tuple[int, str] | None:
    """The (rank, host) a rank's start line names, or None for any other line."""
    match = _RANK_LINE.search(text)
    return (int(match.group(1)), match.group(3)) if match else None


def describe(workers: int, rank_hosts: dict[int, str]) -> dict[str, Any]:
    """The record's topology: where the ranks were sent and where each one said it ran."""
    placement, hosts = launch_hosts(workers)
    ranks = [rank_hosts.get(rank) for rank in range(workers)]
    return {
        "placement": placement,
        "hosts": hosts,
        "rank_hosts": ranks,
        "distinct_hosts": len({host for host in ranks if host}),
    }
