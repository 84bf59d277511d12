"""A user's own table, as real tables come: string ids, a string label, a categorical column, a
numeric column with nulls, feature names without a common prefix. `gauntlet init` writes its config,
suite and protocol; the nightly DAG then runs it through Airflow like the demo; and the registered
model scores raw rows (an unseen category, a missing value) exactly as evaluation scored them."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from testkit import ROOT, airflow_dags_test

from gauntlet import demo, layout, registry, storage
from gauntlet.contract import parse_outputs
from gauntlet.scoring.metrics import compute_metrics
from gauntlet.training.data import load_preprocessor, load_split
from gauntlet.training.model import score_raw_rows

DAG_ID = "gauntlet_nightly"
STEPS = ["validate", "preprocess", "train", "evaluate", "register"]
FIRST_DAY = dt.date(2026, 11, 1)
DAYS = 3


def clinic_table(rows: int, seed: int = 7) -> pd.DataFrame:
    """Patients with a diagnosis that depends on three measurements and the site, plus noise."""
    rng = np.random.default_rng(seed)
    site = rng.choice(["north", "south", "coast"], rows)
    age = rng.integers(20, 90, rows)
    bmi = rng.normal(27, 4, rows)
    glucose = rng.normal(100, 20, rows)
    score = 0.06 * (age - 55) + 0.25 * (bmi - 27) + 0.05 * (glucose - 100) + np.where(site == "coast", 1.0, 0.0)
    sick = score + rng.normal(0, 0.8, rows) > 0
    bmi_with_gaps = np.where(rng.random(rows) < 0.05, np.nan, bmi.round(1))
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:05d}" for i in range(rows)],
            "diagnosis": np.where(sick, "malignant", "benign"),
            "site": site,
            "age": age,
            "bmi": bmi_with_gaps,
            "glucose": glucose.round(1),
        }
    )


@pytest.fixture
def table_name() -> Iterator[str]:
    """A unique dataset name; the three files `gauntlet init` writes for it are removed afterwards."""
    name = f"clinic{uuid.uuid4().hex[:6]}"
    yield name
    for path in (
        ROOT / "include" / "configs" / f"{name}.yaml",
        ROOT / "include" / "expectations" / f"{name}.json",
        ROOT / "include" / "protocols" / f"{name}-v1.yaml",
    ):
        path.unlink(missing_ok=True)


def _gauntlet(store: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "gauntlet", "--store", store, *args], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    outputs = parse_outputs(done.stdout)
    assert outputs is not None, done.stdout[-2000:]
    return outputs


def test_a_new_table_runs_from_init_to_a_model_that_scores_raw_rows(
    airflow_home: dict[str, str], store: str, table_name: str
) -> None:
    frame = clinic_table(2400)
    for day, rows in enumerate(np.array_split(np.arange(len(frame)), DAYS)):
        uri = layout.raw_partition_uri(store, f"raw/{table_name}", FIRST_DAY + dt.timedelta(days=day))
        demo.write_partition(uri, frame.iloc[rows].reset_index(drop=True))

    _gauntlet(
        store, "init", table_name, "--from", f"{store}/raw/{table_name}/", "--id", "patient_id", "--label", "diagnosis"
    )
    config_path = f"include/configs/{table_name}.yaml"
    assert (ROOT / config_path).is_file()

    logical = f"{FIRST_DAY + dt.timedelta(days=DAYS)}T02:00:00+00:00"
    conf = {"config": config_path, "register_even_if_gate_fails": True}
    process = airflow_dags_test(airflow_home, DAG_ID, logical, store, conf=conf)
    log = process.stdout + process.stderr
    assert process.returncode == 0, log[-6000:]
    assert "| candidate |" in log and "| baseline |" in log and "gate: " in log

    import yaml

    model_name = yaml.safe_load((ROOT / config_path).read_text())["model"]["name"]
    versions = registry.list_versions(layout.registry_root(store, model_name))
    assert len(versions) == 1, versions
    version = versions[0]
    report = storage.get_json(version["evaluation_uri"])

    # The registered bundle scores the raw test rows as evaluation scored them.
    with storage.temp_dir() as tmp:
        test, manifest = load_split(version["dataset_uri"], "test", tmp)
    classes = manifest["schema"]["classes"]
    assert sorted(classes) == ["benign", "malignant"]
    raw = frame.set_index("patient_id").loc[list(test.ids)].reset_index()
    bundle = storage.get_bytes(version["model_uri"], expected_sha256=version["model_sha256"])
    proba = score_raw_rows(bundle, raw)
    labels = np.array([classes.index(value) for value in raw["diagnosis"]])
    primary = next(iter(report["metrics"]["candidate"]))
    ours = compute_metrics(labels, proba, [primary])[primary]
    assert ours == pytest.approx(report["metrics"]["candidate"][primary], abs=1e-9)

    # An unseen category scores as a missing one (the unknown bucket); a missing number as its imputed value.
    row = raw.iloc[[0]].copy()
    unseen, missing_site = row.assign(site="mountain"), row.assign(site=None)
    np.testing.assert_allclose(score_raw_rows(bundle, unseen), score_raw_rows(bundle, missing_site), rtol=1e-6)
    scored = score_raw_rows(bundle, row.assign(bmi=np.nan))
    assert np.isfinite(scored).all() and scored.sum() == pytest.approx(1.0, abs=1e-5)
    impute = next(i["impute"] for i in load_preprocessor(version["dataset_uri"])["inputs"] if i["name"] == "bmi")
    np.testing.assert_allclose(scored, score_raw_rows(bundle, row.assign(bmi=impute)), rtol=1e-6)
