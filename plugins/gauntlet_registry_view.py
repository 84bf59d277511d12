"""Airflow plugin: the model registry and the experiments as a page of the Airflow UI.

Wiring only: the page is gauntlet.airflow.registry_view's FastAPI app, mounted on the API server
and listed in the UI's navigation as an external view (shown in an iframe on the UI's own origin).
Access is the output links' rule, by the same function: an Airflow login, and leave from the auth
manager to read the pipeline DAG.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin
from gauntlet_links import may_read_dag

from gauntlet.airflow.registry_view import EXTERNAL_VIEW, URL_PREFIX


class GauntletRegistryViewPlugin(AirflowPlugin):
    name = "gauntlet_registry_view"
    external_views = [EXTERNAL_VIEW]  # noqa: RUF012  (AirflowPlugin types it a plain list)

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        # Built on first use, so task processes that load plugins never import the API server.
        from gauntlet.airflow.registry_view import registry_app

        return [{"app": registry_app(may_read_dag), "url_prefix": URL_PREFIX, "name": "gauntlet registry"}]
