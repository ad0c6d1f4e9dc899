"""StillMix-style augmentation: blend a still frame of another training clip into each clip, label kept.

In the spirit of StillMix (Li et al., ICCV 2023) and BE (Wang et al., CVPR 2021, which mixes a clip's
own frame): a clip ``x`` ``(T, H, W, 3)`` becomes ``x' = (1 - l) x + l s``, where ``s`` is one frame of
*another* training clip repeated over the T frames (a still video: appearance without motion) and
``l ~ U(0, max_mix)``; the label stays the clip's. A static cue in ``s`` is then unrelated to the
label, so a model gains nothing from following it, while the clip's motion is kept. No extra forward
(a data augmentation); reading the other clip costs one more item read per clip.

The draws for clip ``i`` in epoch ``e`` (whether to mix, the other clip, its frame, ``l``) come from
``numpy.random.SeedSequence(seed, spawn_key=(e, i))``: a run is reproducible and a resumed run sees the
same clips. Use it through :class:`~hf_stadyn.training.AugmentedDataset` (which binds the dataset it
wraps as the source of still frames), ``ClassificationTrainingConfig(augment="stillmix")`` or
``stadyn train --augment stillmix``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["StillMixAugment", "StillMixDraw"]


@dataclass(frozen=True)
class StillMixDraw:
    """One clip's draw: ``applied``, the ``other`` clip index, its ``frame`` index and the weight ``mix``."""

    applied: bool
    other: int
    frame: int
    mix: float


@dataclass
class StillMixAugment:
    """Blend a still frame of another training clip into a clip: ``x' = (1 - l) x + l still``, label kept.

    Args:
        max_mix: ``l ~ U(0, max_mix)``, in (0, 1] (``stillmix_max`` of the training config).
        p: probability that a clip is mixed, in [0, 1].
        seed: seed of the draws.
        source: the training clips (items ``{"frames": (T, H, W, 3) uint8, ...}``) the still frames come
            from; :class:`~hf_stadyn.training.AugmentedDataset` binds the dataset it wraps when None.

    Example:
        >>> aug = StillMixAugment(max_mix=0.5, seed=0, source=train)        # doctest: +SKIP
        >>> out = aug(train[3]["frames"], index=3, epoch=0)                  # (T, H, W, 3) uint8
    """

    max_mix: float = 0.5
    p: float = 1.0
    seed: int = 0
    source: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        m = self.max_mix
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0.0 < float(m) <= 1.0:
            raise ValueError(f"StillMixAugment: max_mix must be in (0, 1], got {m!r}.")
        if isinstance(self.p, bool) or not isinstance(self.p, (int, float)) or not 0.0 <= float(self.p) <= 1.0:
            raise ValueError(f"StillMixAugment: p must be a probability in [0, 1], got {self.p!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"StillMixAugment: seed must be a non-negative int, got {self.seed!r}.")

    def bind(self, dataset: Any) -> None:
        """Use ``dataset`` as the source of still frames unless one was given."""
        if self.source is None:
            self.source = dataset

    def draw(self, index: int, epoch: int = 0, num_frames: int = 1) -> StillMixDraw:
        """The draw of clip ``index`` in ``epoch`` (``num_frames``: frames of the other clip)."""
        if self.source is None:
            raise ValueError("StillMixAugment has no source clips; pass source=train_dataset or use AugmentedDataset.")
        n = len(self.source)
        if n < 2:
            raise ValueError(f"StillMixAugment needs >= 2 training clips (a frame of ANOTHER clip), got {n}.")
        rng = np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(int(epoch), int(index))))
        applied = not (self.p < 1.0 and rng.random() >= self.p)
        other = int(rng.integers(n - 1))
        other += int(other >= int(index) % n)  # any clip but this one
        frame_u = float(rng.random())
        mix = float(rng.uniform(0.0, float(self.max_mix)))
        return StillMixDraw(applied, other, min(int(frame_u * num_frames), num_frames - 1), mix)

    def __call__(self, clip: np.ndarray | torch.Tensor, index: int, epoch: int = 0) -> np.ndarray:
        """Mix clip ``index`` ``(T, H, W, 3)`` uint8; deterministic in ``(seed, epoch, index)``."""
        arr = clip.numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"StillMixAugment needs a (T, H, W, 3) uint8 clip, got {arr.dtype} {arr.shape}.")
        d0 = self.draw(index, epoch)
        if not d0.applied:
            return arr
        item = self.source[d0.other]
        frames = item["frames"] if isinstance(item, Mapping) else item
        other = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
        if other.ndim != 4 or other.shape[1:] != arr.shape[1:]:
            raise ValueError(
                f"StillMixAugment: clip {d0.other} of the source is {other.shape}, not (T, {arr.shape[1]}, "
                f"{arr.shape[2]}, 3) like clip {index}; the source must hold clips of the model's input size."
            )
        d = self.draw(index, epoch, num_frames=other.shape[0])
        still = other[d.frame].astype(np.float32)[None]  # (1, H, W, 3), broadcast over T
        out = (1.0 - d.mix) * arr.astype(np.float32) + d.mix * still
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
