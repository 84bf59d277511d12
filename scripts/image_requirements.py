"""Print the task image's pinned requirements: the steps' dependencies from pyproject.toml, each
with its exact pin from requirements.txt where it has one.

The task image needs the steps' libraries only (no Airflow, no moto), and its pins must be the ones
the Airflow environment is tested with; deriving the list keeps one source of truth for both. Used
by the wheelhouse script on the host and by the Dockerfile's builder stage.

Usage: python scripts/image_requirements.py [PROJECT_DIR]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# Pulled in by a declared dependency but pinned in requirements.txt (boto3 -> botocore), and
# Horovod's own run-time dependencies (its wheel comes from the wheel cache, not an index).
EXTRA = ("botocore", "cloudpickle", "psutil", "pyyaml", "packaging", "cffi")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return canonical(match.group(1)) if match else ""


def pins(requirements: Path) -> dict[str, str]:
    found = {}
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line and "[" not in line.split("==", 1)[0]:
            found[requirement_name(line)] = line
    return found


def image_requirements(project: Path) -> list[str]:
    declared = tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = pins(project / "requirements.txt")
    lines = [pinned.get(requirement_name(spec), spec) for spec in declared]
    names = {requirement_name(line) for line in lines}
    lines += [pinned.get(name, name) for name in EXTRA if name not in names]
    return lines


if __name__ == "__main__":
    print("\n".join(image_requirements(Path(sys.argv[1] if len(sys.argv) > 1 else "."))))
