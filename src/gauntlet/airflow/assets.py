"""The champion Asset: an Airflow event each time the registry's champion actually moves.

Downstream DAGs schedule on `champion_asset()` (e.g. to deploy or to re-score) and are triggered
only by a promotion, never by a run that left the champion where it was. The event goes to the
champion of the model the run actually registered: a run may choose another config (another
`model.name`) than the one the DAG was parsed with, so the publishing task declares an AssetAlias
and resolves it to the concrete Asset from the register step's outputs when it runs.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, AssetAlias, BaseOperator

from gauntlet import layout, storage
from gauntlet.config import DEFAULT_CONFIG, load_config, resolve
from gauntlet.errors import ConfigError
from gauntlet.registry import CHAMPION

CHAMPION_ALIAS = "gauntlet.champion"


def _model_name(config_path: str) -> str:
    try:
        return load_config(resolve(config_path)).model.name
    except ConfigError:
        return "digits-classifier"


def champion_asset_of(registry_uri: str) -> Asset:
    """The Asset of one registry's champion: `<registry>/aliases/champion.json`, named
    `gauntlet.champion.<model>@<bucket>`.

    Airflow keys assets by name and refuses one name with two URIs, so the store's bucket is part of
    the name: two stores (say staging and production) have two champions.
    """
    model = registry_uri.rstrip("/").rsplit("/", 1)[-1]
    return Asset(
        name=f"gauntlet.champion.{model}@{storage.S3Uri.parse(registry_uri).bucket}",
        group="model",
        uri=layout.alias_uri(registry_uri, CHAMPION),
    )


def champion_asset(config_path: str = DEFAULT_CONFIG) -> Asset:
    """The champion Asset of the config's model in $GAUNTLET_STORE: what a downstream DAG schedules on."""
    return champion_asset_of(layout.registry_root(layout.store_root(), _model_name(config_path)))


class PublishChampionOperator(BaseOperator):
    """Succeeds (emitting the asset event) only if the register task promoted a new champion; else skips.

    The event is for the champion of the registry the register task wrote to, whatever config the
    run used.
    """

    ui_color = "#fdf1d8"

    def __init__(self, *, register_task_id: str | tuple[str, ...] = "register", **kwargs: Any) -> None:
        alias = AssetAlias(CHAMPION_ALIAS, group="model")
        super().__init__(outlets=[alias], **kwargs)
        self.alias = alias
        self.register_task_id = register_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        # One task id, or several (register, then promote after an approval): the one that promoted counts.
        task_ids = [self.register_task_id] if isinstance(self.register_task_id, str) else list(self.register_task_id)
        pulled = [context["ti"].xcom_pull(task_ids=task_id) or {} for task_id in task_ids]
        registered = next((outputs for outputs in pulled if outputs.get("promoted")), pulled[0])
        if not registered.get("promoted"):
            reason = "already champion" if registered.get("champion") else (registered.get("reason") or "not promoted")
            if registered.get("awaiting_approval"):
                reason = "not approved"
            raise AirflowSkipException(f"champion unchanged ({reason}): no asset event")
        asset = champion_asset_of(registered["registry_uri"])
        extra = {
            "version": registered["version"],
            "version_uri": registered["version_uri"],
            "registry_uri": registered["registry_uri"],
        }
        context["outlet_events"][self.alias].add(asset, extra=extra)
        self.log.info("champion is now v%s: asset event for %s (%s)", registered["version"], asset.name, asset.uri)
        return {**extra, "asset": asset.name}
