"""The nightly DAG's run parameters: a typed trigger form, and how its values reach the steps.

Each Param maps to one config override (`--set section.key=value`); empty values keep the config
file's setting, so a scheduled run and a default manual run are the same experiment.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from gauntlet.config import CONFIGS_DIR, DEFAULT_CONFIG, PROTOCOLS_DIR, project_files

# Param name -> config key it overrides.
OVERRIDES = {
    "model_kind": "model.kind",
    "epochs": "training.epochs",
    "lr": "training.lr",
    "batch_size": "training.batch_size",
    "workers": "training.workers",
    "dataset_prefix": "dataset.raw_prefix",
}


# A raw-data prefix under the store: relative, no `.`/`..` or empty segments (config.store_prefix
# enforces the same rule for the CLI and config files).
PREFIX_PATTERN = r"^(?!.*(?:^|/)\.{1,2}(?:/|$))[A-Za-z0-9._=-]+(?:/[A-Za-z0-9._=-]+)*/?$"


# The files a run may choose, read when the DAG is parsed: a form offers the project's reviewed
# configs and protocols, never a free path (the CLI refuses any other file as well).
def config_choices() -> list[str]:
    return sorted({DEFAULT_CONFIG, *project_files(CONFIGS_DIR)})


def protocol_choices() -> list[str | None]:
    return [None, *project_files(PROTOCOLS_DIR)]


# The form fields both DAGs offer: one definition each, so their bounds can never drift apart.
def _protocol_param(description: str, section: str) -> Param:
    return Param(
        None,
        type=["null", "string"],
        enum=protocol_choices(),
        title="Comparison protocol",
        description=description,
        section=section,
    )


def _epochs_param(description: str) -> Param:
    return Param(
        None,
        type=["null", "integer"],
        minimum=1,
        maximum=500,
        title="Epochs",
        description=description,
        section="Training",
    )


def _workers_param(default: int | None, description: str) -> Param:
    return Param(
        default,
        type=["null", "integer"],
        minimum=1,
        maximum=64,
        title="Horovod workers",
        description=description,
        section="Training",
    )


def nightly_params() -> dict[str, Param]:
    return {
        "config": Param(
            DEFAULT_CONFIG,
            type="string",
            enum=config_choices(),
            title="Pipeline config",
            description="Config file in include/configs: dataset, model and training settings.",
            section="Experiment",
        ),
        "protocol": _protocol_param("Protocol file in include/protocols; empty uses the config's.", "Experiment"),
        "model_kind": Param(
            None,
            type=["null", "string"],
            enum=[None, "cnn", "mlp"],
            title="Model",
            description="Network architecture; empty uses the config's.",
            section="Model",
        ),
        "epochs": _epochs_param("Overrides the protocol's epoch budget (recorded in the experiment key)."),
        "lr": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=10,
            title="Learning rate",
            description="Per-worker base learning rate (scaled by the number of workers).",
            section="Training",
        ),
        "batch_size": Param(
            None, type=["null", "integer"], minimum=1, maximum=65536, title="Batch size per worker", section="Training"
        ),
        "workers": _workers_param(None, "Number of data-parallel ranks (horovodrun -np)."),
        "dataset_prefix": Param(
            None,
            type=["null", "string"],
            pattern=PREFIX_PATTERN,
            title="Raw data prefix",
            description="Where raw partitions live, relative to the store (no leading '/', no '..').",
            section="Data",
        ),
        "register_even_if_gate_fails": Param(
            False,
            type="boolean",
            title="Register even if the gate fails",
            description="Adds a version without promoting it to champion.",
            section="Registry",
        ),
    }


# Two configs by default: the config file's CNN and an MLP, so a bare trigger compares architectures.
DEFAULT_GRID = [
    {"name": "cnn", "config": DEFAULT_CONFIG, "overrides": {}},
    {"name": "mlp", "config": DEFAULT_CONFIG, "overrides": {"model.kind": "mlp"}},
]


def grid_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": r"^[A-Za-z0-9._-]+$"},
            "config": {"type": "string", "enum": config_choices()},
            "overrides": {"type": "object", "description": 'config key -> value, e.g. {"training.lr": 0.05}'},
        },
    }


def sweep_params() -> dict[str, Param]:
    return {
        "grid": Param(
            DEFAULT_GRID,
            type="array",
            items=grid_schema(),
            minItems=1,
            title="Config grid",
            description="One entry per config: a name, a config file and config overrides.",
            section="Sweep",
        ),
        "snapshot_dates": Param(
            ["2026-11-05", "2026-11-07"],
            type="array",
            minItems=1,
            items={"type": "string", "format": "date"},
            title="Snapshot dates",
            description="Each pair trains on the partitions dated up to this day.",
            section="Sweep",
        ),
        "protocol": _protocol_param("Protocol file in include/protocols; empty uses each config's.", "Sweep"),
        "epochs": _epochs_param("Overrides the protocol's epoch budget for every pair."),
        "workers": _workers_param(1, "Ranks per training; the training pool runs one training at a time."),
    }


def cli_options(params: dict[str, Any]) -> list[str]:
    """Global CLI options (config, protocol, overrides) for the values a run was given."""
    options = ["--config", str(params.get("config") or DEFAULT_CONFIG)]
    if params.get("protocol"):
        options += ["--protocol", str(params["protocol"])]
    for name, key in OVERRIDES.items():
        value = params.get(name)
        if value is not None and value != "":
            options += ["--set", f"{key}={value}"]
    # Free-form config overrides ({"training.lr": 0.05}), e.g. one sweep grid entry; they come last and win.
    for key, value in (params.get("overrides") or {}).items():
        options += ["--set", f"{key}={value}"]
    return options
