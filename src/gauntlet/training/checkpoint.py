"""Checkpoints of a training run in S3: one object per epoch, and a pointer to the latest.

A checkpoint holds what resuming needs to continue as if never stopped: the model, the optimizer's
state, the learning-rate schedule, the epoch counter, torch's RNG state and the curve so far.
"""

from __future__ import annotations

import io
import json
from typing import Any

import torch

from gauntlet import layout, storage
from gauntlet.hashing import sha256_bytes


def save(
    experiment: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    curve: list[dict[str, Any]],
) -> None:
    """Write epoch `epoch`'s checkpoint, then the curve, then the pointer to it."""
    payload = _payload(model, optimizer, schedule, epoch, curve)
    uri = layout.checkpoint_uri(experiment, epoch)
    storage.put_bytes(uri, payload)
    # The curve and the pointer are written after the checkpoint, so they never name a missing one.
    storage.put_bytes(
        layout.curve_uri(experiment),
        "".join(json.dumps(row) + "\n" for row in curve).encode(),
        content_type="application/x-ndjson",
    )
    storage.put_json(
        layout.latest_checkpoint_uri(experiment),
        {"epoch": epoch, "uri": uri, "sha256": sha256_bytes(payload)},
    )


def restore_latest(
    experiment: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, list[dict[str, Any]]] | None:
    """Load the latest checkpoint into model, optimizer, schedule and torch's RNG, if there is one:
    the last epoch it finished and the curve up to it; None when the run starts afresh."""
    checkpoint = _load_latest(experiment)
    if checkpoint is None:
        return None
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    schedule.load_state_dict(checkpoint["schedule"])
    torch.set_rng_state(checkpoint["torch_rng"])
    return checkpoint["epoch"], json.loads(checkpoint["curve"])


def _payload(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    curve: list[dict[str, Any]],
) -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "epoch": epoch,
            "torch_rng": torch.get_rng_state(),
            "curve": json.dumps(curve),
        },
        buffer,
    )
    return buffer.getvalue()


def _load_latest(experiment: str) -> dict[str, Any] | None:
    pointer_uri = layout.latest_checkpoint_uri(experiment)
    if not storage.exists(pointer_uri):
        return None
    pointer = storage.get_json(pointer_uri)
    data = storage.get_bytes(pointer["uri"], expected_sha256=pointer["sha256"])
    payload: dict[str, Any] = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return payload
