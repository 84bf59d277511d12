"""training.topology: the hosts a run is launched on and the host each rank reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from gauntlet.errors import BadInput
from gauntlet.training import topology


def test_host_lists_take_slots_and_default_to_one() -> None:
    assert topology.parse_hosts("hosta:2, hostb") == [{"host": "hosta", "slots": 2}, {"host": "hostb", "slots": 1}]


@pytest.mark.parametrize("text", ["", "hosta:x", "hosta:0", "host a:1"])
def test_a_malformed_host_list_is_bad_input_naming_the_setting(text: str) -> None:
    with pytest.raises(BadInput, match="GAUNTLET_HOROVOD_HOSTS"):
        topology.parse_hosts(text)


def test_hostfile_lines_in_openmpis_format(tmp_path: Path) -> None:
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("# job\nworker-0.svc slots=4\n\nworker-1.svc slots=4 max_slots=4\nworker-2\n")
    assert [(h["host"], h["slots"]) for h in topology.parse_hostfile(str(hostfile))] == [
        ("worker-0.svc", 4),
        ("worker-1.svc", 4),
        ("worker-2", 1),
    ]


def test_the_rank_line_a_worker_logs_is_read_back() -> None:
    line = "12:00:00 INFO gauntlet.worker: " + topology.RANK_LINE % (1, 2, "hostb.net")
    assert topology.rank_host(line) == (1, "hostb.net")
    assert topology.rank_host("12:00:00 INFO gauntlet.worker: epoch 1/2") is None


def test_describe_names_the_placement_and_where_each_rank_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAUNTLET_HOROVOD_HOSTFILE", raising=False)
    monkeypatch.setenv("GAUNTLET_HOROVOD_HOSTS", "hosta:1,hostb:1")
    found = topology.describe(2, {0: "hosta", 1: "hostb"})
    assert found == {
        "placement": "hosts",
        "hosts": [{"host": "hosta", "slots": 1}, {"host": "hostb", "slots": 1}],
        "rank_hosts": ["hosta", "hostb"],
        "distinct_hosts": 2,
    }
    monkeypatch.delenv("GAUNTLET_HOROVOD_HOSTS")
    local = topology.describe(2, {})
    assert local["placement"] == "local" and local["hosts"][0]["slots"] == 2 and local["distinct_hosts"] == 0
