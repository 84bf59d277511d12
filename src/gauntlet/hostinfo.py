"""Where a step runs: host name and, inside a container, the container's id.

Logged once at the start of every step, so a task log shows which container (or pod) did the work.
With host networking a container shares the host's name, so the id is read from what the runtime
mounts into the container rather than from the host name.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

# Docker mounts /etc/hostname from /var/lib/docker/containers/<id>/; cgroup paths of Docker and
# containerd (Kubernetes) end in docker-<id>.scope, cri-containerd-<id>.scope or /<id>.
_MOUNT_ID = re.compile(r"/containers/([0-9a-f]{64})/")
_CGROUP_ID = re.compile(r"(?:docker-|cri-containerd-|crio-|/)([0-9a-f]{64})(?:\.scope)?\s*$")


def container_id(proc: Path = Path("/proc/self")) -> str | None:
    """The 64-hex id of the container this process runs in, or None outside a container."""
    for name, pattern in (("mountinfo", _MOUNT_ID), ("cgroup", _CGROUP_ID)):
        try:
            text = (proc / name).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if name == "mountinfo" and " /etc/hostname " not in line:
                continue
            match = pattern.search(line)
            if match:
                return match.group(1)
    return None


def describe() -> str:
    """One line for the log: host, container id (if any) and the image digest the runtime passed."""
    parts = [f"host {socket.gethostname()}"]
    cid = container_id()
    parts.append(f"container {cid}" if cid else "no container")
    if os.environ.get("GAUNTLET_IMAGE_DIGEST"):
        parts.append(f"image {os.environ['GAUNTLET_IMAGE_DIGEST']}")
    return ", ".join(parts)
