"""training.worker: its imports are in the experiment key, its arguments, and no Horovod at import."""

from __future__ import annotations

from pathlib import Path

import pytest

from gauntlet.hashing import TRAINING_CODE
from gauntlet.training import worker


def test_every_training_module_the_worker_imports_is_in_the_experiment_key() -> None:
    """Editing any module that shapes a trained model must change the experiment key."""
    import ast

    source = Path(worker.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "gauntlet.training":
            imported |= {f"training/{alias.name}.py" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gauntlet.training."):
            imported.add(node.module.replace("gauntlet.", "").replace(".", "/") + ".py")
    assert imported and imported <= set(TRAINING_CODE) - {"training/worker.py"}
    assert "training/worker.py" in TRAINING_CODE


def test_the_worker_takes_dataset_experiment_and_params() -> None:
    args = worker.parse_args(["--dataset", "s3://b/d", "--experiment", "s3://b/e", "--params", '{"epochs": 1}'])
    assert (args.dataset, args.experiment, args.params) == ("s3://b/d", "s3://b/e", '{"epochs": 1}')
    with pytest.raises(SystemExit):
        worker.parse_args(["--dataset", "s3://b/d", "--experiment", "s3://b/e"])


def test_importing_the_worker_starts_no_horovod() -> None:
    """horovodrun's ranks call init; a process that only imports the module (hashing, tests) must not."""
    import horovod.torch as hvd

    assert not hvd.is_initialized()
