"""AWS keys for Horovod ranks without putting them on a command line.

horovodrun starts every rank as `env K=V ... python ...` (through `sh -c`, and inside an ssh command
for other hosts), so each variable of its environment is readable in /proc/<pid>/cmdline by any
user of the machine. The keys therefore leave that environment: they go into a credentials file
only the user can read (AWS_SHARED_CREDENTIALS_FILE, under the same profile the keys stood for),
copied over ssh's stdin to the other hosts of a hostfile, and removed when training ends. Without
keys in the environment (an instance or pod role) nothing changes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gauntlet.logs import get_logger
from gauntlet.training import topology

log = get_logger("gauntlet.credentials")

AWS_KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_FILE_KEYS = {
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
}
# horovodrun's own ssh options (horovod.runner.util.remote.SSH_COMMAND_PREFIX), and a bound on
# connecting: removing the file from a host that died mid-run must not hold up the step's failure.
_SSH = ["ssh", "-o", "PasswordAuthentication=no", "-o", "StrictHostKeyChecking=no", "-o", "ConnectTimeout=5"]


@dataclass(frozen=True)
class SshSettings:
    """How horovodrun reaches the other hosts: a non-root sshd's port, the run's private key."""

    port: str | None = None
    identity: str | None = None

    def options(self) -> list[str]:
        return [*(["-p", self.port] if self.port else []), *(["-i", self.identity] if self.identity else [])]


def credentials_text(env: dict[str, str]) -> str:
    """The shared-credentials file for the keys in `env`, under the profile boto3 would use."""
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    lines = [f"[{profile}]", *(f"{_FILE_KEYS[k]} = {env[k]}" for k in AWS_KEY_VARIABLES if env.get(k))]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def rank_environment(
    env: dict[str, str], remote_hosts: list[str], ssh: SshSettings | None = None
) -> Iterator[dict[str, str]]:
    """`env` for horovodrun with the AWS keys moved into a user-only file (on every rank's host)."""
    if not (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")):
        # No usable key pair: the ranks use the instance or pod role; no stray key goes on a command line.
        yield {k: v for k, v in env.items() if k not in AWS_KEY_VARIABLES}
        return
    folder = Path(tempfile.mkdtemp(prefix="gauntlet-aws-"))  # mode 0700
    path = folder / "credentials"
    text = credentials_text(env)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        for host in remote_hosts:
            _ssh(host, ssh or SshSettings(), f"umask 077 && mkdir -p {folder} && cat > {path}", text)
        ranks = {k: v for k, v in env.items() if k not in AWS_KEY_VARIABLES}
        yield {**ranks, "AWS_SHARED_CREDENTIALS_FILE": str(path)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        for host in remote_hosts:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                _ssh(host, ssh or SshSettings(), f"rm -rf {folder}", "")


def _ssh(host: str, ssh: SshSettings, command: str, stdin: str) -> None:
    """Run `command` on `host`; the secret travels on stdin, never in an argument."""
    result = subprocess.run(
        [*_SSH, *ssh.options(), host, command], input=stdin, text=True, capture_output=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"could not place the ranks' credentials file on {host}: {result.stderr.strip()[-500:]}")


def remote_hosts(hostfile: str | None, hosts: str | None = None) -> list[str]:
    """The hosts of a hostfile or of horovodrun's `-H host:slots,...` that are not this machine
    (horovodrun reaches those over ssh)."""
    if not (hostfile or hosts):
        return []
    from horovod.runner.util import network

    placed = topology.parse_hosts(hosts) if hosts else topology.parse_hostfile(str(hostfile))
    names = [entry["host"] for entry in placed]
    local = network.get_local_host_addresses()
    return [name for name in dict.fromkeys(names) if network.resolve_host_address(name) not in local]
