"""Print the task image's requirements from requirements.lock: the steps' dependencies declared in
pyproject.toml, Horovod's run-time ones, and everything they pull in, each at the lock's exact version.

The task image needs the steps' libraries only (no Airflow, no moto), at the versions the Airflow
environment is tested with; deriving the list from the one lock keeps one source of truth for both.
What a package pulls in is read from the lock's `# via` annotations (uv writes, under each package,
the packages that require it), so no resolver runs here: a package belongs to the image when one of
the packages requiring it does. Used by the wheelhouse script on the host and the Dockerfile's builders.

Usage: python scripts/image_requirements.py [--hashes] [PROJECT_DIR]
  --hashes   each line carries the lock's sha256 hashes (for `pip install --require-hashes`)
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

# Horovod's own run-time dependencies (its wheel comes from the wheel cache, not the lock).
EXTRA = ("cloudpickle", "psutil", "pyyaml", "packaging", "cffi")
LOCK = "requirements.lock"


@dataclass
class Locked:
    """One package of the lock: its pin, the hashes of its files, and the packages that require it."""

    name: str
    pin: str
    hashes: list[str] = field(default_factory=list)
    required_by: set[str] = field(default_factory=set)

    def line(self, hashes: bool) -> str:
        return " ".join([self.pin, *(f"--hash={h}" for h in self.hashes)]) if hashes else self.pin


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return canonical(match.group(1)) if match else ""


def parse_lock(text: str) -> dict[str, Locked]:
    """The lock's packages by canonical name (uv's `--generate-hashes` output, either annotation style)."""
    packages: dict[str, Locked] = {}
    current: Locked | None = None
    in_via = False
    for raw in text.splitlines():
        line = raw.strip()
        if raw[:1].isalnum():
            pin = line.rstrip("\\").split(";", 1)[0].strip()
            current = Locked(requirement_name(pin), pin)
            packages[current.name] = current
            in_via = False
        elif current is None:
            continue
        elif line.startswith("--hash="):
            current.hashes.append(line.removeprefix("--hash=").rstrip("\\").strip())
        elif line.startswith("# via"):
            rest = line.removeprefix("# via").strip()
            in_via = not rest
            current.required_by.update(_parents(rest))
        elif in_via and line.startswith("#   "):
            current.required_by.update(_parents(line.removeprefix("#").strip()))
        else:
            in_via = False
    return packages


def _parents(text: str) -> set[str]:
    """Package names in an annotation (`a, b`); requirement files (`-r requirements.txt`) are no package."""
    return {canonical(part.strip()) for part in text.split(",") if part.strip() and not part.strip().startswith("-")}


def image_packages(project: Path) -> list[Locked]:
    """The steps' dependencies and all they pull in, in the lock's order."""
    locked = parse_lock((project / LOCK).read_text())
    declared = tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]
    roots = {requirement_name(spec) for spec in declared} | set(EXTRA)
    absent = sorted(roots - locked.keys())
    if absent:
        sys.exit(f"{project / LOCK}: no entry for {', '.join(absent)} (pyproject.toml needs it): run `make lock`")
    chosen = set(roots)
    grew = True
    while grew:
        grew = False
        for package in locked.values():
            if package.name not in chosen and package.required_by & chosen:
                chosen.add(package.name)
                grew = True
    return [package for package in locked.values() if package.name in chosen]


def image_requirements(project: Path, hashes: bool = False) -> list[str]:
    return [package.line(hashes) for package in image_packages(project)]


if __name__ == "__main__":
    args = sys.argv[1:]
    with_hashes = "--hashes" in args
    paths = [arg for arg in args if arg != "--hashes"]
    print("\n".join(image_requirements(Path(paths[0] if paths else "."), with_hashes)))
