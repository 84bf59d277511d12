"""The nightly run's deadline: finish within GAUNTLET_NIGHTLY_DEADLINE of the run's logical (scheduled) time.

Airflow's deadline alerts watch it: when a run is still unfinished at its deadline, the scheduler
hands the callback below to the triggerer, which logs it and writes a `deadline_missed` event to the
registry of the run's model (the config the run was given), beside the versions it would have made.

The setting is a duration: `6h` (the default), `90m`, `45s`, `1h30m`, or a bare number of seconds
(`21600`), or `off`; it is read when the DAG is parsed. A backfilled night is not alerted: its logical time
lies days behind the moment it runs, so its deadline has passed before it starts.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import timedelta
from typing import Any

from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from gauntlet import layout, registry
from gauntlet.config import DEFAULT_CONFIG, config_file, load_config
from gauntlet.errors import ConfigError
from gauntlet.logs import get_logger

log = get_logger("gauntlet.airflow.deadlines")

DEADLINE_ENV = "GAUNTLET_NIGHTLY_DEADLINE"
DEFAULT_DEADLINE = "6h"
EVENT = "deadline_missed"
_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s)?")


def parse_deadline(text: str) -> timedelta:
    """A duration: hours, minutes and seconds in that order (`6h`, `1h30m`, `90s`), or bare seconds."""
    compact = text.strip().lower().replace(" ", "")
    match = _DURATION.fullmatch(compact)
    if re.fullmatch(_NUMBER, compact):
        seconds = float(compact)
    elif compact and match:
        hours, minutes, secs = (float(part or 0) for part in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        seconds = 0.0
    if seconds <= 0:
        raise ConfigError(
            f"{DEADLINE_ENV}={text!r} is no duration above zero: write e.g. 6h, 90m, 1h30m, 45s "
            "or a number of seconds (21600)"
        )
    return timedelta(seconds=seconds)


def configured_deadline() -> str:
    return os.environ.get(DEADLINE_ENV) or DEFAULT_DEADLINE


def parsed_by_dags_test(argv: list[str] | None = None) -> bool:
    """Whether this process is `airflow dags test`, which runs the DAG it parses in-process.

    Airflow 3.3's `dags test` fails a run that succeeded when its DAG has a deadline alert: settling the
    run's deadlines looks the alerts up by their stored ids, and a DAG parsed in-process holds none.
    """
    args = sys.argv if argv is None else argv
    return args[1:3] == ["dags", "test"]


def nightly_deadline() -> DeadlineAlert | None:
    """The nightly DAG's deadline alert: its logical time plus the configured duration.

    None (no alert) when the setting is `off`, and under `airflow dags test` (see parsed_by_dags_test):
    a run there is watched by the person who started it, not by the scheduler.
    """
    allowed = configured_deadline()
    if allowed.strip().lower() == "off" or parsed_by_dags_test():
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=parse_deadline(allowed),
        callback=AsyncCallback(nightly_deadline_missed, kwargs={"allowed": allowed}),
        name="nightly_deadline",
    )


async def nightly_deadline_missed(context: dict[str, Any] | None = None, allowed: str = "") -> str:
    """The alert's callback, run by the triggerer; the S3 calls go to a thread, off its event loop.

    Returns one line of text: Airflow 3.3 stores a callback's result in a text column, and a dict
    there fails the triggerer itself (every later trigger and deferred task with it).
    """
    event = await asyncio.to_thread(record_missed, context or {}, allowed)
    if event is None:
        return "not alerted: a backfilled run"
    return f"{EVENT} recorded for {event['model']}: run {event['run_id']} (deadline {event['deadline']})"


def model_of_run(conf: dict[str, Any]) -> str:
    """The model a run trains: the config it was triggered with (the form's `config`), else the default."""
    return load_config(config_file(str(conf.get("config") or DEFAULT_CONFIG))).model.name


def record_missed(context: dict[str, Any], allowed: str, store: str | None = None) -> dict[str, Any] | None:
    """Log the missed deadline and write it to the model's registry; return the event (None: not alerted)."""
    run = dict(context.get("dag_run") or {})
    run_id = run.get("dag_run_id") or run.get("run_id")  # the API's name for it, or Airflow's own
    deadline = str((context.get("deadline") or {}).get("deadline_time", ""))
    if run.get("run_type") == "backfill":
        log.info("backfilled run %s passed its deadline %s: not alerted", run_id, deadline)
        return None
    model = model_of_run(dict(run.get("conf") or {}))
    event = {
        "dag_id": run.get("dag_id"),
        "run_id": run_id,
        "run_type": run.get("run_type"),
        "logical_date": run.get("logical_date"),
        "state": run.get("state"),
        "deadline": deadline,
        "allowed": allowed,
        "model": model,
    }
    reg = layout.registry_root(layout.store_root(store), model)
    log.warning(
        "%s run %s has not finished by its deadline %s (%s after its logical date %s); recorded in %s",
        event["dag_id"],
        event["run_id"],
        deadline,
        allowed,
        event["logical_date"],
        reg,
    )
    registry.record_event(reg, EVENT, **event)
    return event
