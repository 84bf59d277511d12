"""gauntlet.airflow.assets: the champion Asset's name and URI, and when its event is emitted."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gauntlet.airflow.assets import CHAMPION_ALIAS, PublishChampionOperator, champion_asset, champion_asset_of


def test_the_asset_names_model_and_bucket_and_points_at_the_champion_alias() -> None:
    asset = champion_asset_of("s3://prod-bucket/registry/digits-classifier/")
    assert asset.name == "gauntlet.champion.digits-classifier@prod-bucket"
    assert asset.uri == "s3://prod-bucket/registry/digits-classifier/aliases/champion.json"
    assert asset.group == "model"


def test_two_stores_have_two_champion_assets() -> None:
    staging = champion_asset_of("s3://staging/registry/m")
    production = champion_asset_of("s3://production/registry/m")
    assert staging.name != production.name and staging.uri != production.uri


def test_the_default_config_s_model_in_the_configured_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_STORE", "s3://night-store")
    asset = champion_asset()
    assert asset.name == "gauntlet.champion.digits-classifier@night-store"
    assert asset.uri.startswith("s3://night-store/")


class _Events(dict[Any, Any]):
    def __missing__(self, key: Any) -> Any:
        self[key] = SimpleNamespace(added=[], add=lambda asset, extra: self[key].added.append((asset, extra)))
        return self[key]


def _context(registered: dict[str, Any] | None) -> dict[str, Any]:
    return {"ti": SimpleNamespace(xcom_pull=lambda task_ids: registered), "outlet_events": _Events()}


@pytest.mark.parametrize(
    ("registered", "reason"),
    [
        ({"promoted": False, "champion": True}, "already champion"),
        ({"promoted": False, "reason": "gate failed"}, "gate failed"),
        (None, "not promoted"),
    ],
)
def test_no_promotion_skips_without_an_event(registered: dict[str, Any] | None, reason: str) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    operator = PublishChampionOperator(task_id="publish")
    context = _context(registered)
    with pytest.raises(AirflowSkipException, match=reason):
        operator.execute(context)
    assert not context["outlet_events"]


def test_a_promotion_emits_the_event_of_the_registry_the_run_wrote() -> None:
    operator = PublishChampionOperator(task_id="publish")
    assert [alias.name for alias in operator.outlets] == [CHAMPION_ALIAS]
    registered = {
        "promoted": True,
        "version": 3,
        "version_uri": "s3://b/registry/other-model/versions/3.json",
        "registry_uri": "s3://b/registry/other-model",
    }
    context = _context(registered)
    result = operator.execute(context)
    ((asset, extra),) = context["outlet_events"][operator.alias].added
    assert asset.name == "gauntlet.champion.other-model@b"
    assert extra["version"] == 3 and result["asset"] == asset.name
