"""DAG integrity: every file in dags/ imports cleanly, and each DAG follows the house rules."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY = {"torch", "great_expectations", "sklearn", "horovod"}


@pytest.fixture(scope="module")
def dagbag(monkeypatch_module: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("airflow-integrity")
    monkeypatch_module.setenv("AIRFLOW_HOME", str(home))
    monkeypatch_module.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    monkeypatch_module.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="module")
def monkeypatch_module():  # type: ignore[no-untyped-def]
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_dag_files_exist() -> None:
    assert DAG_FILES, "dags/ holds no DAG files"


def test_every_dag_file_imports_without_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}, f"DAG import errors: {dagbag.import_errors}"
    assert dagbag.dags, "no DAGs were found"


def test_dags_have_docs_tags_and_retries(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} needs a doc_md that says what it does"
        assert dag.tags, f"{dag_id} needs tags"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
            assert task.execution_timeout is not None, f"{dag_id}.{task.task_id} has no execution_timeout"


def test_nightly_dag_chains_the_five_steps(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["gauntlet_nightly"]
    order = ["validate", "preprocess", "train", "evaluate", "register"]
    for upstream, downstream in itertools.pairwise(order):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert dag.max_active_runs == 1
    assert not dag.catchup


def test_every_training_task_shares_the_training_pool(dagbag) -> None:  # type: ignore[no-untyped-def]
    """Nightly, backfill and sweep runs overlap; the pool keeps their Horovod jobs from sharing cores."""
    train_tasks = [t for dag in dagbag.dags.values() for t in dag.tasks if getattr(t, "step", None) == "train"]
    assert len(train_tasks) >= 2
    for task in train_tasks:
        assert task.pool == "training", f"{task.dag_id}.{task.task_id} trains outside the training pool"
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())
    assert "training" in {p["pool_name"] for p in settings["airflow"]["pools"]}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_only_wire(path: Path) -> None:
    """Rule 1: DAG files never import torch, GX, scikit-learn or Horovod."""
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & HEAVY, f"{path.name} imports {imported & HEAVY}"
