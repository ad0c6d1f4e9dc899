"""Stylization augmentation: restyle training clips with the pair styles (the StaticDropout control).

docs/method.md §6 names stylization augmentation as a control any StaticDropout claim must beat: every
training clip is re-rendered in a random style of the pair stylizers (:mod:`hf_stadyn.pairs`), with
one set of style parameters for all its frames (temporally consistent: motion is untouched). The
draw for clip ``i`` in epoch ``e`` comes from ``numpy.random.SeedSequence(seed, spawn_key=(e, i))``, so
a run is reproducible and a resumed run sees the same augmented clips.

:class:`AugmentedDataset` also takes :class:`~hf_stadyn.debias.StillMixAugment` (re-exported here: a
still frame of another training clip blended into each clip, label kept; docs/debiasing.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hf_stadyn.debias.stillmix import StillMixAugment

__all__ = ["AugmentedDataset", "StillMixAugment", "StylizeAugment"]


@dataclass
class StylizeAugment:
    """Restyle a clip with probability ``p`` in a style drawn uniformly from ``styles``.

    Args:
        styles: style names or stylizers (default :data:`hf_stadyn.pairs.DEFAULT_STYLES`).
        p: probability that a clip is restyled (else returned unchanged), in [0, 1].
        seed: seed of the draws.

    Example:
        >>> aug = StylizeAugment(p=1.0, seed=0)                       # doctest: +SKIP
        >>> out = aug(clip_uint8_thwc, index=3, epoch=0)              # same clip shape, new style
    """

    styles: Sequence[Any] | None = None
    p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        from hf_stadyn.pairs import resolve_styles

        if isinstance(self.p, bool) or not isinstance(self.p, (int, float)) or not 0.0 <= float(self.p) <= 1.0:
            raise ValueError(f"StylizeAugment: p must be a probability in [0, 1], got {self.p!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"StylizeAugment: seed must be a non-negative int, got {self.seed!r}.")
        self._stylizers = resolve_styles(self.styles)

    @property
    def style_names(self) -> list[str]:
        return [getattr(s, "name", None) or type(s).__name__ for s in self._stylizers]

    def __call__(self, clip: np.ndarray | torch.Tensor, index: int, epoch: int = 0) -> np.ndarray:
        """Restyle ``clip`` ``(T, H, W, 3)`` uint8; deterministic in ``(seed, epoch, index)``."""
        arr = clip.numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"StylizeAugment needs a (T, H, W, 3) uint8 clip, got {arr.dtype} {arr.shape}.")
        rng = np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(int(epoch), int(index))))
        if self.p < 1.0 and rng.random() >= self.p:
            return arr
        stylizer = self._stylizers[int(rng.integers(len(self._stylizers)))]
        out = np.asarray(stylizer.apply(arr, stylizer.sample_params(rng)))
        if out.shape != arr.shape or out.dtype != np.uint8:
            raise ValueError(f"style {self.style_names} returned {out.shape} {out.dtype} for a {arr.shape} uint8 clip.")
        return out


class AugmentedDataset(torch.utils.data.Dataset):
    """A clip dataset whose ``"frames"`` are passed through ``augment(frames, index, epoch)``.

    ``augment`` is a :class:`StylizeAugment`, a :class:`~hf_stadyn.debias.StillMixAugment` (bound to
    ``dataset`` as its source of still frames) or any ``augment(frames, index, epoch) -> frames``.
    Call :meth:`set_epoch` at the start of each epoch (the training loop does). Other item fields
    pass unchanged.
    """

    def __init__(self, dataset: Any, augment: Any, epoch: int = 0) -> None:
        self.dataset = dataset
        self.augment = augment
        self.epoch = int(epoch)
        bind = getattr(augment, "bind", None)  # StillMixAugment: the wrapped clips give the still frames
        if callable(bind):
            bind(dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        if not isinstance(item, Mapping) or "frames" not in item:
            raise ValueError("AugmentedDataset needs items that are dicts with 'frames' (T, H, W, 3) uint8.")
        out = dict(item)
        out["frames"] = torch.from_numpy(self.augment(item["frames"], index, self.epoch))
        return out
