"""gauntlet.hostinfo: which host and container a step ran in, for the task log."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gauntlet import hostinfo

CID = "ab" * 32


def _proc(tmp_path: Path, mountinfo: str = "", cgroup: str = "") -> Path:
    if mountinfo:
        (tmp_path / "mountinfo").write_text(mountinfo)
    if cgroup:
        (tmp_path / "cgroup").write_text(cgroup)
    return tmp_path


def test_the_id_comes_from_the_hostname_mount_docker_makes(tmp_path: Path) -> None:
    line = f"612 590 8:1 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
    other = f"613 590 8:1 /var/lib/docker/containers/{'cd' * 32}/hosts /etc/hosts rw - ext4 /dev/sda1 rw\n"
    assert hostinfo.container_id(_proc(tmp_path, mountinfo=other + line)) == CID


@pytest.mark.parametrize(
    "cgroup",
    [
        f"0::/system.slice/docker-{CID}.scope\n",
        f"0::/kubepods/besteffort/pod1/cri-containerd-{CID}.scope\n",
        f"12:cpu:/docker/{CID}\n",
    ],
)
def test_the_id_comes_from_the_cgroup_path_when_no_mount_names_it(tmp_path: Path, cgroup: str) -> None:
    assert hostinfo.container_id(_proc(tmp_path, mountinfo="1 0 8:1 / / rw\n", cgroup=cgroup)) == CID


def test_outside_a_container_there_is_no_id(tmp_path: Path) -> None:
    assert hostinfo.container_id(_proc(tmp_path, cgroup="0::/user.slice/user-1000.slice/session-2.scope\n")) is None
    assert hostinfo.container_id(tmp_path / "missing") is None  # unreadable /proc files are not an error


def test_describe_names_the_host_and_the_image_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_IMAGE_DIGEST", "sha256:feed")
    line = hostinfo.describe()
    assert line.startswith(f"host {socket.gethostname()}, ")
    assert line.endswith(", image sha256:feed")
    monkeypatch.delenv("GAUNTLET_IMAGE_DIGEST")
    assert "image" not in hostinfo.describe()
