"""What a run may name, what its keys say and what its credentials show.

A run chooses configs and protocols only among the project's own files and raw data only under the
store; cache keys change with everything that changes a result; AWS keys never appear on a command
line while ranks train; the output links open only for users who may read the DAG.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import MLP, build_dataset, log_of, train
from testkit import ROOT, run_cli

from gauntlet import experiments, layout, storage
from gauntlet.config import load_config, resolve
from gauntlet.contract import EXIT_BAD_INPUT
from gauntlet.errors import BadInput, ConfigError
from gauntlet.hashing import DATASET_CODE, code_version

# Committed protocols only: other tests (in parallel workers too) write temporary `test-*` ones there.
PROTOCOLS = sorted(
    f"include/protocols/{p.name}" for p in (ROOT / "include/protocols").glob("*.y*ml") if not p.name.startswith("test-")
)
CONFIGS = sorted(f"include/configs/{p.name}" for p in (ROOT / "include/configs").glob("*.y*ml"))


# --- the trigger forms and the CLI take files only from include/ ----------------------------------


@pytest.fixture
def form(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from gauntlet.airflow.params import nightly_params, sweep_params

    monkeypatch.setenv("GAUNTLET_HOME", str(ROOT))
    return {"nightly": nightly_params(), "sweep": sweep_params()}


def _accepts(param: Any, value: Any) -> bool:
    from airflow.sdk.definitions.param import ParamValidationError

    try:
        param.resolve(value)
    except ParamValidationError:
        return False
    return True


def test_forms_offer_only_the_projects_protocols_and_configs(form: dict[str, Any]) -> None:
    nightly, sweep = form["nightly"], form["sweep"]
    assert PROTOCOLS and CONFIGS
    for params in (nightly, sweep):
        offered = [
            p for p in params["protocol"].schema["enum"] if p is None or not p.split("/")[-1].startswith("test-")
        ]
        assert offered == [None, *PROTOCOLS]
        assert _accepts(params["protocol"], None) and all(_accepts(params["protocol"], p) for p in PROTOCOLS)
    assert nightly["config"].schema["enum"] == CONFIGS
    for path in ("/etc/passwd", "include/protocols/../../etc/passwd", "/tmp/mine.yaml", "include/configs/digits.yaml"):
        assert not _accepts(nightly["protocol"], path), path
    for path in ("/etc/passwd", "include/configs/../protocols/digits-v1.yaml", "include/protocols/digits-v1.yaml"):
        assert not _accepts(nightly["config"], path), path
    grid = sweep["grid"]
    assert _accepts(grid, [{"name": "a", "config": CONFIGS[0]}])
    assert not _accepts(grid, [{"name": "a", "config": "/etc/passwd"}])


def test_a_protocol_file_written_to_include_protocols_joins_the_form(
    monkeypatch: pytest.MonkeyPatch, project_protocol: Callable[[str], Path]
) -> None:
    from gauntlet.airflow.params import nightly_params

    monkeypatch.setenv("GAUNTLET_HOME", str(ROOT))
    path = project_protocol("form")
    path.write_text((ROOT / "include/protocols/digits-v1.yaml").read_text())
    assert f"include/protocols/{path.name}" in nightly_params()["protocol"].schema["enum"]


@pytest.mark.parametrize(
    "prefix", ["../../etc", "/etc", "raw/../../etc", "raw/./digits", "raw//digits", "", "..", "raw/.."]
)
def test_a_raw_prefix_outside_the_store_is_refused_by_form_and_config(form: dict[str, Any], prefix: str) -> None:
    assert not _accepts(form["nightly"]["dataset_prefix"], prefix)
    with pytest.raises(ConfigError, match=r"dataset\.raw_prefix"):
        load_config(resolve("include/configs/digits.yaml"), [f"dataset.raw_prefix={prefix}"])


@pytest.mark.parametrize("prefix", ["raw/digits", "raw/digits/", "raw/v2.1/date_x", "a=b/c-d"])
def test_ordinary_raw_prefixes_still_pass(form: dict[str, Any], prefix: str) -> None:
    assert _accepts(form["nightly"]["dataset_prefix"], prefix)
    config = load_config(resolve("include/configs/digits.yaml"), [f"dataset.raw_prefix={prefix}"])
    assert config.dataset.raw_prefix == prefix.rstrip("/")


def test_config_error_is_bad_input() -> None:
    assert issubclass(ConfigError, BadInput)


def _cli_refusal(*args: str) -> str:
    process, _ = run_cli("s3://not-reached", *args, check=False, timeout=120)
    assert process.returncode == EXIT_BAD_INPUT, log_of(process)
    assert "Traceback" not in process.stderr
    return process.stderr


def test_cli_refuses_a_protocol_or_config_outside_include(tmp_path: Path) -> None:
    copy = tmp_path / "digits-v1.yaml"
    copy.write_text((ROOT / "include/protocols/digits-v1.yaml").read_text())
    step = ["preprocess", "--validation", "s3://not-reached/result.json"]
    error = _cli_refusal("--protocol", str(copy), *step)
    assert f"protocol '{copy}' is not a file in include/protocols/" in error
    assert "include/protocols/digits-v1.yaml" in error  # says which files are allowed
    error = _cli_refusal("--protocol", "include/protocols/../../etc/passwd", *step)
    assert "is not a file in include/protocols/" in error
    error = _cli_refusal("--config", "/etc/passwd", *step)
    assert "config '/etc/passwd' is not a file in include/configs/" in error
    # The config's own protocol key and expectation suite obey the same rule.
    error = _cli_refusal("--set", f"protocol={copy}", *step)
    assert "config.protocol" in error and "include/protocols/" in error
    error = _cli_refusal("--set", "dataset.expectation_suite=/etc/passwd", *step)
    assert "dataset.expectation_suite" in error
    validate = ["validate", "--start", "2026-11-07", "--end", "2026-11-08"]
    error = _cli_refusal("--set", "dataset.raw_prefix=../../etc", "--run-id", "r", *validate)
    assert "dataset.raw_prefix '../../etc'" in error


def test_a_symlink_in_include_protocols_does_not_lead_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text((ROOT / "include/protocols/digits-v1.yaml").read_text())
    link = ROOT / "include/protocols" / f"test-link-{secrets.token_hex(4)}.yaml"
    link.symlink_to(outside)
    try:
        error = _cli_refusal("--protocol", str(link.relative_to(ROOT)), "preprocess", "--validation", "s3://x/r.json")
        assert "is not a file in include/protocols/" in error
    finally:
        link.unlink()


# --- an MPIJob keeps the run's worker count -------------------------------------------------------


GLOBAL = ["--config", "include/configs/digits.yaml", "--store", "s3://b", "--run-id", "gauntlet_nightly__r1"]
TRAIN = ["train", "--dataset", "s3://b/datasets/digits/v1"]


def _launcher(arguments: list[str], nodes: int = 3, gpus: int = 8) -> dict[str, Any]:
    from gauntlet.airflow.mpijob import render_mpijob

    job = render_mpijob("j", "gauntlet", "registry.example/gpu:1", arguments, nodes=nodes, gpus_per_node=gpus)
    launcher: dict[str, Any] = job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    return launcher


def test_mpijob_keeps_the_runs_training_workers() -> None:
    assert _launcher([*GLOBAL, *TRAIN])["args"][-2:] == ["--workers", "24"]
    chosen = [*GLOBAL, "--set", "training.workers=4", *TRAIN]
    assert _launcher(chosen)["args"] == chosen, "the run's 4 workers must not become 24"
    with pytest.raises(BadInput, match="asks for 30 Horovod workers but the MPIJob has 24 GPU slots"):
        _launcher([*GLOBAL, "--set", "training.workers=30", *TRAIN])
    env = {e["name"]: e["value"] for e in _launcher([*GLOBAL, *TRAIN])["env"]}
    assert env["GAUNTLET_DEVICE_CLASS"] == "cuda", "the GPU-less launcher must not key its experiment as cpu"


# --- keys change with everything that changes a result --------------------------------------------


def test_experiment_runtime_names_the_real_builds_and_device() -> None:
    import horovod
    import torch

    runtime = experiments.runtime()
    assert runtime["torch"] == torch.__version__
    assert runtime["horovod"] == horovod.__version__
    expected_device = "cpu"
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        expected_device = f"cuda-sm{major}{minor}"
    assert runtime["device"] == expected_device


@pytest.mark.parametrize(("field", "other"), [("torch", "2.0.0+cu118"), ("horovod", "0.27.0"), ("device", "cuda-sm90")])
def test_each_runtime_input_changes_the_key_and_the_miss_names_it(field: str, other: str) -> None:
    params = {"lr": 0.01, "epochs": 3}
    runtime = experiments.runtime()
    recorded = experiments.key_parts("p1", "d1", params, "c1", runtime)
    record = {"key": experiments.experiment_key(recorded), "key_parts": recorded}
    changed = experiments.key_parts("p1", "d1", params, "c1", {**runtime, field: other})
    assert experiments.experiment_key(changed) != record["key"]
    explanation = experiments.explain_miss(changed, [record])
    assert explanation is not None
    assert explanation.endswith(f"differs only in: runtime.{field} ({other!r} vs {runtime[field]!r})")


def _package_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "gauntlet"
    shutil.copytree(ROOT / "src" / "gauntlet", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.mark.parametrize(
    ("module", "changes_datasets"),
    [("splits.py", True), ("hashing.py", True), ("rawdata.py", True), ("protocol.py", False)],
)
def test_dataset_code_hash_follows_the_split_helpers_not_the_gate(
    tmp_path: Path, module: str, changes_datasets: bool
) -> None:
    package = _package_copy(tmp_path)
    before = code_version(DATASET_CODE, root=package)
    assert before == code_version(DATASET_CODE)
    with (package / module).open("a") as handle:
        handle.write("\n# an edit\n")
    assert (code_version(DATASET_CODE, root=package) != before) is changes_datasets
    assert "protocol.py" not in DATASET_CODE


# --- credentials never on a command line ----------------------------------------------------------


class CommandLineScanner:
    """Reads every process's /proc/<pid>/cmdline, again and again, while a run goes on."""

    def __init__(self, needles: list[bytes]) -> None:
        self.needles = needles
        self.hits: list[tuple[str, bytes]] = []
        self.seen: set[bytes] = set()
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CommandLineScanner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        line = handle.read()
                except OSError:
                    continue  # the process ended meanwhile
                self.seen.add(line)
                for needle in self.needles:
                    if needle in line:
                        self.hits.append((pid, line[:300]))
            self.scans += 1


