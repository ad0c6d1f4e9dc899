"""Fixed probe pairs: the same seeded pairs at every measurement (bias tracking during training).

:class:`ProbePairs` renders clip pairs (docs/method.md §1.1) from model-ready clips once and keeps them, so
that every bias measurement of a training run reads exactly the same pairs, in every process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["ProbePairs"]


class ProbePairs(torch.utils.data.Dataset):
    """A fixed, seeded set of probe pairs built from model-ready clips (docs/method.md §1.1).

    A thin cache over :class:`hf_stadyn.pairs.PairDataset`: pair ``i`` uses clip ``i % len(clips)``
    whole (all T frames, no resizing) and its factor (50/50), styles and shuffle come from
    ``(seed, i)``, so the set is the same at every measurement and in every process. With
    ``cache=True`` pairs are rendered once and kept (``2 * num_pairs`` uint8 clips in memory).

    Args:
        clips: uint8 clips ``(T, H, W, 3)`` at the model's input size (numpy or torch), a sequence of
            them, or a dataset whose items are dicts with ``"frames"`` (e.g.
            :class:`hf_stadyn.synth.SynthDataset`).
        num_pairs: number of pairs N (>= 4).
        seed: seed of the factors, styles and shuffles.
        styles: style names or stylizers (default :data:`hf_stadyn.pairs.DEFAULT_STYLES`).
        cache: keep rendered pairs in memory.

    Items: ``{"clip_a", "clip_b"}`` uint8 ``(T, H, W, 3)`` tensors, ``"factor"`` (0 dynamic, 1 static),
    ``"index"`` and ``"video_index"`` (the clip index ``i % len(clips)``: pairs of one clip share a
    jackknife chunk, docs/method.md §5), as :func:`hf_stadyn.probing.probe` expects. Every clip is read
    whole (window = T = its own length, so the window always fits, docs/method.md §1.1).
    """

    def __init__(
        self,
        clips: Any,
        num_pairs: int = 512,
        seed: int = 0,
        *,
        styles: Sequence[Any] | None = None,
        cache: bool = True,
    ) -> None:
        from .dataset import PairDataset

        if isinstance(num_pairs, bool) or not isinstance(num_pairs, (int, np.integer)) or num_pairs < 4:
            raise ValueError(f"num_pairs must be an int >= 4 (>= 2 pairs per factor), got {num_pairs!r}.")
        if isinstance(clips, (np.ndarray, torch.Tensor)) and clips.ndim == 4:
            clips = [clips]
        try:
            n = len(clips)
        except TypeError:
            raise ValueError(
                "clips must be a sequence of (T, H, W, 3) uint8 clips or a dataset of dicts with 'frames'."
            ) from None
        if n == 0:
            raise ValueError("clips is empty; give at least one clip to build probe pairs from.")
        self.clips = clips
        t = self._clip(0).shape[0]
        if t < 2:
            raise ValueError(
                f"clip 0 has {t} frame(s); probe pairs need clips of at least 2 frames (static pairs shuffle frames)."
            )
        self._pairs = PairDataset(
            self._clip, num_frames=t, size=None, window=t, seed=seed, styles=styles,
            num_pairs=int(num_pairs), num_videos=n,
        )  # fmt: skip
        self.num_pairs = int(num_pairs)
        self.seed = int(seed)
        self._cache: dict[int, dict[str, Any]] | None = {} if cache else None

    def __len__(self) -> int:
        return self.num_pairs

    def _clip(self, j: int) -> np.ndarray:
        item = self.clips[j]
        if isinstance(item, Mapping):
            item = item["frames"]
        arr = item.numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"clip {j} must be uint8 (T, H, W, 3), got {arr.dtype} {arr.shape}.")
        return arr

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_pairs:
            raise IndexError(f"pair index {index} out of range 0..{self.num_pairs - 1}")
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        it = self._pairs[index]
        item = {
            "clip_a": it["clip_a"],
            "clip_b": it["clip_b"],
            "factor": int(it["factor"]),
            "index": index,
            "video_index": int(it["video_index"]),
        }
        if self._cache is not None:
            self._cache[index] = item
        return item
