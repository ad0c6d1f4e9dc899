"""Decoded videos kept for the pairs that share them (one cache per process or DataLoader worker).

Pair ``i`` of a :class:`~hf_stadyn.pairs.PairDataset` reads video ``i % V``, so with more pairs than videos
each video serves several pairs, each with its own window. Reading each pair's window from the file
decodes up to the window's last frame every time (from the start of the file, or from the key frame
before it); decoding the video once, whole, at the clip size, and sampling every later window from
memory gives the same frames at a fraction of the cost (docs/scaling.md, "Data path").

A video is kept only when that pays and fits: it is expected to serve at least two pairs in this process
and, at ``min(N, window + 48)`` frames decoded per read, its reads together would decode at least its N
frames; and its frames fit in what is left of the budget. Videos are kept until the process ends, never
evicted (a cache that evicts in a cycle over more videos than it holds would decode whole videos for
nothing), so the first videos that fit stay and the others are read window by window as before.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

__all__ = ["DecodedVideoCache"]


class DecodedVideoCache:
    """Whole decoded videos by collection index, within a byte budget.

    Args:
        budget_mb: MiB of decoded frames to keep (0 turns the cache off).

    Attributes:
        stats: counts for cost accounting: ``whole_decodes`` (videos decoded whole into the cache),
            ``cache_hits`` (clips sampled from a kept video), ``window_reads`` (clips read from the file
            window by window), ``declined`` (videos not kept: too few uses or over the budget).
    """

    def __init__(self, budget_mb: float = 256.0) -> None:
        if isinstance(budget_mb, bool) or not isinstance(budget_mb, (int, float)) or budget_mb < 0:
            raise ValueError(f"decode_cache_mb must be a number >= 0 (MiB; 0 = off), got {budget_mb!r}")
        self.budget = int(float(budget_mb) * 2**20)
        self.used = 0
        self._kept: dict[int, tuple[np.ndarray, int]] = {}
        self._declined: set[int] = set()
        self.stats: Counter[str] = Counter()

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def get(self, j: int) -> tuple[np.ndarray, int] | None:
        """``(frames, announced_frame_count)`` of kept video ``j``, else None."""
        got = self._kept.get(j)
        if got is not None:
            self.stats["cache_hits"] += 1
        return got

    def declined(self, j: int) -> bool:
        return j in self._declined

    def worth_keeping(self, j: int, num_frames: int, frame_bytes: int, uses: float, window: int) -> bool:
        """Whether video ``j`` of ``num_frames`` frames of ``frame_bytes`` each, expected to serve ``uses``
        pairs here, read ``window`` frames at a time, should be decoded whole and kept (see the module
        docstring); a refusal is remembered."""
        per_read = min(num_frames, window + 48)
        ok = (
            self.enabled
            and uses >= 2
            and uses * per_read >= num_frames
            and self.used + num_frames * frame_bytes <= self.budget
        )
        if not ok:
            self._declined.add(j)
            self.stats["declined"] += 1
        return ok

    def put(self, j: int, frames: np.ndarray, announced: int) -> None:
        self._kept[j] = (frames, int(announced))
        self.used += int(frames.nbytes)
        self.stats["whole_decodes"] += 1

    def decline(self, j: int) -> None:
        self._declined.add(j)
        self.stats["declined"] += 1

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers (and pickled copies) start empty: each process fills its own cache
        state = self.__dict__.copy()
        state.update(_kept={}, _declined=set(), used=0, stats=Counter())
        return state
