"""training.loop: train_epoch is the plain optimisation step, with hooks in step order."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from gauntlet.training.loop import StepHooks, train_epoch


def _tiny_model(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def test_train_epoch_is_the_plain_step_and_sums_what_it_saw() -> None:
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 50, 16)]
    model, optimizer = _tiny_model(0)
    totals = train_epoch(model, optimizer, batches, torch.device("cpu"))
    reference, ref_optimizer = _tiny_model(0)
    loss_sum = wrong = 0.0
    for xb, yb in batches:
        ref_optimizer.zero_grad()
        logits = reference(xb)
        loss = torch.nn.functional.cross_entropy(logits, yb)
        loss.backward()
        ref_optimizer.step()
        loss_sum += loss.item() * len(yb)
        wrong += (logits.argmax(dim=1) != yb).sum().item()
    for ours, theirs in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)
    assert (totals.seen, totals.steps, totals.loss_sum, totals.wrong) == (50, 4, loss_sum, wrong)
    assert 0 < totals.input_seconds <= totals.seconds


def test_train_epoch_calls_its_hooks_in_step_order_and_stops_at_max_steps() -> None:
    calls: list[str] = []

    @contextlib.contextmanager
    def around() -> Iterator[None]:
        calls.append("compute")
        yield

    hooks = StepHooks(
        before_batch=lambda batch: calls.append(f"batch {batch}"),
        around_compute=around,
        before_step=lambda optimizer: calls.append("step"),
    )
    model, optimizer = _tiny_model(1)
    batches = [(torch.randn(4, 4), torch.randint(0, 3, (4,)))] * 5
    totals = train_epoch(model, optimizer, batches, torch.device("cpu"), hooks, max_steps=2)
    assert totals.steps == 2 and totals.seen == 8
    assert calls == ["batch 0", "compute", "step", "batch 1", "compute", "step"]
