"""The house rules, checked on the source: steps never import Airflow; only storage.py speaks to S3
and only layout.py builds its paths; one config loader, one hashing helper, one logger setup, one
task factory. Every case asserts, for every file it visits."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "gauntlet"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
# Everything that ships: the package, the Airflow plugins and the DAG files.
SOURCES = MODULES + sorted((ROOT / "plugins").glob("*.py")) + DAG_FILES

# The store's top-level folders (layout.py's tree); the raw prefix comes from the config.
STORE_FOLDERS = ("runs", "datasets", "experiments", "evaluations", "registry", "quarantine", "ledgers", "sweeps")
_FOLDERS = "|".join(STORE_FOLDERS)
# A folder with a slash beside it: "runs/", "/registry/", f"{store}/sweeps"; not the word alone.
_FOLDER_PATH = re.compile(rf"(^|/)({_FOLDERS})/|/({_FOLDERS})$")
STEP_TASK_CLASSES = {"GauntletStepOperator", "PublishChampionOperator"}
# Calls that configure logging (handlers, levels, formats) rather than use a logger.
_LOGGING_SETUP = {"basicConfig", "dictConfig", "fileConfig", "addHandler", "removeHandler", "setLevel", "setFormatter"}


def name_of(path: Path) -> str:
    return str(path.relative_to(ROOT))


def tree_of(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants: prose may describe the layout, code may not build it."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def code_strings(path: Path) -> list[str]:
    """Every string constant of the file's code (f-string pieces included), docstrings left out."""
    tree = tree_of(path)
    skip = docstrings(tree)
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


def called_names(path: Path) -> list[str]:
    """The name each call in the file calls (`f(...)` -> f, `a.b.f(...)` -> f)."""
    out = []
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.Call):
            func = node.func
            out.append(func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else "")
    return out


def joins_uris(path: Path) -> bool:
    """Whether the file joins S3 URI parts: `storage.join(...)` or `join` imported from gauntlet.storage."""
    for node in ast.walk(tree_of(path)):
        by_attribute = (
            isinstance(node, ast.Attribute) and node.attr == "join" and getattr(node.value, "id", "") == "storage"
        )
        by_import = (
            isinstance(node, ast.ImportFrom)
            and node.module == "gauntlet.storage"
            and "join" in {a.name for a in node.names}
        )
        if by_attribute or by_import:
            return True
    return False


def folders_joined(path: Path) -> list[str]:
    """Store folder names passed to any `join` (storage.join, os.path.join, "/".join([...]))."""
    found = []
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "join":
            for arg in node.args:
                found += [n.value for n in ast.walk(arg) if isinstance(n, ast.Constant) and n.value in STORE_FOLDERS]
    return found


@pytest.mark.parametrize("path", [p for p in MODULES if "airflow" not in p.relative_to(PACKAGE).parts], ids=name_of)
def test_only_the_airflow_package_imports_airflow(path: Path) -> None:
    assert not {n for n in imports_of(path) if n.split(".")[0] == "airflow"}, f"{path} imports Airflow"


@pytest.mark.parametrize("path", MODULES, ids=name_of)
def test_only_storage_speaks_to_s3(path: Path) -> None:
    s3 = {n for n in imports_of(path) if n.split(".")[0] in ("boto3", "botocore", "s3fs")}
    if path.name == "storage.py":
        assert "boto3" in s3, "storage.py is the one module that speaks to S3, so it is the one that imports boto3"
    else:
        assert not s3, f"{path} talks to S3 directly; go through gauntlet.storage"


@pytest.mark.parametrize("path", SOURCES, ids=name_of)
def test_only_layout_builds_store_paths(path: Path) -> None:
    if path == PACKAGE / "storage.py":
        assert "join" in {n.name for n in tree_of(path).body if isinstance(n, ast.FunctionDef)}, (
            "storage.py defines join, the URI joiner layout.py builds paths with"
        )
        return
    if path == PACKAGE / "layout.py":
        assert joins_uris(path) and "GAUNTLET_STORE" in code_strings(path), (
            "layout.py reads the store root and builds its paths with storage.join"
        )
        return
    assert not joins_uris(path), f"{path} joins S3 paths itself; ask gauntlet.layout for the URI"
    folders = folders_joined(path) + [s for s in code_strings(path) if _FOLDER_PATH.search(s)]
    assert not folders, f"{path} spells store folders {folders}; gauntlet.layout builds every store path"
    named = [s for s in code_strings(path) if "GAUNTLET_STORE" in s or "s3://gauntlet" in s]
    assert not named, f"{path} reads the store root itself ({named}); use gauntlet.layout.store_root()"


@pytest.mark.parametrize("path", SOURCES, ids=name_of)
def test_one_logger_setup(path: Path) -> None:
    setup = sorted({name for name in called_names(path) if name in _LOGGING_SETUP or name.endswith("Handler")})
    if path == PACKAGE / "logs.py":
        assert {"setLevel", "StreamHandler"} <= set(setup), "logs.py is the one logger setup"
    else:
        assert not setup, f"{path} configures logging ({setup}); call gauntlet.logs.setup_logging"


@pytest.mark.parametrize("path", SOURCES, ids=name_of)
def test_one_task_factory(path: Path) -> None:
    """Only airflow/factory.py makes step tasks; DAG files call it and construct no operator."""
    used = {
        n.id if isinstance(n, ast.Name) else n.attr
        for n in ast.walk(tree_of(path))
        if isinstance(n, ast.Name | ast.Attribute)
        and (n.id if isinstance(n, ast.Name) else n.attr) in STEP_TASK_CLASSES
    }
    if path == PACKAGE / "airflow" / "factory.py":
        assert used == STEP_TASK_CLASSES, "factory.py is the one place that makes step tasks"
    else:
        assert not used, f"{path} makes step tasks ({used}) itself; call gauntlet.airflow.step_task"
    if path in DAG_FILES:
        calls = called_names(path)
        assert "step_task" in calls, f"{path} wires no step through the factory"
        operators = sorted({c for c in calls if c.endswith("Operator")})
        assert not operators, f"{path} constructs {operators}; DAG files only wire factory tasks"


def test_one_yaml_config_loader_and_one_hash_helper() -> None:
    for path in MODULES:
        text = path.read_text()
        if path.name != "hashing.py":
            assert "hashlib" not in text, f"{path} hashes on its own; use gauntlet.hashing"
        if path.name not in ("config.py", "protocol.py", "experiments.py", "ledger.py"):
            assert "yaml.safe_load(" not in text, f"{path} loads YAML on its own"
