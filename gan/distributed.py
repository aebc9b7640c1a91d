"""Data-parallel training under ``torchrun``, for every family: one process per device.

``train`` functions call ``distributed()`` and then work the same in one process or many:

    torchrun --standalone --nproc_per_node=2 -m ecomgan.cli train --family products ...

Ranks talk over NCCL when CUDA is available (rank ``LOCAL_RANK`` uses ``cuda:LOCAL_RANK``)
and over gloo on CPU. With the same seed, a run of N processes computes what the
one-process run computes, up to the order of floating-point sums, because:

- every rank draws the *global* minibatch with the same seeded generator and keeps its
  share (``shard``), so the shards' union is the one-process minibatch and the generators
  stay in step (a distributed sampler with replacement);
- ``DistributedDataParallel`` averages the gradients of per-rank mean losses over equal
  shards, which is the gradient of the mean loss over the global minibatch;
- BatchNorm layers are synchronised (``wrap``), so they normalise with the global
  minibatch's statistics instead of each shard's;
- the other buffers that forward passes update (spectral norm's power-iteration vectors)
  depend only on the weights, which are equal on every rank; DDP's default
  ``broadcast_buffers=True`` also copies rank 0's buffers to the others on each forward.

Only rank 0 (``DistInfo.is_main``) should write files or print progress.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the run.

    Attributes:
        rank: Global rank, 0 in a one-process run.
        world_size: Number of processes.
        local_rank: Rank on this machine; picks the GPU.
        device: ``cuda:local_rank`` when CUDA is available, else the CPU.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, logs and samples."""
        return self.rank == 0


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def init_distributed() -> DistInfo:
    """Read torchrun's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` and join the process group.

    Outside torchrun this is a one-process run and no process group is made. A process
    group that already exists (made by the caller) is used as it is.
    Set ``CUDA_VISIBLE_DEVICES=""`` to train on the CPU on a machine with GPUs.
    """
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if _initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    elif world_size > 1:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistInfo(rank, world_size, local_rank, device)


def cleanup() -> None:
    """Leave and destroy the default process group, if there is one."""
    if _initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed() -> Iterator[DistInfo]:
    """``init_distributed()`` for the ``with`` body, then ``cleanup()`` if it made the group."""
    made_here = not _initialized()
    info = init_distributed()
    try:
        yield info
    finally:
        if made_here:
            cleanup()


def local_batch_size(batch_size: int, info: DistInfo) -> int:
    """Each rank's share of a global minibatch of ``batch_size``.

    Raises:
        ValueError: If ``batch_size`` is not a multiple of the number of processes.
    """
    if batch_size % info.world_size:
        raise ValueError(
            f"batch_size {batch_size} must be a multiple of the number of processes "
            f"({info.world_size}): it is the global minibatch, split evenly across them"
        )
    return batch_size // info.world_size


def shard(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's rows of a global minibatch: every ``world_size``-th from ``rank``.

    The same split as ``DistributedSampler``; the shards' union is ``t``.
    """
    return t[info.rank :: info.world_size]


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over ranks: the gradient of each input is the sum of the gradients."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CpuSyncBatchNorm(_BatchNorm):
    """BatchNorm over the global minibatch for CPU tensors, which ``nn.SyncBatchNorm`` refuses.

    In training mode with several processes, the statistics come from two differentiable
    all-reduces (the sums and count, then the squared deviations from the global mean);
    their backward all-reduces the gradients, so the gradient is that of BatchNorm over
    the global minibatch, as with ``nn.SyncBatchNorm`` on GPUs. Otherwise it is BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and _initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)  # per-channel values against the input
        count = input.new_full((1,), input.numel() // input.size(1))
        sums = _AllReduceSum.apply(torch.cat([input.sum(dims), count]))
        n, mean = sums[-1], sums[:-1] / sums[-1]
        centred = input - mean.view(shape)
        var = _AllReduceSum.apply(centred.square().sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum
                if factor is None:  # cumulative average, as in BatchNorm
                    factor = 1.0 / self.num_batches_tracked.item()
                self.running_mean.lerp_(mean, factor)
                self.running_var.lerp_(var * n / (n - 1), factor)  # unbiased, like BatchNorm
        return out


def _convert_cpu(module: nn.Module) -> nn.Module:
    if isinstance(module, _BatchNorm) and not isinstance(module, CpuSyncBatchNorm):
        sync = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum,
                                module.affine, module.track_running_stats)  # fmt: skip
        with torch.no_grad():  # share, not copy: optimisers and callers keep the same tensors
            if module.affine:
                sync.weight, sync.bias = module.weight, module.bias
            sync.running_mean, sync.running_var = module.running_mean, module.running_var
            sync.num_batches_tracked = module.num_batches_tracked
        return sync.train(module.training)
    for name, child in module.named_children():
        module.add_module(name, _convert_cpu(child))
    return module


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm layer in ``module`` use the statistics of all ranks' shards.

    ``nn.SyncBatchNorm`` on GPUs; ``CpuSyncBatchNorm`` on the CPU, where torch's version
    (and DDP around it) refuses to run. Parameters, buffers and state-dict keys stay the
    same. Returns ``module`` itself unless it is a BatchNorm layer.
    """
    if device.type == "cpu":
        return _convert_cpu(module)
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def wrap(module: nn.Module, info: DistInfo) -> nn.Module:
    """Move ``module`` to ``info.device``; with several processes, sync BatchNorm and wrap in DDP.

    Keep a reference to ``module`` (or call ``unwrap``) for checkpoints, EMA and sampling:
    its parameters are the ones the wrapper trains.
    """
    module.to(info.device)
    if info.world_size == 1:
        return module
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    module = convert_sync_batchnorm(module, info.device)
    return DistributedDataParallel(module, device_ids=device_ids)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper, or ``module`` itself."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def no_sync(module: nn.Module) -> contextlib.AbstractContextManager[Any]:
    """DDP's ``no_sync()`` (skip the gradient all-reduce of passes in the block), or a no-op."""
    if isinstance(module, DistributedDataParallel):
        return module.no_sync()
    return contextlib.nullcontext()


def mean_over_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Each value's mean over the processes (for metrics of per-rank shards)."""
    if info.world_size == 1:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return dict(zip(values, (t / info.world_size).tolist(), strict=True))


class StopSignal:
    """Ctrl-C stops training at a step boundary: on every rank together, and resumably.

    torchrun forwards SIGINT to each worker; a KeyboardInterrupt raised inside a
    collective would leave the other ranks blocked or failing before rank 0 saves. In
    the ``with`` block, SIGINT only sets a flag, and ``requested()`` (called by every
    rank once per step) says whether any rank got one. In one process the same holds,
    so that the checkpoint written on Ctrl-C is that of whole steps and resumes
    bit-identically; a second Ctrl-C there raises KeyboardInterrupt at once (a stuck step).
    """

    def __init__(self, info: DistInfo) -> None:
        self.info = info
        self.signalled = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signalled and self.info.world_size == 1:
            raise KeyboardInterrupt
        self.signalled = True

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def requested(self) -> bool:
        """Whether any rank has been signalled (a collective: call it on every rank)."""
        if self.info.world_size == 1:
            return self.signalled
        flag = torch.tensor([float(self.signalled)], device=self.info.device)
        dist.all_reduce(flag)
        return bool(flag.item())
