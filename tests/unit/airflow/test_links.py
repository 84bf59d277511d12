"""gauntlet.airflow.links: links from a task to what its step wrote, without credentials."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from gauntlet.airflow import links


def test_a_link_opens_through_the_api_server_with_uri_and_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAUNTLET_LINK_BASE_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example/")
    url = urlsplit(links.browser_url("s3://b/runs/x/report.html", "gauntlet_sweep"))
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://airflow.example" + links.OPEN_PATH
    assert parse_qs(url.query) == {"uri": ["s3://b/runs/x/report.html"], "dag_id": ["gauntlet_sweep"]}


def test_a_base_url_makes_plain_bucket_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_LINK_BASE_URL", "https://proxy.example/s3/")
    assert links.browser_url("s3://b/a/b.html", "gauntlet_nightly") == "https://proxy.example/s3/b/a/b.html"


def test_each_step_shows_only_the_link_to_what_it_writes() -> None:
    steps = ("validate", "preprocess", "train", "evaluate", "register", "sweep-report", "plan")
    names = {step: [link.name for link in links.links_for(step)] for step in steps}
    assert names == {
        "validate": ["Data Docs"],
        "preprocess": ["Dataset manifest"],
        "train": ["Experiment record"],
        "evaluate": ["Evaluation report"],
        "register": ["Registry entry"],
        "sweep-report": ["Sweep comparison"],
        "plan": [],
    }


def test_a_step_without_that_output_has_no_link() -> None:
    ran = SimpleNamespace(outputs={"other": "s3://b/x"})
    assert links.DatasetLink().target(ran) is None
    assert links.ReportLink().target(SimpleNamespace(outputs={"report_html_uri": "s3://b/r.html"})) == "s3://b/r.html"
    assert links.DatasetLink().target(SimpleNamespace(outputs={"dataset_uri": "s3://b/d/v1/"})) == (
        "s3://b/d/v1/MANIFEST.json"
    )


def test_presigning_refuses_objects_outside_the_store() -> None:
    with pytest.raises(PermissionError, match="not under"):
        links.presign_for_user("s3://other-bucket/secret.csv", store="s3://gauntlet")
    with pytest.raises(PermissionError):
        links.presign_for_user("s3://gauntlet/runs/../../x", store="s3://gauntlet")
