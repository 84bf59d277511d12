"""Airflow plugin: the gauntlet step tasks' extra links (Data Docs, dataset, experiment, report, registry).

The links themselves live in gauntlet.airflow.links and are attached per step by
GauntletStepOperator (Airflow 3 computes them in the task process and serves them from XCom);
registering them here lists them under Admin > Plugins and lets the UI resolve them by class.

The plugin also serves `/gauntlet/open?uri=s3://...` on the API server: it requires an Airflow
login (session cookie or bearer token) and redirects to a presigned URL that expires in minutes,
so no link stored in XCom ever carries credentials.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from gauntlet.airflow.links import ALL_LINKS, presign_for_user


def _outputs_app() -> Any:
    """The FastAPI app behind the links; built lazily so task processes never import the API server."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import RedirectResponse

    app = FastAPI(title="gauntlet outputs")
    logged_in = Depends(get_user)  # any Airflow login may open the pipeline's outputs

    @app.get("/open")
    def open_output(
        uri: str = Query(..., description="s3:// URI of a pipeline output"), user: Any = logged_in
    ) -> RedirectResponse:
        try:
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
