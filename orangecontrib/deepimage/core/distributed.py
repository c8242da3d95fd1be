"""Data-parallel training with torch.distributed: what the training loop asks of it.

`torchrun --nproc-per-node N -m orangecontrib.deepimage.cli train ...` (or its
shortcut `deepimage train --nproc N`) starts N copies of the same training; torchrun
sets RANK, LOCAL_RANK and WORLD_SIZE in each. :func:`init_from_env` joins them into
one process group (NCCL when the processes train on GPUs, one GPU each, by
LOCAL_RANK; gloo on CPUs) and the loop (core.train) then asks :func:`current` for a
:class:`Parallel`, which

- shards each epoch's training rows with a ``DistributedSampler`` (reshuffled every
  epoch by ``set_epoch``; the per-process batch is the configured batch divided by the
  world size, so the global batch, and with it the learning-rate presets, stays what
  one process uses);
- wraps the trained module in ``DistributedDataParallel``, which averages the
  gradients of every step over the processes, so every copy keeps the same weights;
- shards validation rows and sums the totals (loss, correct, weights) with
  ``all_reduce``, so every process sees the same validation metrics and takes the same
  early-stopping decision, and the same best epoch;
- lets rank 0 go first where processes would write the same files (embedding and
  ONNX caches), the others then read what it wrote.

Rank 0 alone prints and writes the model (cli/train.py). Nothing here imports torch
until a process group is asked for, and nothing imports Qt.
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import os
import sys
from dataclasses import dataclass

import numpy as np

__all__ = ["Parallel", "launched", "init_from_env", "current", "close", "backend_for",
           "launch_env"]

# whether this process's group trains on its GPU (gloo on Windows does, with CUDA tensors)
_ON_GPU = {"value": False}


def backend_for(on_gpu: bool, platform: "str | None" = None) -> str:
    """The process group's backend: NCCL between GPUs, except on Windows, where PyTorch
    has no NCCL and gloo carries the GPUs' tensors; gloo on CPUs."""
    platform = platform or sys.platform
    return "nccl" if on_gpu and platform != "win32" else "gloo"


def launch_env(nproc: int, env: "dict | None" = None, platform: "str | None" = None,
               cpus: "int | None" = None) -> dict:
    """The environment of torchrun and the ``nproc`` processes it starts: the CPU's
    threads shared between them, and on Windows USE_LIBUV=0 (PyTorch's Windows builds
    have no libuv, which torchrun's rendezvous store asks for by default)."""
    platform = platform or sys.platform
    env = dict(os.environ if env is None else env)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (cpus or os.cpu_count() or 1) // nproc)))
    if platform == "win32":
        env["USE_LIBUV"] = "0"
    return env


def launched() -> bool:
    """True in a process started by torchrun with more than one process in the world."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto", timeout_s: float = 1800) -> "Parallel | None":
    """Join torchrun's process group (once); None when not launched by torchrun.

    NCCL when ``device`` resolves to a GPU (this process takes GPU LOCAL_RANK; gloo on
    Windows, see :func:`backend_for`), gloo on the CPU. ValueError when there are fewer
    GPUs than processes on this node.
    """
    if not launched():
        return None
    import torch
    import torch.distributed as dist

    from .devices import resolve_device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    on_gpu = resolve_device(device).startswith("cuda")
    if on_gpu:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"Process {local_rank} on this node has no GPU of its own: "
                             f"{torch.cuda.device_count()} GPU(s) for "
                             f"{os.environ.get('LOCAL_WORLD_SIZE', '?')} processes. Start "
                             f"at most one process per GPU (--nproc-per-node), or train on "
                             f"the CPU (--device cpu).")
        torch.cuda.set_device(local_rank)
    _ON_GPU["value"] = on_gpu
    if not dist.is_initialized():
        dist.init_process_group(backend_for(on_gpu),
                                timeout=datetime.timedelta(seconds=timeout_s))
    return current()


def current() -> "Parallel | None":
    """The running process group as a :class:`Parallel`, or None (one process)."""
    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    backend = dist.get_backend()
    return Parallel(dist.get_rank(), dist.get_world_size(),
                    int(os.environ.get("LOCAL_RANK", "0")), backend,
                    gpu=backend == "nccl" or _ON_GPU["value"])


def close(synchronize: bool = True) -> None:
    """Leave the process group (at the end of a distributed run).

    Whatever still holds a DistributedDataParallel is collected first, while the group
    lives: one left for the interpreter's exit, after the group is destroyed, aborts
    the process ("terminate called without an active exception", SIGABRT; in 4 of 30
    two-process runs here). With ``synchronize`` every process then waits at a barrier
    for the others, so none tears its connections down while a peer still uses them.
    Pass False when this process failed: the others may never reach the barrier.
    """
    if "torch" in sys.modules:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            gc.collect()
            parallel = current()
            if synchronize and parallel is not None:
                with contextlib.suppress(RuntimeError):  # a peer already gone
                    parallel.barrier()
            dist.destroy_process_group()


class _Rows:
    """A stand-in dataset of n rows: DistributedSampler needs only its length."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


