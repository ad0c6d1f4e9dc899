"""Appearance-free dynamic pairs (experimental; beyond the paper, docs/method.md §1.1 and §10).

A dynamic pair of the paper's protocol shares everything the two styles keep: motion, and also the
object's shape and the scene's layout. A model that reads shape or layout therefore looks "dynamic"
(docs/method.md §10). An *appearance-free* rendering keeps only the motion: a random noise texture carried
along the clip's optical flow, in the spirit of appearance-free action-recognition datasets (AFD, Ilic et
al., 2022). No single frame shows the object; only the way the texture moves does.

- :func:`render_appearance_free` renders one clip's appearance-free version.
- :class:`AppearanceFreePairs` wraps any clip-pair dataset (:class:`~hf_stadyn.pairs.PairDataset`,
  :class:`~hf_stadyn.pairs.ProbePairs`, ...) and replaces ``clip_b`` of every dynamic pair by the
  appearance-free rendering of ``clip_a`` (``members="b"``), or both members by two renderings of
  ``clip_a`` with independent textures (``members="both"``); static pairs pass through unchanged.

Rendering (per clip, deterministic from ``seed``):

1. DIS optical flow (``hf_stadyn.video.compute_flow``) forward ``f_t`` (frame t -> t+1) and backward
   ``b_t`` (frame t+1 -> t) between consecutive frames; displacements shorter than ``min_flow`` pixels
   are set to zero (flow noise on a still background would otherwise blur the texture frame after frame).
2. Frame 0 is a noise texture: uniform RGB noise blurred by a Gaussian of ``blur`` pixels, stretched to
   the full 0-255 range.
3. Frame t+1 = ``cv2.remap`` of frame t at ``p + b_t(p)`` (bilinear): every pixel takes the texture of
   where it came from. Pixels whose source lies outside the frame, or that fail the forward-backward
   check ``|f_t(p + b_t(p)) + b_t(p)|^2 > 0.01 (|f|^2 + |b|^2) + 0.5`` (occluded or disoccluded), are
   re-seeded from a fresh noise texture of that frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from ..video.flow import FLOW_METHODS, compute_flow
from .core import DYNAMIC

__all__ = ["APPEARANCE_FREE", "AppearanceFreePairs", "render_appearance_free"]

logger = logging.getLogger(__name__)

#: The value of :attr:`AppearanceFreePairs.dynamic_pairs` (and of ``style_b`` of a replaced pair).
APPEARANCE_FREE = "appearance_free"

# A fixed tag mixed into the seed of a pair's rendering, so it is not the stream of the pair itself.
_SEED_TAG = 0xAF


def _noise(rng: np.random.Generator, h: int, w: int, blur: float) -> np.ndarray:
    """(H, W, 3) float32 noise texture in [0, 255]: blurred uniform noise, stretched per channel."""
    x = rng.random((h, w, 3), dtype=np.float32)
    if blur > 0:
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=float(blur), borderType=cv2.BORDER_REFLECT)
    lo = x.min(axis=(0, 1), keepdims=True)
    hi = x.max(axis=(0, 1), keepdims=True)
    return (255.0 * (x - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)


def _check_clip(clip: Any) -> np.ndarray:
    arr = clip.numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 2:
        raise ValueError(
            f"render_appearance_free needs a uint8 (T, H, W, 3) clip with T >= 2, got {arr.dtype} {arr.shape}; "
            "convert the clip to uint8 RGB first"
        )
    return arr


def render_appearance_free(
    clip: np.ndarray | torch.Tensor,
    seed: int | Sequence[int] = 0,
    *,
    method: str = "dis",
    blur: float = 1.0,
    min_flow: float = 0.2,
    consistency: float = 0.5,
) -> np.ndarray:
    """The appearance-free version of ``clip``: a noise texture moved along the clip's optical flow.

    Args:
        clip: ``(T, H, W, 3)`` uint8 RGB, T >= 2 (numpy or torch).
        seed: seed of the noise (an int or a sequence of ints, as ``numpy.random.default_rng`` takes).
        method: flow method of :func:`hf_stadyn.video.compute_flow` (DIS medium by default).
        blur: Gaussian blur (pixels) of the noise texture; 0 keeps white noise (hard for flow and models).
        min_flow: displacements shorter than this (pixels) count as no motion.
        consistency: the additive tolerance (squared pixels) of the forward-backward occlusion check.

    Returns:
        ``(T, H, W, 3)`` uint8, the same shape and dtype as ``clip``.
    """
    frames = _check_clip(clip)
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
    if not (np.isfinite(blur) and blur >= 0) or not (np.isfinite(min_flow) and min_flow >= 0):
        raise ValueError(f"blur and min_flow must be non-negative numbers, got blur={blur!r}, min_flow={min_flow!r}")
    t, h, w = frames.shape[:3]
    rng = np.random.default_rng(seed)
    fwd = compute_flow(frames, method)  # (T-1, H, W, 2): t -> t+1
    bwd = compute_flow(np.ascontiguousarray(frames[::-1]), method)[::-1]  # bwd[t]: t+1 -> t
    for f in (fwd, bwd):
        f[np.hypot(f[..., 0], f[..., 1]) < min_flow] = 0.0
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = np.empty((t, h, w, 3), np.float32)
    out[0] = _noise(rng, h, w, blur)
    for i in range(t - 1):
        b = bwd[i]
        mx, my = gx + b[..., 0], gy + b[..., 1]
        warped = cv2.remap(out[i], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        f_at = cv2.remap(fwd[i], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = np.sum((f_at + b) ** 2, axis=-1)
        occluded = err > 0.01 * (np.sum(f_at**2, axis=-1) + np.sum(b**2, axis=-1)) + consistency
        outside = (mx < 0) | (mx > w - 1) | (my < 0) | (my > h - 1)
        fresh = _noise(rng, h, w, blur)
        reseed = occluded | outside
        warped[reseed] = fresh[reseed]
        out[i + 1] = warped
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class AppearanceFreePairs(torch.utils.data.Dataset):
    """Dynamic pairs whose members share motion only (experimental; docs/method.md §10).

    Wraps a clip-pair dataset (items with ``clip_a``, ``clip_b`` uint8 ``(T, H, W, 3)``, ``factor``
    and ``index``). Item ``i`` is item ``i`` of ``pairs``, except for a dynamic pair (factor 0):

    - ``members="b"`` (default): ``clip_b`` becomes :func:`render_appearance_free` of ``clip_a`` with the
      seed ``(seed, index, 0xAF)`` (``index`` = the item's ``"index"``, else ``i``), paired with the
      stylized ``clip_a``; ``style_b`` (when present) becomes ``"appearance_free"``.
    - ``members="both"``: ``clip_a`` and ``clip_b`` become two renderings of the original ``clip_a``
      with the seeds ``(seed, index, 0xAF, 1)`` and ``(seed, index, 0xAF, 2)`` (independent textures, the
      same motion); ``style_a`` and ``style_b`` become ``"appearance_free"``. Both members are then
      appearance-free clips, so a model's features are compared within one input domain.

    Static pairs are returned unchanged (the wrapped dataset's item itself). Items of a multi-pathway
    dataset (lists of clips) render each pathway's clip with the member's seed extended by ``(k,)``.

    Args:
        pairs: the clip-pair dataset to wrap.
        seed: seed of the noise textures (non-negative int).
        members: ``"b"`` or ``"both"`` (see above).
        method, blur, min_flow: as for :func:`render_appearance_free`.

    Attributes:
        dynamic_pairs: ``"appearance_free"``, for reports (the plain protocol is ``"stylized"``).
        settings: ``{"dynamic_pairs", "members", "seed", "method", "blur", "min_flow"}``.
    """

    dynamic_pairs: str = APPEARANCE_FREE

    def __init__(
        self,
        pairs: Any,
        seed: int = 0,
        *,
        members: str = "b",
        method: str = "dis",
        blur: float = 1.0,
        min_flow: float = 0.2,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if method not in FLOW_METHODS:
            raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
        if members not in ("b", "both"):
            raise ValueError(f"members must be 'b' (replace clip_b) or 'both' (replace both members), got {members!r}")
        try:
            len(pairs)
        except TypeError:
            raise ValueError("pairs must be a map-style dataset of clip pairs (with __len__ and __getitem__)") from None
        self.pairs, self.seed, self.members = pairs, int(seed), members
        self.method, self.blur, self.min_flow = method, float(blur), float(min_flow)
        self.settings = {
            "dynamic_pairs": APPEARANCE_FREE, "members": members, "seed": self.seed, "method": method, "blur": self.blur,
            "min_flow": self.min_flow,
        }  # fmt: skip

    def __len__(self) -> int:
        return len(self.pairs)

    def __getattr__(self, name: str) -> Any:
        # Attributes of the wrapped dataset (num_frames, size, window, seed of the pairs, ...) stay readable.
        if name == "pairs":
            raise AttributeError(name)
        return getattr(self.pairs, name)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.pairs[i]
        if "clip_a" not in item:
            raise ValueError(
                "AppearanceFreePairs wraps clip pairs (items with clip_a/clip_b); two-stream pairs already "
                "pair a frame with its flow image"
            )
        if int(item["factor"]) != DYNAMIC:
            return item
        index = int(item.get("index", i))
        out = dict(item)
        if self.members == "b":
            out["clip_b"] = self._render(item["clip_a"], (self.seed, index, _SEED_TAG))
            keys = ["style_b"]
        else:
            out["clip_a"] = self._render(item["clip_a"], (self.seed, index, _SEED_TAG, 1))
            out["clip_b"] = self._render(item["clip_a"], (self.seed, index, _SEED_TAG, 2))
            keys = ["style_a", "style_b"]
        for key in keys:
            if key in out:
                out[key] = APPEARANCE_FREE
        return out

    def _render(self, clip: Any, seed: tuple[int, ...]) -> Any:
        render = {"method": self.method, "blur": self.blur, "min_flow": self.min_flow}
        if isinstance(clip, list):
            return [torch.from_numpy(render_appearance_free(c, (*seed, k), **render)) for k, c in enumerate(clip)]
        out = render_appearance_free(clip, seed, **render)
        return torch.from_numpy(out) if isinstance(clip, torch.Tensor) else out
