"""The nightly DAG's run parameters: a typed trigger form, and how its values reach the steps.

Each Param maps to one config override (`--set section.key=value`); empty values keep the config
file's setting, so a scheduled run and a default manual run are the same experiment.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

# Param name -> config key it overrides.
OVERRIDES = {
    "model_kind": "model.kind",
    "epochs": "training.epochs",
    "lr": "training.lr",
    "batch_size": "training.batch_size",
    "workers": "training.workers",
    "dataset_prefix": "dataset.raw_prefix",
}


def nightly_params() -> dict[str, Param]:
    return {
        "config": Param("include/configs/digits.yaml", type="string", title="Pipeline config",
                        description="Config file in include/configs: dataset, model and training settings.",
                        section="Experiment"),
        "protocol": Param(None, type=["null", "string"], title="Comparison protocol",
                          description="Protocol file in include/protocols; empty uses the config's.",
                          section="Experiment"),
        "model_kind": Param(None, type=["null", "string"], enum=[None, "cnn", "mlp"], title="Model",
                            description="Network architecture; empty uses the config's.", section="Model"),
        "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=500, title="Epochs",
                        description="Overrides the protocol's epoch budget (recorded in the experiment key).",
                        section="Training"),
        "lr": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=10, title="Learning rate",
                    description="Per-worker base learning rate (scaled by the number of workers).",
                    section="Training"),
        "batch_size": Param(None, type=["null", "integer"], minimum=1, maximum=65536, title="Batch size per worker",
                            section="Training"),
        "workers": Param(None, type=["null", "integer"], minimum=1, maximum=64, title="Horovod workers",
                         description="Number of data-parallel ranks (horovodrun -np).", section="Training"),
        "dataset_prefix": Param(None, type=["null", "string"], pattern=r"^[A-Za-z0-9._/=-]+$",
                                title="Raw data prefix", description="Where raw partitions live, under the store.",
                                section="Data"),
        "register_even_if_gate_fails": Param(False, type="boolean", title="Register even if the gate fails",
                                             description="Adds a version without promoting it to champion.",
                                             section="Registry"),
    }


def cli_options(params: dict[str, Any]) -> list[str]:
    """Global CLI options (config, protocol, overrides) for the values a run was given."""
    options = ["--config", str(params.get("config") or "include/configs/digits.yaml")]
    if params.get("protocol"):
        options += ["--protocol", str(params["protocol"])]
    for name, key in OVERRIDES.items():
        value = params.get(name)
        if value is not None and value != "":
            options += ["--set", f"{key}={value}"]
    return options