def _step_module(keep, forward):
    """The module DistributedDataParallel wraps: ``keep`` (the weights trained in this
    phase) with the loop's ``forward(x, train)`` as its forward."""
    import torch

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.keep = keep  # registers the trained parameters with DDP

        def forward(self, x):
            return forward(x, True)

    return Step()


@dataclass(frozen=True)
class Parallel:
    """This process's place in the world, and the collective steps the loop takes."""

    rank: int
    world_size: int
    local_rank: int
    backend: str  # "nccl" or "gloo"
    gpu: bool = False  # trains on GPU local_rank (always with NCCL; gloo on Windows GPUs)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def on_gpu(self) -> bool:
        return self.gpu or self.backend == "nccl"

    def device(self) -> str:
        """Where this process trains: its own GPU, else the CPU."""
        return f"cuda:{self.local_rank}" if self.on_gpu else "cpu"

    def batch_size(self, global_batch: int) -> int:
        """Each process's share of a global batch (at least one image)."""
        return max(1, global_batch // self.world_size)

    def batches(self, n: int, global_batch: int, epoch: int, seed: int) -> list[np.ndarray]:
        """This process's batches of rows 0..n-1 for ``epoch``: a DistributedSampler's
        shard (shuffled with ``seed`` + epoch, padded so every process has as many rows
        and so as many steps), cut into batches of :meth:`batch_size`. A last batch of
        one row joins the one before (batch normalisation cannot train on one image)."""
        from torch.utils.data import DistributedSampler
        sampler = DistributedSampler(_Rows(n), num_replicas=self.world_size, rank=self.rank,
                                     shuffle=True, seed=seed, drop_last=False)
        sampler.set_epoch(epoch)
        order = np.fromiter(iter(sampler), dtype=np.int64)
        size = self.batch_size(global_batch)
        batches = [order[i:i + size] for i in range(0, len(order), size)]
        if len(batches) > 1 and len(batches[-1]) == 1:
            batches[-2:] = [np.concatenate(batches[-2:])]
        return batches

    def shard(self, n: int) -> np.ndarray:
        """This process's rows of 0..n-1 for evaluation: every world_size-th, no padding
        (summed with :meth:`sum`, every row counts once)."""
        return np.arange(self.rank, n, self.world_size)

    def sum(self, *values: float) -> "tuple[float, ...]":
        """Each value summed over all processes (one all_reduce)."""
        import torch
        import torch.distributed as dist
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tuple(float(v) for v in tensor.cpu())

    def wrap(self, keep, forward):
        """``forward(x, train)`` through DistributedDataParallel over ``keep``: the
        gradients of the step are averaged over the processes in backward()."""
        from torch.nn.parallel import DistributedDataParallel
        module = _step_module(keep, forward)
        # Inception's auxiliary head is unused when its loss weight is 0
        unused = any(hasattr(m, "forward_with_aux") for m in keep.modules())
        gpu = [self.local_rank] if self.on_gpu else None
        ddp = DistributedDataParallel(module, device_ids=gpu, output_device=None if gpu is None
                                      else self.local_rank, find_unused_parameters=unused)
        return lambda x, train: ddp(x)

    def barrier(self) -> None:
        import torch.distributed as dist
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        else:
            dist.barrier()

    @contextlib.contextmanager
    def main_first(self):
        """Rank 0 runs the block first (filling shared caches), then the others."""
        if not self.is_main:
            self.barrier()
        try:
            yield
        finally:
            if self.is_main:
                self.barrier()
