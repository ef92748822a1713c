"""Process-group setup for single-process, torchrun and Slurm runs, and the few collectives the engine needs.

torchrun sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT; under Slurm (`srun`) the ranks come
from SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID (tools/slurm_pretrain.sh exports MASTER_ADDR/PORT).
The group uses `env://`, NCCL on GPUs and gloo on CPUs. A group this module created is destroyed by
`DistContext.close()`; one the caller created is left alone (main() may be called in-process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from etcore.errors import UserInputError


@dataclass
class DistContext:
    """Where this process sits in the run: rank, world size, its device, and whether it owns the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Sum a few floats over all ranks (float64 on the run's device)."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on any rank (one max all-reduce), so all ranks act alike."""
        if not self.enabled:
            return bool(flag)
        tensor = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item() > 0)

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (used to save each rank's RNG state)."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self.owns_group = False


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise UserInputError(
            f"environment variable {name}={value!r} is not a whole number: unset it or fix the launcher"
        ) from None


def _launch_ranks() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's variables, else from Slurm's (srun, one task per device).

    Nothing is written to the environment: `init_process_group` gets rank and world size explicitly
    and reads only MASTER_ADDR/MASTER_PORT (exported by torchrun or tools/slurm_pretrain.sh).
    """
    if os.environ.get("WORLD_SIZE"):
        return _env_int("RANK") or 0, _env_int("WORLD_SIZE") or 1, _env_int("LOCAL_RANK") or 0
    tasks = _env_int("SLURM_NTASKS")
    if tasks and tasks > 1 and "SLURM_PROCID" in os.environ:
        if not os.environ.get("MASTER_ADDR"):
            raise UserInputError(
                "Slurm job without MASTER_ADDR: launch through tools/slurm_pretrain.sh, or export "
                "MASTER_ADDR (first host of $SLURM_JOB_NODELIST) and MASTER_PORT before srun"
            )
        return _env_int("SLURM_PROCID") or 0, tasks, _env_int("SLURM_LOCALID") or 0
    return 0, 1, 0


def resolve_device(requested: str, local_rank: int) -> torch.device:
    """`auto` -> cuda:<local_rank> when CUDA is available, else cpu; `cpu`/`cuda` force one."""
    if requested == "cpu":
        return torch.device("cpu")
    if requested in ("auto", "cuda"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if requested == "cuda":
            raise UserInputError("--device cuda but no CUDA device is visible: use --device cpu or auto")
        return torch.device("cpu")
    raise UserInputError(f"--device {requested!r} is not one of auto, cpu, cuda")


def init_distributed(requested_device: str) -> DistContext:
    """Join (or create) the process group described by the environment; a plain run gets world size 1."""
    rank, world_size, local_rank = _launch_ranks()
    device = resolve_device(requested_device, local_rank)
    if world_size == 1:
        return DistContext(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name):
                raise UserInputError(
                    f"WORLD_SIZE={world_size} but {name} is not set: launch with torchrun "
                    "(tools/dist_pretrain.sh) or Slurm (tools/slurm_pretrain.sh)"
                )
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
        owns = True
    return DistContext(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=device, owns_group=owns
    )
