"""training.checkpoint: a saved epoch restores model, optimizer, schedule, RNG and curve."""

from __future__ import annotations

import json

import torch

from gauntlet import storage
from gauntlet.training import checkpoint
from gauntlet.training.loop import train_epoch


def _tiny_model(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def test_checkpoint_restores_model_optimizer_schedule_rng_and_curve(store: str) -> None:
    experiment = f"{store}/experiments/ckpt"
    model, optimizer = _tiny_model(2)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.5**epoch)
    assert checkpoint.restore_latest(experiment, model, optimizer, schedule) is None
    train_epoch(model, optimizer, [(torch.randn(6, 4), torch.randint(0, 3, (6,)))], torch.device("cpu"))
    schedule.step()
    curve = [{"epoch": 1, "dev_error": 0.5}]
    checkpoint.save(experiment, model, optimizer, schedule, 1, curve)
    rng = torch.get_rng_state()

    torch.manual_seed(99)
    fresh, fresh_optimizer = _tiny_model(3)
    fresh_schedule = torch.optim.lr_scheduler.LambdaLR(fresh_optimizer, lambda epoch: 0.5**epoch)
    assert checkpoint.restore_latest(experiment, fresh, fresh_optimizer, fresh_schedule) == (1, curve)
    assert torch.equal(torch.get_rng_state(), rng)
    assert fresh_schedule.get_last_lr() == schedule.get_last_lr()
    for ours, theirs in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)
    assert fresh_optimizer.state_dict()["state"][0]["momentum_buffer"].equal(
        optimizer.state_dict()["state"][0]["momentum_buffer"]
    )
    assert storage.get_bytes(f"{experiment}/curve.jsonl").decode().splitlines() == [json.dumps(curve[0])]
