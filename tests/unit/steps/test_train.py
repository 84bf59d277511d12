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


def test_only_a_non_default_precision_is_in_the_params_and_it_changes_the_experiment_key() -> None:
    from gauntlet import experiments

    config = load_config(resolve(CONFIG))
    protocol = load_protocol(resolve(config.protocol))
    fp32 = train.training_params(load_config(resolve(CONFIG), ["training.precision=fp32"]), protocol)
    bf16 = train.training_params(load_config(resolve(CONFIG), ["training.precision=bf16"]), protocol)
    assert fp32 == train.training_params(config, protocol) and "precision" not in fp32  # keys of fp32 runs stay
    assert bf16 == {**fp32, "precision": "bf16"}

    def key(params: dict[str, object]) -> str:
        return experiments.experiment_key(experiments.key_parts("p", "d", params, "c", {}))

    assert key(bf16) != key(fp32)


def test_horovod_command_carries_no_aws_key_values(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"AWS_ACCESS_KEY_ID": "AKIAUNITCANARY", "AWS_SECRET_ACCESS_KEY": "unit-secret-canary"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GAUNTLET_HOROVOD_HOSTFILE", raising=False)
    monkeypatch.delenv("GAUNTLET_HOROVOD_HOSTS", raising=False)
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


def test_horovod_command_across_hosts_names_them_with_the_runs_key_port_and_interface(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GAUNTLET_HOROVOD_HOSTFILE", raising=False)
    monkeypatch.setenv("GAUNTLET_HOROVOD_HOSTS", "hosta:1,hostb:1")
    monkeypatch.setenv("GAUNTLET_HOROVOD_SSH_PORT", "2222")
    monkeypatch.setenv("GAUNTLET_HOROVOD_SSH_IDENTITY", "/run/secrets/ssh/id_ed25519")
    monkeypatch.setenv("GAUNTLET_HOROVOD_IFACE", "eth0")
    joined = " ".join(train.horovod_command(2, []))
    assert "-np 2 -H hosta:1,hostb:1 --ssh-port 2222 --ssh-identity-file /run/secrets/ssh/id_ed25519" in joined
    assert "--network-interface eth0" in joined and "localhost" not in joined


def test_hosts_with_too_few_slots_or_two_host_settings_are_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    from gauntlet.errors import BadInput

    monkeypatch.delenv("GAUNTLET_HOROVOD_HOSTFILE", raising=False)
    monkeypatch.setenv("GAUNTLET_HOROVOD_HOSTS", "hosta:1,hostb:1")
    with pytest.raises(BadInput, match=r"offers 2 slots for 3 Horovod workers.*training.workers"):
        train.horovod_command(3, [])
    monkeypatch.setenv("GAUNTLET_HOROVOD_HOSTFILE", "/etc/mpi/hostfile")
    with pytest.raises(BadInput, match="unset one of them"):
        train.horovod_command(2, [])


def test_each_ranks_host_line_is_relayed_and_collected(capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    lines = [
        "[0]<stderr>:12:00:00 INFO gauntlet.worker: rank 0 of 2 on host hosta",
        "[1]<stderr>:12:00:00 INFO gauntlet.worker: rank 1 of 2 on host hostb",
        "[1]<stderr>:12:00:01 INFO gauntlet.worker: epoch 1/2 train_loss=0.5",
    ]
    process = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None
    process.stdin.write("\n".join(lines) + "\n")
    process.stdin.close()
    rank_hosts: dict[int, str] = {}
    train._stream(process, [], rank_hosts)
    process.wait()
    assert rank_hosts == {0: "hosta", 1: "hostb"}
    assert capsys.readouterr().out.splitlines() == [
        "12:00:00 INFO gauntlet.worker: rank 0 of 2 on host hosta",
        "[rank 1] 12:00:00 INFO gauntlet.worker: rank 1 of 2 on host hostb",
    ]
