"""gauntlet.airflow.containers: runtime, image, GPU count and environment shared by container runtimes."""

from __future__ import annotations

import pytest

from gauntlet.airflow import containers


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "GAUNTLET_RUNTIME",
        "GAUNTLET_GPUS",
        "GAUNTLET_K8S_GPUS_PER_POD",
        "GAUNTLET_IMAGE",
        "GAUNTLET_GPU_IMAGE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GAUNTLET_IMAGE_DIGEST", raising=False)


def test_only_train_asks_for_gpus_and_the_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_GPUS", "3")
    assert containers.gpus_for("train", "docker") == 3
    assert containers.gpus_for("evaluate", "docker") == 0
    monkeypatch.delenv("GAUNTLET_GPUS")
    monkeypatch.setenv("GAUNTLET_K8S_GPUS_PER_POD", "2")
    assert containers.gpus_for("train", "kubernetes") == 2


def test_gpu_steps_use_the_gpu_image(monkeypatch: pytest.MonkeyPatch) -> None:
    assert containers.image_for(0) == containers.DEFAULT_IMAGE
    assert containers.image_for(1) == containers.DEFAULT_GPU_IMAGE
    monkeypatch.setenv("GAUNTLET_GPU_IMAGE", "reg/gpu:2")
    assert containers.image_for(4) == "reg/gpu:2"


@pytest.mark.parametrize(
    ("step", "arguments", "gpus", "expected_tail"),
    [
        ("train", ["train"], 2, ["--workers", "2"]),
        ("train", ["train", "--workers", "1"], 2, ["--workers", "1"]),
        ("train", ["--set", "training.workers=1", "train"], 2, ["train"]),
        ("evaluate", ["evaluate"], 2, ["evaluate"]),
        ("train", ["train"], 0, ["train"]),
    ],
)
def test_one_rank_per_gpu_unless_the_run_chose(
    step: str, arguments: list[str], gpus: int, expected_tail: list[str]
) -> None:
    result = containers.with_gpu_workers(step, arguments, gpus)
    assert result[-len(expected_tail) :] == expected_tail
    assert result.count("--workers") <= 1


def test_the_image_digest_comes_from_a_pinned_reference_else_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert containers.image_digest_of("reg/g@sha256:abc") == "sha256:abc"
    assert containers.image_digest_of("reg/g:1") is None
    monkeypatch.setenv("GAUNTLET_IMAGE_DIGEST", "sha256:def")
    assert containers.image_digest_of("reg/g:1") == "sha256:def"


def test_settings_environment_passes_step_settings_but_no_aws_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_LOG_LEVEL", "DEBUG")
    monkeypatch.delenv("GAUNTLET_GLOO_TIMEOUT_S", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "never-here")
    env = containers.settings_environment("sha256:1")
    assert env == {"GAUNTLET_LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1", "GAUNTLET_IMAGE_DIGEST": "sha256:1"}


def test_configured_runtime_defaults_to_local_and_refuses_unknown_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert containers.configured_runtime() == "local"
    monkeypatch.setenv("GAUNTLET_RUNTIME", "kubernetes")
    assert containers.configured_runtime() == "kubernetes"
    with pytest.raises(ValueError, match="podman"):
        containers.validate_runtime("podman")