@pytest.mark.slow
def test_training_keeps_aws_keys_off_every_command_line(seeded_store: str, tmp_path: Path) -> None:
    store = seeded_store
    dataset = build_dataset(store, *MLP)
    canary_key = f"AKIACANARY{secrets.token_hex(5).upper()}"
    canary_secret = f"CANARYSECRET{secrets.token_hex(12)}"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {
        "AWS_ACCESS_KEY_ID": canary_key,
        "AWS_SECRET_ACCESS_KEY": canary_secret,
        "AWS_SESSION_TOKEN": f"CANARYTOKEN{secrets.token_hex(8)}",
        "TMPDIR": str(scratch),  # where the credentials file is written; must be empty afterwards
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-such-file"),  # nothing else to fall back on
    }
    with CommandLineScanner([canary_secret.encode(), canary_key.encode(), b"CANARYTOKEN"]) as scanner:
        process, out = train(store, dataset, *MLP, "--set", "training.epochs=1", env=env)
    print(f"SECURITY cmdline scan: {scanner.scans} passes over /proc, {len(scanner.seen)} distinct command lines")
    assert out["cache_hit"] is False, log_of(process)
    assert scanner.scans > 10
    assert not scanner.hits, f"AWS credentials on a command line: {scanner.hits[:3]}"
    ranks = [line for line in scanner.seen if b"gauntlet.training.worker" in line and b"env" in line]
    assert any(b"AWS_SHARED_CREDENTIALS_FILE=" + str(scratch).encode() in line for line in ranks), (
        "the ranks were not pointed at the credentials file"
    )
    assert not list(scratch.glob("gauntlet-aws-*")), "the credentials file outlived the training"
    record = storage.get_json(layout.record_uri(out["experiment_uri"]))
    assert record["key_parts"]["runtime"] == experiments.runtime()

    # The same run on another device class is another experiment, and the miss says why.
    device = {"GAUNTLET_DEVICE_CLASS": "cuda-sm90"}
    process, again = train(store, dataset, *MLP, "--set", "training.epochs=1", env=device)
    assert again["cache_hit"] is False and again["key"] != out["key"]
    miss = next(line for line in log_of(process).splitlines() if "cache miss" in line)
    assert f"differs only in: runtime.device ('cuda-sm90' vs '{record['key_parts']['runtime']['device']}')" in miss


