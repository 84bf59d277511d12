"""Airflow plugin: the gauntlet step tasks' extra links (Data Docs, dataset, experiment, report, registry).

The links themselves live in gauntlet.airflow.links and are attached per step by
GauntletStepOperator (Airflow 3 computes them in the task process and serves them from XCom);
registering them here lists them under Admin > Plugins and lets the UI resolve them by class.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from gauntlet.airflow.links import ALL_LINKS


class GauntletLinksPlugin(AirflowPlugin):
    name = "gauntlet_links"
    operator_extra_links: ClassVar[list[Any]] = [link() for link in ALL_LINKS]
