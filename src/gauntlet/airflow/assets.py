"""The champion Asset: an Airflow event each time the registry's champion actually moves.

Downstream DAGs schedule on `champion_asset()` (e.g. to deploy or to re-score) and are triggered
only by a promotion, never by a run that left the champion where it was.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Asset, BaseOperator

from gauntlet import storage
from gauntlet.config import DEFAULT_CONFIG, ConfigError, load_config, resolve

DEFAULT_STORE = "s3://gauntlet"


def _model_name(config_path: str) -> str:
    try:
        return load_config(resolve(config_path)).model.name
    except ConfigError:
        return "digits-classifier"


def champion_asset(config_path: str = DEFAULT_CONFIG) -> Asset:
    """`s3://<store>/registry/<model>/aliases/champion.json`, named `gauntlet.champion.<model>@<bucket>`.

    Airflow keys assets by name and refuses one name with two URIs, so the store's bucket is part of
    the name: two stores (say staging and production) have two champions.
    """
    model = _model_name(config_path)
    store = os.environ.get("GAUNTLET_STORE", DEFAULT_STORE)
    return Asset(
        name=f"gauntlet.champion.{model}@{storage.S3Uri.parse(store).bucket}",
        group="model",
        uri=storage.join(store, "registry", model, "aliases", "champion.json"),
    )


class PublishChampionOperator(BaseOperator):
    """Succeeds (emitting the asset event) only if the register task promoted a new champion; else skips."""

    ui_color = "#fdf1d8"

    def __init__(self, *, asset: Asset, register_task_id: str = "register", **kwargs: Any) -> None:
        super().__init__(outlets=[asset], **kwargs)
        self.asset = asset
        self.register_task_id = register_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        registered = context["ti"].xcom_pull(task_ids=self.register_task_id) or {}
        if not registered.get("promoted"):
            reason = "already champion" if registered.get("champion") else (registered.get("reason") or "not promoted")
            raise AirflowSkipException(f"champion unchanged ({reason}): no asset event")
        extra = {
            "version": registered["version"],
            "version_uri": registered["version_uri"],
            "registry_uri": registered["registry_uri"],
        }
        context["outlet_events"][self.asset].extra = extra
        self.log.info("champion is now v%s: asset event for %s", registered["version"], self.asset.uri)
        return extra
