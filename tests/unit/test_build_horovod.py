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


def test_a_local_sdist_is_built_without_downloading_and_a_missing_one_is_named(tmp_path: Path) -> None:
    """A GPU machine with no package index builds from HOROVOD_SDIST; pip is never asked to download."""
    calls = tmp_path / "calls"
    shim = tmp_path / "python"  # answers the torch-version question and records every other call
    shim.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho 2.13.0\n')
    shim.chmod(0o755)
    missing = tmp_path / "horovod-0.28.1.tar.gz"
    done = _run(str(shim), str(tmp_path / "wheels"), HOROVOD_SDIST=str(missing))
    assert done.returncode != 0
    assert f"HOROVOD_SDIST={missing} is not a file" in done.stderr
    assert "download" not in calls.read_text()


def _dockerfile_stage(name: str) -> str:
    text = (SCRIPT.parents[1] / "Dockerfile").read_text()
    return text.split(f"AS {name}\n", 1)[1].split("\nFROM ", 1)[0]


def test_the_gpu_image_builds_horovod_with_this_script_on_cuda_12_or_13_and_a_current_gcc() -> None:
    """The Dockerfile leaves NCCL and the patches to the script (one recipe for images and hosts), on an
    Ubuntu 24.04 CUDA base (GCC 13, which needs the <string> patch), with torch's wheels for that CUDA
    and only architectures that CUDA compiles for."""
    import re

    dockerfile = (SCRIPT.parents[1] / "Dockerfile").read_text()
    builder = _dockerfile_stage("gpu-builder")
    images = dict(re.findall(r"^ARG (CUDA_(?:DEVEL|RUNTIME)_IMAGE)=nvidia/cuda:(\S+)$", dockerfile, re.M))
    assert set(images) == {"CUDA_DEVEL_IMAGE", "CUDA_RUNTIME_IMAGE"}
    versions = {tag.split("-")[0] for tag in images.values()}
    assert len(versions) == 1 and all(tag.endswith("-ubuntu24.04") for tag in images.values())
    major, minor = versions.pop().split(".")[:2]
    assert major in ("12", "13")
    assert re.search(rf"^ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu{major}{minor}$", builder, re.M)
    archs = re.search(r"^ARG CUDA_ARCHITECTURES=([\d,]+)$", builder, re.M)
    assert archs and 'HOROVOD_BUILD_CUDA_CC_LIST="$CUDA_ARCHITECTURES"' in builder
    assert min(int(a) for a in archs.group(1).split(",")) >= 75  # CUDA 13 compiles for 7.5 and later only
    assert "HOROVOD_GPU_OPERATIONS=NCCL" in builder and "bash /build/build_horovod.sh" in builder
    assert "HOROVOD_NCCL" not in builder and "libnccl" not in builder  # the script finds NCCL
    assert "hvd.nccl_built()" in builder and "hvd.nccl_built()" in _dockerfile_stage("gpu")
