"""requirements.lock agrees with requirements.txt and requirements-dev.txt, pins every package with hashes,
and scripts/image_requirements.py takes from it a task image list that lacks nothing its packages need."""

from __future__ import annotations

import importlib.util
import re
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt")


def _image_requirements() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_requirements", ROOT / "scripts" / "image_requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


IMAGE = _image_requirements()


def _requirements(text: str) -> list[Requirement]:
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def _locked_versions(lock_text: str) -> dict[str, str]:
    return {name: entry.pin.split("==", 1)[1] for name, entry in IMAGE.parse_lock(lock_text).items()}


def disagreements(requirement_texts: dict[str, str], lock_text: str) -> list[str]:
    """What the requirement files ask for that the lock lacks or holds at another version."""
    locked = _locked_versions(lock_text)
    found = []
    for file, text in requirement_texts.items():
        for requirement in _requirements(text):
            name = canonicalize_name(requirement.name)
            if name not in locked:
                found.append(f"{file}: {requirement} is not in requirements.lock")
            elif not requirement.specifier.contains(locked[name], prereleases=True):
                found.append(f"{file}: {requirement}, but requirements.lock has {name}=={locked[name]}")
    return found


def _requirement_texts() -> dict[str, str]:
    return {file: (ROOT / file).read_text() for file in REQUIREMENT_FILES}


def test_the_lock_holds_every_requirement_at_its_pin() -> None:
    found = disagreements(_requirement_texts(), (ROOT / "requirements.lock").read_text())
    assert not found, "requirements.lock is out of date; run `make lock`:\n" + "\n".join(found)


def test_a_pin_the_lock_disagrees_with_or_lacks_is_reported() -> None:
    lock = "numpy==2.4.6 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via -r requirements.txt\n"
    assert not disagreements({"requirements.txt": "numpy==2.4.6\n"}, lock)
    found = disagreements({"requirements.txt": "numpy==2.4.7\npsutil\n"}, lock)
    assert found == [
        "requirements.txt: numpy==2.4.7, but requirements.lock has numpy==2.4.6",
        "requirements.txt: psutil is not in requirements.lock",
    ]


def test_every_lock_entry_is_an_exact_pin_with_hashes() -> None:
    text = (ROOT / "requirements.lock").read_text()
    entries = IMAGE.parse_lock(text)
    assert len(entries) == len([line for line in text.splitlines() if line[:1].isalnum()])
    loose = [
        name for name, entry in entries.items() if not re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!]+", entry.pin)
    ]
    unhashed = [name for name, entry in entries.items() if not entry.hashes]
    malformed = [h for entry in entries.values() for h in entry.hashes if not re.fullmatch(r"sha256:[0-9a-f]{64}", h)]
    assert not loose and not unhashed and not malformed, (loose, unhashed, malformed)
    # The CPU build of torch, and the tools setup builds with.
    assert entries["torch"].pin.endswith("+cpu")
    assert {"pip", "setuptools", "wheel"} <= entries.keys()


def test_image_requirements_follow_what_requires_what() -> None:
    lock = "\n".join(
        [
            "a==1 \\\n    --hash=sha256:" + "1" * 64 + "\n    # via -r requirements.txt",
            "b==2 \\\n    --hash=sha256:" + "2" * 64 + "\n    # via\n    #   a\n    #   z",
            "c==3 \\\n    --hash=sha256:" + "3" * 64 + "\n    # via b",
            "d==4 \\\n    --hash=sha256:" + "4" * 64 + "\n    # via z",
        ]
    )
    entries = IMAGE.parse_lock(lock)
    assert entries["b"].required_by == {"a", "z"}
    assert entries["a"].required_by == set()
    assert entries["c"].line(hashes=True) == "c==3 --hash=sha256:" + "3" * 64


def test_the_image_list_lacks_nothing_its_packages_require() -> None:
    """Each image package's own requirements (as installed here from the lock) are in the image list."""
    packages = IMAGE.image_packages(ROOT)
    names = {package.name for package in packages}
    assert {"torch", "scikit-learn", "great-expectations", "boto3", "botocore", "cloudpickle"} <= names
    assert not names & {"apache-airflow", "moto", "pytest"}, "the task image must not carry Airflow or test tools"
    missing = []
    for name in sorted(names):
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue  # a package only another platform or Python needs
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(requirement.name) not in names:
                missing.append(f"{name} requires {requirement}")
    assert not missing, missing


def test_image_lines_carry_the_lock_hashes() -> None:
    lines = IMAGE.image_requirements(ROOT, hashes=True)
    assert lines and all(re.search(r"==\S+ (--hash=sha256:[0-9a-f]{64} ?)+$", line) for line in lines)
    assert any(line.startswith("torch==") and "+cpu" in line for line in lines)