def test_credentials_file_is_private_and_holds_the_profiles_keys() -> None:
    from gauntlet.training.credentials import rank_environment

    env = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_PROFILE": "night", "PATH": "/bin"}
    with rank_environment(env, []) as ranks:
        path = Path(ranks["AWS_SHARED_CREDENTIALS_FILE"])
        assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
        assert path.read_text() == "[night]\naws_access_key_id = AK\naws_secret_access_key = SK\n"
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(ranks) and ranks["PATH"] == "/bin"
    assert not path.parent.exists()
    # A pod or instance role: no keys, no file, nothing else changes.
    with rank_environment({"PATH": "/bin", "AWS_SESSION_TOKEN": "stray"}, []) as ranks:
        assert ranks == {"PATH": "/bin"}


def test_boto3_reads_the_ranks_credentials_file(tmp_path: Path) -> None:
    from gauntlet.training.credentials import rank_environment

    env = {"AWS_ACCESS_KEY_ID": "AKFILE", "AWS_SECRET_ACCESS_KEY": "SKFILE", "AWS_SESSION_TOKEN": "TKFILE"}
    with rank_environment(env, []) as ranks:
        script = "import boto3; c = boto3.Session().get_credentials(); print(c.access_key, c.secret_key, c.token)"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        out = subprocess.run(
            [sys.executable, "-c", script], env={**clean, **ranks}, capture_output=True, text=True, check=True
        )
    assert out.stdout.split() == ["AKFILE", "SKFILE", "TKFILE"]


