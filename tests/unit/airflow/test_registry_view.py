"""gauntlet.airflow.registry_view: the registry and experiments page, and who may open it."""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import sys
import tempfile
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from registry_seed import MODEL, OTHER_PROTOCOL, PROTOCOL, seed_registry
from testkit import ROOT

from gauntlet.airflow import registry_view

DAG = "gauntlet_nightly"


def rows_of(page: str, heading: str) -> list[str]:
    """The text of each data row of the first table after `heading`, tags stripped."""
    section = page[page.index(heading) :]
    first = section[section.index("<table>") : section.index("</table>")]
    return [re.sub(r"<[^>]+>", " ", row.split(">", 1)[1]) for row in first.split("<tr")[2:]]


def opened_uris(page: str) -> set[str]:
    """The store objects the page links to through the authenticated redirect, with their DAG."""
    found = set()
    for href in re.findall(r"href='([^']+)'", page):
        url = urlsplit(href.replace("&amp;", "&"))
        if url.path.endswith("/gauntlet/open"):
            query = parse_qs(url.query)
            found.add((query["uri"][0], query["dag_id"][0]))
    return found


def test_the_page_shows_versions_champion_history_lineage_and_verdicts(store: str) -> None:
    seeded = seed_registry(store)
    page = registry_view.render_page(store, None, DAG, "reader")
    assert f"Model {MODEL}" in page and "Champion: <b>v2</b>" in page
    v3, v2, v1 = rows_of(page, "Versions (newest first)")
    assert v2.split()[:2] == ["v2", "(champion)"] and "pass" in v2 and "better than v1" in v2
    assert "fail" in v3 and "worse than v2" in v3 and "champion" not in v3
    assert "no champion yet" in v1 and "v20261107" in v1 and seeded["keys"][0][:12] in v1
    # The champion's moves, newest first: v2 replaced v1, each by its nightly run.
    history = rows_of(page, "Champion alias history")
    assert [row.split()[1:3] for row in history] == [["v2", "promoted"], ["v1", "promoted"]]
    assert "nightly__d2" in history[0]
    # Lineage links open the record, the dataset manifest and the report through the login check.
    first = seeded["keys"][0]
    assert {
        (f"{store}/experiments/{first}/RECORD.json", DAG),
        (f"{store}/datasets/digits/v20261107/MANIFEST.json", DAG),
    } <= opened_uris(page)
    reports = {uri for uri, _ in opened_uris(page) if uri.endswith("/report.html")}
    assert {uri.split("/")[-4] for uri in reports} == set(seeded["keys"][:3])
    events = rows_of(page, "Recent registry events")
    assert sum("registered" in row for row in events) == 3 and sum("promoted" in row for row in events) == 2


def test_experiments_of_the_champions_protocol_are_compared_with_their_curves(store: str) -> None:
    seeded = seed_registry(store)
    page = registry_view.render_page(store, None, DAG)
    assert f"Experiments under protocol <code>{PROTOCOL}</code>" in page
    head = page[page.index("<h3>Comparison") :]
    assert all(f"<th>test {m}</th>" in head for m in ("accuracy", "error_rate", "macro_f1"))
    rows = rows_of(page, "<h3>Comparison")
    third, second, first = rows
    assert [k[:12] in row for k, row in zip(seeded["keys"][2::-1], rows, strict=True)] == [True] * 3
    assert "digits v2 (champion)" in second and "digits v3" in third and "digits v1" in first
    assert all(" T1 " in row for row in rows) and "fail" in third
    # Test error of the second experiment: its dev error (0.035 * 7/6) times 1.05.
    assert f"{0.035 * 7 / 6 * 1.05:.4f}" in second
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1))  # type: ignore[union-attr]
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    # The other protocol is one click away and is never mixed into this table.
    assert seeded["keys"][3][:12] not in head
    other = registry_view.render_page(store, OTHER_PROTOCOL, DAG)
    assert [seeded["keys"][3][:12] in row for row in rows_of(other, "<h3>Comparison")] == [True]


