"""DataLoader settings for pair datasets: how many workers, and what each worker does first.

Making a pair (decode, sample, stylize, shuffle) is CPU work, tens of ms per pair on one core, most of it
decoding (docs/scaling.md measures it); a GPU's forward takes a few ms per pair. So on an accelerator the pairs must
come from several DataLoader worker processes, each on its own core with one thread (several threads per
worker only fight each other and the main process). tests/bench/bench_fullsize.py prints pairs/s per
worker next to the model's clips/s, which sizes the worker count for a given GPU (docs/scaling.md).
"""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["available_cores", "default_num_workers", "pair_loader_options", "pair_worker_init"]

#: More workers than this rarely help a single accelerator and multiply the memory of decoded-video caches.
MAX_DEFAULT_WORKERS = 8


def available_cores() -> int:
    """CPU cores this process may run on (``os.sched_getaffinity``, so a container's or a SLURM job's
    CPU set counts, not the machine's), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_num_workers(cores: int | None = None) -> int:
    """The default DataLoader worker count: the cores available minus one for the main process (which runs
    the model and the estimator), at most :data:`MAX_DEFAULT_WORKERS`; 0 (pairs made in the main process)
    on a single core.

    Args:
        cores: cores to plan for; None = :func:`available_cores`.
    """
    n = available_cores() if cores is None else int(cores)
    return max(0, min(n - 1, MAX_DEFAULT_WORKERS))


def pair_worker_init(worker_id: int) -> None:
    """``worker_init_fn`` of pair loaders: one torch thread per worker process.

    OpenCV's thread pool is left alone: ``cv2.setNumThreads`` in a forked worker whose parent had started
    the pool can wait forever for threads the child does not have (seen here: intermittent hangs).
    """
    torch.set_num_threads(1)


def pair_loader_options(num_workers: int | str | None = 0, device: Any = None) -> dict[str, Any]:
    """Keyword arguments for ``torch.utils.data.DataLoader`` over a pair dataset.

    Args:
        num_workers: an int >= 0, or ``"auto"`` / None for :func:`default_num_workers`.
        device: where the batches go; a CUDA device turns on ``pin_memory`` (faster, asynchronous copies).

    Returns:
        ``{"num_workers", "pin_memory"}`` plus, with workers, ``{"worker_init_fn": pair_worker_init,
        "prefetch_factor": 2}``.
    """
    if num_workers is None or (isinstance(num_workers, str) and num_workers == "auto"):
        num_workers = default_num_workers()
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0 or 'auto', got {num_workers!r}")
    dev_type = torch.device(device).type if device is not None else "cpu"
    options: dict[str, Any] = {"num_workers": num_workers, "pin_memory": dev_type == "cuda"}
    if num_workers > 0:
        options.update(worker_init_fn=pair_worker_init, prefetch_factor=2)
    return options