# --- the link endpoint asks the auth manager ------------------------------------------------------

_LINK_CLIENT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from airflow.api_fastapi.app import init_auth_manager
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from fastapi.testclient import TestClient
import gauntlet_links

manager = init_auth_manager()
client = TestClient(gauntlet_links._outputs_app())
users = {u.username: u for u in SimpleAuthManager.get_users()}
results = []
for name, uri, dag in json.loads(sys.argv[2]):
    headers = {"Authorization": "Bearer " + manager.generate_jwt(users[name])} if name else {}
    query = {"uri": uri, **({"dag_id": dag} if dag else {})}
    response = client.get("/open", params=query, headers=headers, follow_redirects=False)
    results.append([response.status_code, response.headers.get("location", ""), response.text[:300]])
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def link_users(airflow_home: dict[str, str]) -> dict[str, str]:
    return {
        **airflow_home,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        # `stranger` is a real login with no role: the simple auth manager grants it no DAG.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "reader:viewer,stranger:",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "GAUNTLET_STORE": "s3://gauntlet-links",
        "GAUNTLET_LINK_BASE_URL": "",
    }


def _open(env: dict[str, str], requests: list[tuple[str, str, str | None]]) -> list[list[Any]]:
    with tempfile.TemporaryDirectory() as home:
        process = subprocess.run(
            [sys.executable, "-c", _LINK_CLIENT, str(ROOT / "plugins"), json.dumps(requests)],
            env={**env, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": f"{home}/passwords.json"},
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
    line = next((ln for ln in process.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert line, process.stdout[-3000:] + process.stderr[-3000:]
    results: list[list[Any]] = json.loads(line[len("RESULTS ") :])
    return results


def test_link_endpoint_opens_only_for_users_who_may_read_the_dag(link_users: dict[str, str]) -> None:
    report = "s3://gauntlet-links/evaluations/p/k/champion/report.html"
    own_run = "s3://gauntlet-links/runs/gauntlet_sweep__manual_1/validation/docs/index.html"
    results = _open(
        link_users,
        [
            ("reader", report, "gauntlet_nightly"),
            ("stranger", report, "gauntlet_nightly"),
            ("stranger", own_run, None),
            ("reader", report, "some_other_dag"),
            ("", report, "gauntlet_nightly"),
        ],
    )
    (ok, *_), (denied, _, why), (denied_run, _, why_run), (foreign, _, why_foreign), (anonymous, *_) = results
    assert ok == 307 and "Signature=" in results[0][1], results[0]
    assert denied == 403 and "may not read DAG 'gauntlet_nightly'" in why
    # A run's own outputs belong to the DAG in their path, whatever the link's dag_id says.
    assert denied_run == 403 and "may not read DAG 'gauntlet_sweep'" in why_run
    assert foreign == 403 and "does not belong to a pipeline DAG" in why_foreign
    assert anonymous == 401


def test_links_name_their_dag() -> None:
    from gauntlet.airflow.links import browser_url, owning_dag

    assert browser_url("s3://g/runs/x/a.html", "gauntlet_sweep").endswith("&dag_id=gauntlet_sweep")
    assert owning_dag("s3://g/runs/gauntlet_sweep__r1/a.html", "gauntlet_nightly", store="s3://g") == "gauntlet_sweep"
    assert owning_dag("s3://g/experiments/k/RECORD.json", None, store="s3://g") == "gauntlet_nightly"
    with pytest.raises(PermissionError):
        owning_dag("s3://g/runs/evil__r1/a.html", "gauntlet_nightly", store="s3://g")
