"""AVOS data: per-frame (RGB frame, flow image, mask) samples from StaDyn-Synth or any frames (docs/method.md §7).

Data are per-frame samples: an RGB frame ``(H, W, 3)`` uint8, the colour-coded optical flow from that
frame to the next ``(H, W, 3)`` uint8 (:func:`hf_stadyn.video.compute_flow` +
:func:`hf_stadyn.video.flow_to_color`, computed on the original frames) and the object mask
``(H, W)`` bool. :func:`build_avos_frames` renders them from StaDyn-Synth clips, in normal or
camouflage mode; :func:`avos_frames_from_video` makes them from any frames and masks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["AVOSFrames", "avos_frames_from_video", "build_avos_frames"]


@dataclass
class AVOSFrames:
    """Per-frame two-stream segmentation samples.

    Attributes:
        rgb: ``(N, H, W, 3)`` uint8 RGB frames.
        flow: ``(N, H, W, 3)`` uint8 colour-coded flow from each frame to the next.
        mask: ``(N, H, W)`` bool object masks.
        clip_id: ``(N,)`` int64 clip of each frame (J and F average per clip first).
        info: how the samples were made (for reports).
    """

    rgb: torch.Tensor
    flow: torch.Tensor
    mask: torch.Tensor
    clip_id: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.rgb.shape[0]
        ok = (
            self.rgb.dtype == torch.uint8
            and self.flow.dtype == torch.uint8
            and self.rgb.ndim == 4
            and self.rgb.shape[-1] == 3
            and self.flow.shape == self.rgb.shape
            and self.mask.shape == self.rgb.shape[:3]
            and self.clip_id.shape == (n,)
        )
        if not ok:
            raise ValueError(
                "AVOSFrames needs rgb and flow (N, H, W, 3) uint8, mask (N, H, W) and clip_id (N,); got "
                f"rgb {tuple(self.rgb.shape)} {self.rgb.dtype}, flow {tuple(self.flow.shape)} {self.flow.dtype}, "
                f"mask {tuple(self.mask.shape)}, clip_id {tuple(self.clip_id.shape)}."
            )
        self.mask = self.mask.bool()
        self.clip_id = self.clip_id.long()

    def __len__(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[2])

    def subset(self, index: Sequence[int] | torch.Tensor) -> AVOSFrames:
        idx = torch.as_tensor(index, dtype=torch.long)
        return AVOSFrames(self.rgb[idx], self.flow[idx], self.mask[idx], self.clip_id[idx], dict(self.info))

    @staticmethod
    def concat(parts: Sequence[AVOSFrames]) -> AVOSFrames:
        """Join sets; clip ids are offset so that clips stay distinct."""
        if not parts:
            raise ValueError("AVOSFrames.concat needs at least one set.")
        ids, off = [], 0
        for p in parts:
            ids.append(p.clip_id + off)
            off += int(p.clip_id.max()) + 1 if len(p) else 0
        return AVOSFrames(
            torch.cat([p.rgb for p in parts]),
            torch.cat([p.flow for p in parts]),
            torch.cat([p.mask for p in parts]),
            torch.cat(ids),
            {"parts": [p.info for p in parts]},
        )


def avos_frames_from_video(
    frames: np.ndarray,
    masks: np.ndarray,
    *,
    flow_method: str = "dis",
    clip_id: int = 0,
    max_magnitude: float | None = None,
) -> AVOSFrames:
    """Per-frame samples of one clip: frames ``0 .. T-2`` with the flow to the next frame.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB, T >= 2.
        masks: ``(T, H, W)`` bool/0-1 object masks.
        flow_method: see :func:`hf_stadyn.video.compute_flow`.
        max_magnitude: see :func:`hf_stadyn.video.flow_to_color` (None: per-field normalisation).
    """
    from hf_stadyn.video import compute_flow, flow_to_color

    frames = np.asarray(frames)
    masks = np.asarray(masks)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] < 2:
        raise ValueError(f"frames must be (T >= 2, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}.")
    if masks.shape != frames.shape[:3]:
        raise ValueError(f"masks must be (T, H, W) = {frames.shape[:3]}, got {masks.shape}.")
    flow = flow_to_color(compute_flow(frames, flow_method), max_magnitude)  # (T-1, H, W, 3)
    n = frames.shape[0] - 1
    return AVOSFrames(
        rgb=torch.from_numpy(np.ascontiguousarray(frames[:n])),
        flow=torch.from_numpy(np.ascontiguousarray(flow)),
        mask=torch.from_numpy(np.ascontiguousarray(masks[:n] > 0)),
        clip_id=torch.full((n,), int(clip_id), dtype=torch.long),
        info={"flow_method": flow_method},
    )


def build_avos_frames(
    num_clips: int,
    *,
    synth_config: Any = None,
    camouflage: bool = False,
    seed: int = 0,
    train: bool = True,
    flow_method: str = "dis",
    progress: bool = False,
) -> AVOSFrames:
    """Render StaDyn-Synth clips (motion split) and turn them into per-frame AVOS samples.

    Args:
        num_clips: clips to render (each gives ``num_frames - 1`` samples).
        synth_config: :class:`hf_stadyn.synth.SynthConfig` (default: 64x64, 8 frames, 3 px/frame).
        camouflage: object texture drawn from the background (only motion reveals the object).
        seed: the dataset seed; train and test sets of one seed never share clips.
        train: training or test split of that seed.
        flow_method: see :func:`hf_stadyn.video.compute_flow`.
    """
    from tqdm.auto import tqdm

    from hf_stadyn.synth.config import SynthConfig
    from hf_stadyn.synth.dataset import SynthDataset

    if not (isinstance(num_clips, (int, np.integer)) and num_clips >= 1):
        raise ValueError(f"num_clips must be a positive integer, got {num_clips!r}.")
    cfg = synth_config if synth_config is not None else SynthConfig(size=64, num_frames=8, speed=3.0)
    cfg = dataclasses.replace(cfg, camouflage=bool(camouflage))
    ds = SynthDataset("motion", int(num_clips), config=cfg, seed=int(seed), train=bool(train))
    parts = []
    for i in tqdm(range(len(ds)), disable=not progress, desc="rendering AVOS clips", unit="clip"):
        item = ds[i]
        parts.append(avos_frames_from_video(item["frames"].numpy(), item["mask"].numpy(), flow_method=flow_method))
    out = AVOSFrames.concat(parts)  # clip ids 0 .. num_clips - 1
    out.info = {
        "source": "stadyn-synth",
        "split": "motion",
        "num_clips": int(num_clips),
        "camouflage": bool(camouflage),
        "seed": int(seed),
        "train": bool(train),
        "size": cfg.size,
        "num_frames": cfg.num_frames,
        "flow_method": flow_method,
    }
    return out
