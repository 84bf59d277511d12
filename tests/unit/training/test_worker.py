"""training.worker: what the worker imports is part of the experiment key."""

from __future__ import annotations

from pathlib import Path

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
