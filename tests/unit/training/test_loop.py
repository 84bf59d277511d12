"""training.loop: train_epoch is the plain optimisation step, with hooks in step order and the task's loss;
the sums a GPU keeps on the device are the host's to the bit; bf16 autocast trains on a CPU too."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

from gauntlet.training.loop import DeviceSums, HostSums, StepHooks, autocast_dtype, task_loss, train_epoch
from gauntlet.training.model import Unstandardize


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


def test_the_default_loss_is_cross_entropy_and_classification_keeps_its_step() -> None:
    """Passing the classification loss explicitly trains the very same weights as the default."""
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 40, 8)]
    default, explicit = _tiny_model(2), _tiny_model(2)
    first = train_epoch(default[0], default[1], batches, torch.device("cpu"))
    second = train_epoch(
        explicit[0], explicit[1], batches, torch.device("cpu"), loss_fn=task_loss("classification", {})
    )
    assert (first.loss_sum, first.wrong) == (second.loss_sum, second.wrong)
    for ours, theirs in zip(default[0].state_dict().values(), explicit[0].state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)


def test_regression_loss_is_mse_on_standardised_values_and_wrong_is_raw_squared_error() -> None:
    loss = task_loss("regression", {"target": {"mean": 100.0, "scale": 20.0}})
    outputs, targets = torch.tensor([[110.0], [80.0], [100.0]]), torch.tensor([100.0, 100.0, 140.0])
    # Standardised: predictions (0.5, -1, 0) against targets (0, 0, 2).
    assert loss.mean(outputs, targets).item() == pytest.approx((0.25 + 1 + 4) / 3)
    assert loss.total(outputs, targets).item() == pytest.approx(0.25 + 1 + 4)
    assert loss.wrong(outputs, targets).item() == pytest.approx(100 + 400 + 1600)


def test_train_epoch_fits_a_regression_in_raw_units() -> None:
    """A linear target in the hundreds: with the standardised loss one SGD rate fits it, and the
    totals sum squared error in the label's units."""
    torch.manual_seed(3)
    x = torch.randn(256, 4)
    y = 500.0 + 80.0 * (x @ torch.tensor([1.0, -2.0, 0.5, 0.0]))
    mean, scale = y.mean().item(), y.std().item()
    model = torch.nn.Sequential(torch.nn.Linear(4, 1), Unstandardize(mean, scale))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    loss_fn = task_loss("regression", {"target": {"mean": mean, "scale": scale}})
    first = train_epoch(model, optimizer, batches, torch.device("cpu"), loss_fn=loss_fn)
    for _ in range(10):
        last = train_epoch(model, optimizer, batches, torch.device("cpu"), loss_fn=loss_fn)
    assert last.loss_sum / last.seen < 0.01 < first.loss_sum / first.seen
    assert (last.wrong / last.seen) ** 0.5 < 0.1 * scale
    # The loss is the squared error in standard units, `wrong` the same error in the label's units.
    assert last.wrong == pytest.approx(last.loss_sum * scale**2, rel=1e-4)
    with torch.no_grad():
        assert ((model(x)[:, 0] - y) ** 2).mean().item() ** 0.5 < 0.1 * scale


@pytest.mark.parametrize(
    ("task", "preprocessor", "message"),
    [("ranking", {}, "unknown task 'ranking'"), ("regression", {}, "no 'target' mean and scale")],
)
def test_a_task_without_a_loss_is_refused(task: str, preprocessor: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        task_loss(task, preprocessor)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_sums_kept_on_the_device_equal_the_hosts_to_the_bit(task: str) -> None:
    """What a GPU pass accumulates without waiting is what a CPU pass adds up in Python floats."""
    loss_fn = task_loss(task, {"target": {"mean": 1.0, "scale": 3.0}})
    host, device = HostSums(), DeviceSums(torch.device("cpu"))
    generator = torch.Generator().manual_seed(5)
    for rows in (7, 16, 16, 3, 11):
        outputs = torch.randn(rows, 3 if task == "classification" else 1, generator=generator) * 4
        targets = torch.randint(0, 3, (rows,), generator=generator) if task == "classification" else torch.randn(rows)
        for sums in (host, device):
            sums.add(loss_fn.mean(outputs, targets), loss_fn.wrong(outputs, targets), rows)
    assert device.values() == host.values() and host.values()[0] != 0


def test_precision_bf16_runs_forward_under_autocast_on_a_cpu_and_trains_other_weights() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None and autocast_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        autocast_dtype("fp8", cpu)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    (fp32, opt32), (bf16, opt16) = _tiny_model(4), _tiny_model(4)
    seen: list[torch.dtype] = []
    bf16[2].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    first = train_epoch(fp32, opt32, batches, cpu)
    second = train_epoch(bf16, opt16, batches, cpu, autocast=autocast_dtype("bf16", cpu))
    assert seen == [torch.bfloat16] * 4  # the last Linear ran in bfloat16
    assert second.steps == first.steps and second.loss_sum == pytest.approx(first.loss_sum, rel=0.05)
    assert not torch.equal(fp32[0].weight, bf16[0].weight)
    assert bf16[0].weight.dtype == torch.float32  # autocast leaves the parameters in float32