def test_an_uncommitted_evaluation_is_not_read(store: str) -> None:
    from gauntlet import layout, storage

    seeded = seed_registry(store)
    key = seeded["keys"][1]
    crashed = layout.evaluation_prefix(store, PROTOCOL, key, "refs", "crashed")
    storage.put_json(layout.report_uri(crashed), {"created": "2099-01-01", "metrics": {"candidate": {}}})
    report = registry_view.newest_report(store, PROTOCOL, key)
    assert report is not None and report["report_uri"] != layout.report_uri(crashed)


def test_an_empty_or_missing_store_says_so(store: str) -> None:
    for where in (store, "s3://gauntlet-no-such-bucket-here"):
        page = registry_view.render_page(where, None, DAG)
        assert "No model has been registered yet" in page and "No experiment has been recorded yet" in page


# --- who may open it: the plugin as Airflow loads it, with the simple auth manager ---------------

_CLIENT = """
import json, sys
from airflow import plugins_manager
from airflow.api_fastapi.app import init_auth_manager
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from fastapi.testclient import TestClient

manager = init_auth_manager()
views, _ = plugins_manager._get_ui_plugins()
apps, _ = plugins_manager.get_fastapi_plugins()
mounted = next(a for a in apps if a["url_prefix"] == "/gauntlet-registry")
client = TestClient(mounted["app"])
users = {u.username: u for u in SimpleAuthManager.get_users()}
results = []
for name, how, query in json.loads(sys.argv[1]):
    token = manager.generate_jwt(users[name]) if name else ""
    headers = {"Authorization": "Bearer " + token} if how == "bearer" else {}
    client.cookies.clear()
    if how == "cookie":
        client.cookies.set("_token", token)
    response = client.get("/", params=query, headers=headers)
    results.append([response.status_code, response.text])
print("RESULTS " + json.dumps({"views": views, "results": results}))
"""


@pytest.fixture(scope="module")
def auth_env(airflow_home: dict[str, str], s3_endpoint: str) -> dict[str, str]:
    return {
        **airflow_home,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        # `stranger` is a real login with no role: the simple auth manager lets it read no DAG.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "reader:viewer,stranger:",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
    }


def _ask(env: dict[str, str], store: str, requests: list[tuple[str, str, dict[str, str]]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        process = subprocess.run(
            [sys.executable, "-c", _CLIENT, json.dumps(requests)],
            env={
                **env,
                "GAUNTLET_STORE": store,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": f"{home}/passwords.json",
            },
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
    line = next((ln for ln in process.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert line, process.stdout[-3000:] + process.stderr[-3000:]
    answer: dict[str, Any] = json.loads(line[len("RESULTS ") :])
    return answer


def test_only_a_logged_in_reader_of_the_dag_sees_the_registry(auth_env: dict[str, str], store: str) -> None:
    seed_registry(store)
    answer = _ask(
        auth_env,
        store,
        [
            ("reader", "bearer", {}),
            ("reader", "cookie", {"protocol": OTHER_PROTOCOL}),
            ("stranger", "bearer", {}),
            ("stranger", "cookie", {"dag_id": "gauntlet_sweep"}),
            ("reader", "bearer", {"dag_id": "some_other_dag"}),
            ("", "none", {}),
        ],
    )
    (ok, page), (by_cookie, other), (denied, why), (denied_sweep, why_sweep), (foreign, why_foreign), (anon, _) = (
        answer["results"]
    )
    assert ok == 200 and f"Model {MODEL}" in page and "signed in as reader" in page
    # The UI's iframe sends no header, only Airflow's session cookie.
    assert by_cookie == 200 and f"Experiments under protocol <code>{OTHER_PROTOCOL}</code>" in other
    assert denied == 403 and "may not read DAG 'gauntlet_nightly'" in why and MODEL not in why
    assert denied_sweep == 403 and "may not read DAG 'gauntlet_sweep'" in why_sweep
    assert foreign == 403 and "does not belong to a pipeline DAG" in why_foreign
    assert anon == 401
    # Airflow lists the page in its navigation, embedded (url_route) rather than an outside link.
    assert registry_view.EXTERNAL_VIEW in answer["views"]
