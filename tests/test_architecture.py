"""The three house rules, checked on the source: steps never import Airflow, only storage.py
speaks to S3, and there is one config loader / hashing helper / logger setup / task factory."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "gauntlet"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if "airflow" not in p.relative_to(PACKAGE).parts],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_only_the_airflow_package_imports_airflow(path: Path) -> None:
    assert not {n for n in imports_of(path) if n.split(".")[0] == "airflow"}, f"{path} imports Airflow"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_storage_speaks_to_s3(path: Path) -> None:
    if path.name == "storage.py":
        return
    assert not {n for n in imports_of(path) if n.split(".")[0] in ("boto3", "botocore", "s3fs")}, (
        f"{path} talks to S3 directly; go through gauntlet.storage"
    )


def test_one_yaml_config_loader_and_one_hash_helper() -> None:
    for path in MODULES:
        text = path.read_text()
        if path.name != "hashing.py":
            assert "hashlib" not in text, f"{path} hashes on its own; use gauntlet.hashing"
        if path.name not in ("config.py", "protocol.py", "experiments.py", "ledger.py"):
            assert "yaml.safe_load(" not in text, f"{path} loads YAML on its own"
