"""gauntlet.airflow.mpijob: the train step as a Kubeflow MPIJob across nodes."""

from __future__ import annotations

import re

import pytest

from gauntlet.airflow.mpijob import job_name, launcher_arguments, render_mpijob, step_outputs
from gauntlet.contract import outputs_line
from gauntlet.errors import BadInput


def test_launcher_gets_one_rank_per_slot_unless_the_run_chose() -> None:
    assert launcher_arguments(["train"], 8) == ["train", "--workers", "8"]
    assert launcher_arguments(["train", "--workers", "4"], 8) == ["train", "--workers", "4"]
    chosen = ["--set", "training.workers=2", "train"]
    assert launcher_arguments(chosen, 8) == chosen


@pytest.mark.parametrize("arguments", [["train", "--workers", "9"], ["--set", "training.workers=16", "train"]])
def test_more_ranks_than_slots_is_bad_input_naming_the_settings(arguments: list[str]) -> None:
    with pytest.raises(BadInput, match="GAUNTLET_K8S_TRAIN_NODES"):
        launcher_arguments(arguments, 8)


def test_a_job_needs_a_node_with_a_gpu() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_mpijob("j", "ns", "img", ["train"], nodes=0, gpus_per_node=1)
    with pytest.raises(ValueError, match="at least one"):
        render_mpijob("j", "ns", "img", ["train"], nodes=2, gpus_per_node=0)


def test_job_names_are_dns_names_unique_per_run() -> None:
    first, again, other = job_name("dag__run1/1"), job_name("dag__run1/1"), job_name("dag__run1/2")
    assert first == again != other
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", first)


def test_a_launchers_lines_give_the_step_outputs_or_name_the_job_that_failed() -> None:
    """MPIJob and TrainJob share this: the outputs line wins, a failed job shows its last lines."""
    from airflow.exceptions import AirflowException

    lines = ["epoch 1/1", outputs_line({"experiment": "s3://b/e"})]
    assert step_outputs("MPIJob ns/j", "Succeeded", lines) == {"experiment": "s3://b/e"}
    with pytest.raises(AirflowException, match=r"^TrainJob ns/j failed; launcher's last lines:\nrank 1 died$"):
        step_outputs("TrainJob ns/j", "Failed", ["rank 1 died"])
    with pytest.raises(AirflowException, match=r"^MPIJob ns/j succeeded but its launcher printed no outputs$"):
        step_outputs("MPIJob ns/j", "Succeeded", ["epoch 1/1"])
