"""steps.train: the params an experiment trains with, and the horovodrun command line."""

from __future__ import annotations

import pytest

from gauntlet.config import load_config, resolve
from gauntlet.protocol import load_protocol
from gauntlet.steps import train

CONFIG = "include/configs/digits.yaml"


def test_training_params_take_the_protocols_epochs_unless_overridden() -> None:
    config = load_config(resolve(CONFIG))
    protocol = load_protocol(resolve(config.protocol))
    params = train.training_params(config, protocol)
    assert config.training.epochs is None and params["epochs"] == protocol.epochs
    assert (params["seed"], params["patience"]) == (protocol.seed, protocol.patience)
    overridden = train.training_params(load_config(resolve(CONFIG), ["training.epochs=2"]), protocol, workers=3)
    assert (overridden["epochs"], overridden["workers"]) == (2, 3)


def test_horovod_command_carries_no_aws_key_values(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"AWS_ACCESS_KEY_ID": "AKIAUNITCANARY", "AWS_SECRET_ACCESS_KEY": "unit-secret-canary"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GAUNTLET_HOROVOD_HOSTFILE", raising=False)
    command = train.horovod_command(2, ["--dataset", "s3://b/d", "--experiment", "s3://b/e", "--params", "{}"])
    assert not [arg for arg in command if any(value in arg for value in secrets.values())]
    assert command[1:4] == ["-np", "2", "-H"] and "localhost:2" in command
    assert command[command.index("-m") + 1] == "gauntlet.training.worker" and command[-2:] == ["--params", "{}"]


def test_horovod_command_uses_the_hostfile_and_ssh_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_HOROVOD_HOSTFILE", "/etc/mpi/hostfile")
    monkeypatch.setenv("GAUNTLET_HOROVOD_SSH_PORT", "2222")
    monkeypatch.setenv("GAUNTLET_GLOO_TIMEOUT_S", "15")
    command = train.horovod_command(4, [])
    joined = " ".join(command)
    assert "--hostfile /etc/mpi/hostfile --ssh-port 2222" in joined and "-H" not in command
    assert "--gloo-timeout-seconds 15" in joined


def test_rank_lines_are_relayed_with_rank_zeros_info_and_every_ranks_warnings_prefixed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import subprocess

    lines = [
        "[0]<stdout>:12:00:00 INFO gauntlet.worker: epoch 1/2 train_loss=0.5",
        "[1]<stdout>:12:00:00 INFO gauntlet.worker: epoch 1/2 train_loss=0.5",
        "[1]<stderr>:12:00:01 WARNING gauntlet.worker: slow batch",
        "[0]:12:00:02 ERROR gauntlet.worker: boom",  # torchrun's prefix
        "launcher line",
    ]
    process = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None
    process.stdin.write("\n".join(lines) + "\n")
    process.stdin.close()
    tail: list[str] = []
    train._stream(process, tail)
    process.wait()
    assert capsys.readouterr().out.splitlines() == [
        "12:00:00 INFO gauntlet.worker: epoch 1/2 train_loss=0.5",
        "[rank 1] 12:00:01 WARNING gauntlet.worker: slow batch",
        "[rank 0] 12:00:02 ERROR gauntlet.worker: boom",
        "launcher line",
    ]
    assert tail == lines
