"""The house rules, checked on the source: steps never import Airflow; only storage.py speaks to S3
and only layout.py builds its paths; one config loader, one hashing helper, one logger setup, one
task factory. Every case asserts, for every file it visits."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


def store_path_problems(path: Path) -> list[str]:
    """What in a file builds store paths or reads the store root (layout.py's job alone)."""
    problems = ["calls storage.join"] if joins_uris(path) else []
    spelled = folders_joined(path) + [s for s in code_strings(path) if _FOLDER_PATH.search(s)]
    problems += [f"spells store folder {s!r}" for s in spelled]
    named = [s for s in code_strings(path) if "GAUNTLET_STORE" in s or "s3://gauntlet" in s]
    return problems + [f"reads the store root ({s!r})" for s in named]


def logging_setup(path: Path) -> list[str]:
    return sorted({name for name in called_names(path) if name in _LOGGING_SETUP or name.endswith("Handler")})


def step_tasks_made(path: Path) -> set[str]:
    """The step task classes a file names in its code (to construct, map or subclass them)."""
    names = (
        n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else ""
        for n in ast.walk(tree_of(path))
    )
    return {name for name in names if name in STEP_TASK_CLASSES}


@pytest.mark.parametrize("path", SOURCES, ids=name_of)
def test_only_layout_builds_store_paths(path: Path) -> None:
    if path == PACKAGE / "storage.py":
        assert "join" in {n.name for n in tree_of(path).body if isinstance(n, ast.FunctionDef)}, (
            "storage.py defines join, the URI joiner layout.py builds paths with"
        )
    elif path == PACKAGE / "layout.py":
        assert joins_uris(path) and "GAUNTLET_STORE" in code_strings(path), (
            "layout.py reads the store root and builds its paths with storage.join"
        )
    else:
        problems = store_path_problems(path)
        assert not problems, (
            f"{path}: {problems}; ask gauntlet.layout for the URI (and layout.store_root() for the root)"
        )


@pytest.mark.parametrize("path", SOURCES, ids=name_of)
def test_one_logger_setup(path: Path) -> None:
    setup = logging_setup(path)
    if path == PACKAGE / "logs.py":
        assert {"setLevel", "StreamHandler"} <= set(setup), "logs.py is the one logger setup"
    else:
        assert not setup, f"{path} configures logging ({setup}); call gauntlet.logs.setup_logging"


@pytest.mark.parametrize("path", SOURCES, ids=name_of)
def test_one_task_factory(path: Path) -> None:
    """Only airflow/factory.py makes step tasks; DAG files call it and construct no operator."""
    made = step_tasks_made(path)
    if path == PACKAGE / "airflow" / "factory.py":
        assert made == STEP_TASK_CLASSES, "factory.py is the one place that makes step tasks"
    else:
        assert not made, f"{path} makes step tasks ({made}) itself; call gauntlet.airflow.step_task"
    if path in DAG_FILES:
        calls = called_names(path)
        assert "step_task" in calls, f"{path} wires no step through the factory"
        operators = sorted({c for c in calls if c.endswith("Operator")})
        assert not operators, f"{path} constructs {operators}; DAG files only wire factory tasks"


def test_the_checks_catch_what_they_forbid(tmp_path: Path) -> None:
    """The rules above pass on the tree; here each must fail on a file that breaks it."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""Prose may name runs/<run id>/ and $GAUNTLET_STORE."""\n'
        "import logging\nimport os\n"
        "from gauntlet import storage\nfrom gauntlet.airflow.operator import GauntletStepOperator\n"
        'store = os.environ.get("GAUNTLET_STORE", "s3://gauntlet")\n'
        'a = storage.join(store, "runs", "r1")\n'
        'b = f"{store}/experiments/{a}"\n'
        'c = "/".join([store, "registry"])\n'
        "logging.basicConfig()\n"
        'task = GauntletStepOperator(task_id="x")\n'
    )
    problems = store_path_problems(bad)
    assert "calls storage.join" in problems
    assert {
        "spells store folder 'runs'",
        "spells store folder 'registry'",
        "spells store folder '/experiments/'",
    } <= set(problems)
    assert (
        "reads the store root ('GAUNTLET_STORE')" in problems and "reads the store root ('s3://gauntlet')" in problems
    )
    assert logging_setup(bad) == ["basicConfig"]
    assert step_tasks_made(bad) == {"GauntletStepOperator"}
    clean = tmp_path / "clean.py"
    clean.write_text('"""Writes under runs/<run id>/ of $GAUNTLET_STORE."""\ncounts = {"experiments": 1, "runs": 2}\n')
    assert store_path_problems(clean) == [] and logging_setup(clean) == [] and step_tasks_made(clean) == set()


def test_one_yaml_config_loader_and_one_hash_helper() -> None:
    for path in MODULES:
        text = path.read_text()
        if path.name != "hashing.py":
            assert "hashlib" not in text, f"{path} hashes on its own; use gauntlet.hashing"
        if path.name not in ("config.py", "protocol.py", "experiments.py", "ledger.py"):
            assert "yaml.safe_load(" not in text, f"{path} loads YAML on its own"
