"""The training rows' batches, where a rank computes on them.

Three placements, one object (`DeviceBatches`) and one batch order:

- host: a CPU rank indexes the rows where they are (no copies);
- resident: the rows fit on the GPU, so they are copied there once and each batch is one gather on
  the device;
- prefetch: they do not fit, so each batch is gathered on the host into pinned memory and copied on a
  side stream while the step before it computes.

Each epoch's row order is the sampler's own: a DistributedSampler's permutation is drawn from the same
seeded generator as its `__iter__`, as one tensor (moved to the device once an epoch), so the batches
and their order are the ones a DataLoader over that sampler yields, without a Python list per batch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler, Sampler

from gauntlet.errors import ConfigError

HOST, RESIDENT, PREFETCH = "host", "resident", "prefetch"
# Rows go on the GPU when they take at most this share of its free memory (the rest is for the model,
# its optimizer state and activations); 0 keeps them on the host, 1 lets them fill it.
RESIDENT_FRACTION = 0.5
RESIDENT_FRACTION_ENV = "GAUNTLET_RESIDENT_DATA_FRACTION"


def epoch_order(sampler: Sampler[int]) -> torch.Tensor:
    """The sampler's rows for this epoch as an int64 tensor, in the order it yields them."""
    if not isinstance(sampler, DistributedSampler):
        return torch.as_tensor(list(sampler), dtype=torch.int64)
    rows = len(sampler.dataset)  # type: ignore[arg-type]
    if sampler.shuffle:
        generator = torch.Generator()
        generator.manual_seed(sampler.seed + sampler.epoch)
        order = torch.randperm(rows, generator=generator)
    else:
        order = torch.arange(rows)
    if sampler.drop_last:
        order = order[: sampler.total_size]
    elif sampler.total_size > rows:  # the sampler repeats rows from the start to split evenly
        order = torch.cat([order, order.repeat(math.ceil((sampler.total_size - rows) / rows))])[: sampler.total_size]
    return order[sampler.rank : sampler.total_size : sampler.num_replicas]


def resident_fraction() -> float:
    """The share of free GPU memory the rows may take (GAUNTLET_RESIDENT_DATA_FRACTION, else the default)."""
    text = os.environ.get(RESIDENT_FRACTION_ENV, "").strip()
    if not text:
        return RESIDENT_FRACTION
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"{RESIDENT_FRACTION_ENV}={text!r} must be a number from 0 (rows stay on the host) to 1 "
            f"(rows may fill the GPU's free memory); unset it for the default {RESIDENT_FRACTION}"
        )
    return value


def placement(nbytes: int, device: torch.device, free_bytes: int | None = None, fraction: float | None = None) -> str:
    """Where `nbytes` of rows live for training on `device`: host, resident or prefetch."""
    if device.type == "cpu":
        return HOST
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(device)
    share = resident_fraction() if fraction is None else fraction
    return RESIDENT if nbytes <= share * free_bytes else PREFETCH


class DeviceBatches:
    """(features, labels) batches of `batch_size` rows in the sampler's order, on `device`.

    Iterate once per epoch, after `sampler.set_epoch`; the last batch may be short.
    """

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        sampler: Sampler[int],
        batch_size: int,
        device: torch.device,
        where: str | None = None,
    ) -> None:
        self.sampler, self.batch_size, self.device = sampler, batch_size, device
        nbytes = features.nbytes + labels.nbytes
        self.placement = where or placement(nbytes, device)
        if self.placement == RESIDENT:
            features, labels = features.to(device), labels.to(device)  # the one copy
        elif self.placement == PREFETCH:
            self._stream = torch.cuda.Stream(device)
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_order(self.sampler)
        if self.placement == PREFETCH:
            return self._prefetched(order)
        # Host and resident: the rows and the order sit on one device; each batch is one gather there.
        order = order.to(self.features.device)
        return (
            (self.features.index_select(0, rows), self.labels.index_select(0, rows))
            for rows in order.split(self.batch_size)
        )

    def _prefetched(self, order: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batch i+1 is gathered into pinned memory and its copy queued on the side stream before batch i
        is handed over, so the copy overlaps batch i's step; the step's stream waits for a batch's copy
        (wait_stream) before using it, and record_stream keeps its memory from being reused meanwhile."""
        compute = torch.cuda.current_stream(self.device)
        chunks = order.split(self.batch_size)
        ahead = self._copy(chunks[0]) if chunks else None
        for i in range(len(chunks)):
            assert ahead is not None
            compute.wait_stream(self._stream)
            xb, yb = ahead
            xb.record_stream(compute)
            yb.record_stream(compute)
            ahead = self._copy(chunks[i + 1]) if i + 1 < len(chunks) else None
            yield xb, yb

    def _copy(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather `rows` into pinned buffers and queue their copies to the device on the side stream.
        The pinned buffers come from torch's caching host allocator, which holds each one until the
        copy that reads it has finished."""
        pinned = [_pinned_gather(self.features, rows), _pinned_gather(self.labels, rows)]
        with torch.cuda.stream(self._stream):
            xb, yb = (t.to(self.device, non_blocking=True) for t in pinned)
        return xb, yb


def _pinned_gather(source: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    out = torch.empty((len(rows), *source.shape[1:]), dtype=source.dtype, pin_memory=True)
    return torch.index_select(source, 0, rows, out=out)
