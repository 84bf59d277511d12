"""scripts/build_horovod.sh: the source patches a current GCC and torch need, and a GPU build's NCCL
taken from the nvidia-nccl wheel when the system has none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_horovod.sh"
GROUP_TABLE = """// Copyright
#ifndef HOROVOD_GROUP_TABLE_H
#define HOROVOD_GROUP_TABLE_H

#include <mutex>
#include <vector>

std::string name;
#endif
"""


def _sdist(root: Path) -> Path:
    """The files of Horovod 0.28.1's sdist that the patches touch, as released."""
    for path, text in {
        "CMakeLists.txt": "set(CMAKE_CXX_STANDARD 14)\n",
        "horovod/torch/CMakeLists.txt": 'set(CMAKE_CXX_FLAGS "-std=c++14")\n',
        "third_party/gloo/CMakeLists.txt": 'set(CMAKE_CXX_FLAGS "-std=c++11")\n',
        "horovod/common/group_table.h": GROUP_TABLE,
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def _isolated_python(tmp_path: Path) -> str:
    """This interpreter without its site-packages: on a CUDA host torch's own nvidia-nccl is installed."""
    shim = tmp_path / "python"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    shim.chmod(0o755)
    return str(shim)


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    host = {k: v for k, v in os.environ.items() if not k.startswith("HOROVOD_")}
    # No nvcc or nvidia-smi on this PATH: only what the test plants decides.
    environment = {**host, "PATH": "/usr/bin:/bin", **env}
    return subprocess.run(["bash", str(SCRIPT), *args], env=environment, capture_output=True, text=True, timeout=60)


def test_patches_make_the_sdist_build_with_cxx17_and_a_current_gcc(tmp_path: Path) -> None:
    src = _sdist(tmp_path)
    for _ in range(2):  # applying twice changes nothing more
        done = _run("--patch", str(src))
        assert done.returncode == 0, done.stderr
    assert "CMAKE_CXX_STANDARD 17" in (src / "CMakeLists.txt").read_text()
    assert "-std=c++17" in (src / "horovod/torch/CMakeLists.txt").read_text()
    assert "-std=c++17" in (src / "third_party/gloo/CMakeLists.txt").read_text()
    header = (src / "horovod/common/group_table.h").read_text()
    assert header.count("#include <string>") == 1
    assert header.index("#include <string>") < header.index("#include <mutex>") < header.index("std::string")


def test_a_patch_that_does_not_apply_stops_the_build(tmp_path: Path) -> None:
    src = _sdist(tmp_path)
    (src / "CMakeLists.txt").write_text("set(CMAKE_CXX_STANDARD 20)\n")  # a release the patch does not know
    done = _run("--patch", str(src))
    assert done.returncode != 0 and "patch did not apply" in done.stderr


def test_a_gpu_build_takes_nccl_from_the_wheel_when_the_system_has_none(tmp_path: Path) -> None:
    wheel = tmp_path / "site" / "nvidia" / "nccl"  # the nvidia-nccl wheel's layout: a namespace package
    (wheel / "lib").mkdir(parents=True)
    (wheel / "include").mkdir()
    (wheel / "lib" / "libnccl.so.2").write_bytes(b"\x7fELF")
    (wheel / "include" / "nccl.h").write_text("#define NCCL_MAJOR 2\n")
    done = _run(
        _isolated_python(tmp_path), "--print-env", HOROVOD_GPU_OPERATIONS="NCCL", PYTHONPATH=str(tmp_path / "site")
    )
    assert done.returncode == 0, done.stderr
    settings = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert settings["HOROVOD_NCCL_LINK"] == "SHARED"
    home = Path(settings["HOROVOD_NCCL_HOME"])
    # What Horovod's CMake looks for: include/nccl.h and an unversioned lib/libnccl.so.
    assert (home / "include" / "nccl.h").is_file()
    assert (home / "lib" / "libnccl.so").resolve() == (wheel / "lib" / "libnccl.so.2").resolve()


def test_a_gpu_build_without_any_nccl_says_what_to_install(tmp_path: Path) -> None:
    done = _run(_isolated_python(tmp_path), "--print-env", HOROVOD_GPU_OPERATIONS="NCCL", PYTHONPATH=str(tmp_path))
    assert done.returncode != 0
    assert "no NCCL found" in done.stderr and "HOROVOD_NCCL_HOME" in done.stderr


def test_a_named_nccl_home_is_used_as_given(tmp_path: Path) -> None:
    done = _run(
        _isolated_python(tmp_path), "--print-env", HOROVOD_GPU_OPERATIONS="NCCL", HOROVOD_NCCL_HOME=str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert f"HOROVOD_NCCL_HOME={tmp_path}" in done.stdout.splitlines()
