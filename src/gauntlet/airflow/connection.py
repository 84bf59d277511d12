"""S3 settings from an Airflow connection, for a step's environment.

Shared by every runtime (the local operator, containers, pods) and by the output links, which
presign on the API server: each needs the same settings and none should import the others for them.
"""

from __future__ import annotations

import os

from airflow.sdk import BaseHook

S3_CONN_ID = os.environ.get("GAUNTLET_S3_CONN_ID", "gauntlet_s3")


def s3_environment(conn_id: str = S3_CONN_ID) -> dict[str, str]:
    """AWS settings from an Airflow connection, if one is defined; else the standard chain applies.

    Values go to the child process's environment only: never into arguments, XCom or logs.
    """
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # no such connection: the environment's own AWS settings are used
        return {}
    env: dict[str, str] = {}
    if conn.login:
        env["AWS_ACCESS_KEY_ID"] = conn.login
        env["AWS_SECRET_ACCESS_KEY"] = conn.password or ""
    extra = conn.extra_dejson
    if extra.get("endpoint_url"):
        env["AWS_ENDPOINT_URL"] = extra["endpoint_url"]
    if extra.get("region_name"):
        env["AWS_DEFAULT_REGION"] = extra["region_name"]
    if extra.get("aws_session_token"):
        env["AWS_SESSION_TOKEN"] = extra["aws_session_token"]
    return env


MLFLOW_CONN_ID = os.environ.get("GAUNTLET_MLFLOW_CONN_ID", "gauntlet_mlflow")


def mlflow_environment(conn_id: str = MLFLOW_CONN_ID) -> dict[str, str]:
    """MLflow tracking settings from an Airflow connection, if one is defined; else the environment's own.

    The connection's extra `tracking_uri`, or its host (a URL, or a name with schema and port);
    login/password for basic auth, extra `token` for a bearer token. Child environment only, as above.
    """
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # no such connection: MLFLOW_TRACKING_URI as the environment has it, or no mirror
        return {}
    extra = conn.extra_dejson
    uri = extra.get("tracking_uri") or conn.host or ""
    if uri and "://" not in uri:
        scheme = conn.schema or ("https" if conn.conn_type == "https" else "http")
        uri = f"{scheme}://{uri}{f':{conn.port}' if conn.port else ''}"
    env = {"MLFLOW_TRACKING_URI": uri} if uri else {}
    if conn.login:
        env["MLFLOW_TRACKING_USERNAME"] = conn.login
        env["MLFLOW_TRACKING_PASSWORD"] = conn.password or ""
    if extra.get("token"):
        env["MLFLOW_TRACKING_TOKEN"] = extra["token"]
    return env
