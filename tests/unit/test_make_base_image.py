"""scripts/make_base_image.sh takes its Debian mirror from the machine's own apt sources."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_base_image.sh"


def _mirror(apt: Path, **env: str) -> subprocess.CompletedProcess[str]:
    host = {k: v for k, v in os.environ.items() if k != "DEBIAN_MIRROR"}
    environment = {**host, "GAUNTLET_APT_ETC": str(apt), **env}
    return subprocess.run(
        ["bash", str(SCRIPT), "--print-mirror"], env=environment, capture_output=True, text=True, timeout=30
    )


def _apt(tmp_path: Path, sources: str = "", lists: str = "") -> Path:
    (tmp_path / "sources.list.d").mkdir()
    if sources:
        (tmp_path / "sources.list.d" / "debian.sources").write_text(sources)
    if lists:
        (tmp_path / "sources.list").write_text(lists)
    return tmp_path


def test_the_script_names_no_mirror_host() -> None:
    assert not re.search(r"https?://", SCRIPT.read_text())


def test_deb822_sources_give_the_enabled_main_archive_of_the_suite(tmp_path: Path) -> None:
    apt = _apt(
        tmp_path,
        sources="""Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src deb
# a comment inside a stanza
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: contrib main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
""",
    )
    done = _mirror(apt)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://mirror.example/debian"


def test_one_line_sources_with_options_and_another_debian_release(tmp_path: Path) -> None:
    apt = _apt(
        tmp_path,
        lists="# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://trixie.example/debian trixie contrib main\n",
    )
    done = _mirror(apt)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://trixie.example/debian"


def test_no_debian_source_is_an_error_that_names_the_setting(tmp_path: Path) -> None:
    apt = _apt(tmp_path, lists="deb http://archive.example/ubuntu noble main\n")
    done = _mirror(apt)
    assert done.returncode != 0 and not done.stdout.strip()
    assert "DEBIAN_MIRROR" in done.stderr and str(apt) in done.stderr


@pytest.mark.parametrize("value", ["http://chosen.example/debian", "http://chosen.example/debian/"])
def test_debian_mirror_overrides_the_host(tmp_path: Path, value: str) -> None:
    apt = _apt(tmp_path, lists="deb http://host.example/debian bookworm main\n")
    assert _mirror(apt, DEBIAN_MIRROR=value).stdout.strip() == "http://chosen.example/debian"
