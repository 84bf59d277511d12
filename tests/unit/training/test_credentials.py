"""training.credentials: the ranks' credentials file text and which hosts get a copy.

The file's mode, its removal and boto3 reading it are covered in tests/reliability/test_trust_keys_security.py.
"""

from __future__ import annotations

from pathlib import Path

from gauntlet.training.credentials import SshSettings, credentials_text, rank_environment, remote_hosts


def test_credentials_text_keeps_the_session_token_under_the_default_profile() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "TK"}
    assert credentials_text(env) == (
        "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\naws_session_token = TK\n"
    )
    assert credentials_text({**env, "AWS_DEFAULT_PROFILE": "nightly"}).startswith("[nightly]\n")


def test_half_a_key_pair_writes_no_file_and_leaves_no_key_in_the_ranks_env() -> None:
    with rank_environment({"AWS_ACCESS_KEY_ID": "AK", "HOME": "/home/x"}, []) as ranks:
        assert ranks == {"HOME": "/home/x"}


def test_only_other_machines_of_a_hostfile_are_remote(tmp_path: Path) -> None:
    assert remote_hosts(None) == []
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("localhost slots=2\n127.0.0.1 slots=2\n\nlocalhost slots=1\n")
    assert remote_hosts(str(hostfile)) == []


def test_only_other_machines_of_a_host_list_are_remote() -> None:
    assert remote_hosts(None, "localhost:1,127.0.0.1:1") == []
    assert remote_hosts(None, "localhost:1,192.0.2.7:1") == ["192.0.2.7"]


def test_ssh_settings_become_ssh_options() -> None:
    assert SshSettings().options() == []
    assert SshSettings("2222", "/keys/id_ed25519").options() == ["-p", "2222", "-i", "/keys/id_ed25519"]
