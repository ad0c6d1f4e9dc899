"""Cross-process reduction of estimator state: one path for accelerate and torch.distributed.

:func:`all_reduce` is the only collective the estimator uses for tensors, :func:`all_gather_object`
the only one for metadata. Given an ``accelerate.Accelerator`` they go through accelerate (which calls
``torch.distributed`` on GPU/CPU multi-process runs and XLA's collectives on TPUs); without one they call
``torch.distributed`` directly. Reductions work on copies, so the caller's tensors are never changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

__all__ = ["Reduction", "all_gather_object", "all_reduce", "distributed_world_size", "world_size"]

Reduction = Literal["sum", "max"]


def distributed_world_size() -> int:
    """World size of an initialised ``torch.distributed`` process group, else 1."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return 1


def world_size(accelerator: Any = None) -> int:
    """Number of processes: the accelerator's, else torch.distributed's (1 when not distributed)."""
    if accelerator is not None:
        return int(accelerator.num_processes)
    return distributed_world_size()


def _comm_device(tensor: torch.Tensor, accelerator: Any) -> torch.device:
    """The device a collective needs for ``tensor``: the accelerator's; CUDA for NCCL; else its own."""
    import torch
    import torch.distributed as dist

    if accelerator is not None:
        return torch.device(accelerator.device)
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return tensor.device


def all_reduce(tensor: torch.Tensor, reduction: Reduction, accelerator: Any = None) -> torch.Tensor:
    """A reduced copy of ``tensor`` over all processes, on ``tensor``'s device.

    Args:
        tensor: any shape; every process must pass the same shape and dtype, in the same call order.
        reduction: ``"sum"`` or ``"max"``.
        accelerator: an ``accelerate.Accelerator`` (or None for torch.distributed).
    """
    import torch

    if reduction not in ("sum", "max"):
        raise ValueError(f"reduction must be 'sum' or 'max', got {reduction!r}.")
    home = tensor.device
    with torch.inference_mode(False):
        work = tensor.to(_comm_device(tensor, accelerator), copy=True)
        if accelerator is not None:
            work = accelerator.reduce(work, reduction=reduction)
        else:
            import torch.distributed as dist

            dist.all_reduce(work, op=dist.ReduceOp.SUM if reduction == "sum" else dist.ReduceOp.MAX)
        return work.to(home)


def all_gather_object(obj: Any, accelerator: Any = None) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (picklable objects) on every process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    if accelerator is not None:  # e.g. XLA without a torch.distributed process group
        from accelerate.utils import gather_object

        return list(gather_object([obj]))
    return [obj]
