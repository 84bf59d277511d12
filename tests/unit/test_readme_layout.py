"""The README's layout table names every module of src/gauntlet, and no folder that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "gauntlet"


def _layout_table() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Project layout", 1)[1]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def test_every_module_is_in_the_layout_table() -> None:
    table = _layout_table()
    missing = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py"
        and "__pycache__" not in path.parts
        and f"`{path.name}`" not in table
        and f"{path.name}`" not in table
    ]
    assert not missing, f"README.md's layout table does not name: {missing}"


def test_the_readme_names_only_folders_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`((?:include|src|dags|plugins|docs|benchmarks|scripts|tests)/[\w./-]*)`", readme))
    absent = sorted(path for path in named if not (ROOT / path.rstrip("/")).exists())
    assert not absent, f"README.md names paths that do not exist: {absent}"
