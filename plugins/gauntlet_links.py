"""Airflow plugin: the gauntlet step tasks' extra links (Data Docs, dataset, experiment, report, registry).

The links themselves live in gauntlet.airflow.links and are attached per step by
GauntletStepOperator (Airflow 3 computes them in the task process and serves them from XCom);
registering them here lists them under Admin > Plugins and lets the UI resolve them by class.

The plugin also serves `/gauntlet/open?uri=s3://...&dag_id=...` on the API server: it requires an
Airflow login (session cookie or bearer token), asks Airflow's auth manager whether that user may
read the DAG the object belongs to (403 if not), and only then redirects to a presigned URL that
expires in minutes, so no link stored in XCom ever carries credentials.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from gauntlet.airflow.links import ALL_LINKS, owning_dag, presign_for_user


def may_read_dag(user: Any, dag_id: str) -> bool:
    """The auth manager's verdict on GET of one DAG, with its team as the core API's own checks pass it."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.models.dag import DagModel

    details = DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id))
    return bool(get_auth_manager().is_authorized_dag(method="GET", details=details, user=user))


def _outputs_app() -> Any:
    """The FastAPI app behind the links; built lazily so task processes never import the API server."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import RedirectResponse

    app = FastAPI(title="gauntlet outputs")
    logged_in = Depends(get_user)

    @app.get("/open")
    def open_output(
        uri: str = Query(..., description="s3:// URI of a pipeline output"),
        dag_id: str | None = Query(None, description="the DAG whose task links to the object"),
        user: Any = logged_in,
    ) -> RedirectResponse:
        try:
            dag = owning_dag(uri, dag_id)
            if not may_read_dag(user, dag):
                raise PermissionError(f"user {user.get_name()!r} may not read DAG {dag!r}, which {uri} belongs to")
            return RedirectResponse(presign_for_user(uri), status_code=307)
        except PermissionError as error:
            raise HTTPException(status_code=403, detail=str(error)) from error

    return app


class GauntletLinksPlugin(AirflowPlugin):
    name = "gauntlet_links"
    operator_extra_links: ClassVar[list[Any]] = [link() for link in ALL_LINKS]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [{"app": _outputs_app(), "url_prefix": "/gauntlet", "name": "gauntlet outputs"}]
