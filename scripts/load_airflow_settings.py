"""Load connections, pools and variables from an Astro-style airflow_settings.yaml into Airflow.

    airflow:
      connections: [{conn_id, conn_type, conn_host, conn_login, conn_password, conn_port, conn_extra}]
      pools:       [{pool_name, pool_slot, pool_description}]
      variables:   [{variable_name, variable_value}]

String values may name environment variables as ${NAME} or ${NAME:-default}, so one file serves
the default stack and a test stack on other ports. Loading is idempotent: existing entries are
updated in place. Run with the stack's environment (AIRFLOW_HOME and AIRFLOW__* settings).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value: Any) -> Any:
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    return value


def load(path: Path) -> dict[str, int]:
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    spec = expand((yaml.safe_load(path.read_text()) or {}).get("airflow") or {})
    with create_session() as session:
        for item in spec.get("connections") or []:
            conn = session.scalar(select(Connection).where(Connection.conn_id == item["conn_id"]))
            if conn is None:
                conn = Connection(conn_id=item["conn_id"])
                session.add(conn)
            conn.conn_type = item["conn_type"]
            conn.host = item.get("conn_host") or None
            conn.schema = item.get("conn_schema") or None
            conn.login = item.get("conn_login") or None
            conn.password = item.get("conn_password") or None
            conn.port = item.get("conn_port") or None
            extra = item.get("conn_extra")
            conn.set_extra(json.dumps(extra) if isinstance(extra, dict) else extra or None)
        for item in spec.get("pools") or []:
            Pool.create_or_update_pool(
                item["pool_name"],
                int(item["pool_slot"]),
                item.get("pool_description") or "",
                include_deferred=False,
                session=session,
            )
        for item in spec.get("variables") or []:
            value = item["variable_value"]
            Variable.set(item["variable_name"], value if isinstance(value, str) else json.dumps(value), session=session)
    return {kind: len(spec.get(kind) or []) for kind in ("connections", "pools", "variables")}


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "airflow_settings.yaml")
    counts = load(path)
    print(f"loaded {path}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
