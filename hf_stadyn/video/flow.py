"""Optical flow with OpenCV and its colour coding (docs/method.md §1.2).

Flow is ``(..., H, W, 2)`` float32 in pixels per frame, channel 0 = x (right), channel 1 = y (down).
Flow images use the usual colour wheel: hue = direction, saturation = magnitude (white = no motion),
value = 255; they are ``uint8`` RGB like video frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._common import _check_frames

__all__ = [
    "FLOW_METHODS",
    "apply_flow_jitter",
    "compute_flow",
    "flow_images",
    "flow_to_color",
    "jitter_flow_image",
    "jitter_flow_images",
]

#: Accepted ``method`` names of :func:`compute_flow`.
FLOW_METHODS = ("dis", "dis_fast", "dis_ultrafast", "farneback")

_DIS_PRESETS = {
    "dis": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    "dis_fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "dis_ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
}


def _gray(frames: np.ndarray) -> list[np.ndarray]:
    return [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]


def compute_flow(frames: np.ndarray, method: str = "dis") -> np.ndarray:
    """Dense optical flow between consecutive frames.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB, T >= 2.
        method: ``"dis"`` (DIS, medium preset: the default), ``"dis_fast"``, ``"dis_ultrafast"`` or
            ``"farneback"``.

    Returns:
        ``(T-1, H, W, 2)`` float32; ``flow[t]`` maps frame t to frame t+1 (x, y displacement in pixels).
    """
    frames = _check_frames(frames)
    if frames.shape[0] < 2:
        raise ValueError(f"optical flow needs at least 2 frames, got {frames.shape[0]}")
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
    gray = _gray(frames)
    t, h, w = frames.shape[:3]
    out = np.empty((t - 1, h, w, 2), np.float32)
    if method == "farneback":
        for i in range(t - 1):
            out[i] = cv2.calcOpticalFlowFarneback(gray[i], gray[i + 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        return out
    dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[method])
    for i in range(t - 1):
        out[i] = dis.calc(gray[i], gray[i + 1], None)
    return out


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code flow: hue = direction, saturation = magnitude, value = 255.

    Args:
        flow: ``(..., H, W, 2)`` float (x, y) displacements.
        max_magnitude: magnitude shown fully saturated; larger ones are clipped. None normalises each
            ``(H, W)`` field by its own largest magnitude (the usual visualisation).

    Returns:
        ``(..., H, W, 3)`` uint8 RGB; zero motion is white.
    """
    flow = np.asarray(flow)
    if flow.ndim < 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must have shape (..., H, W, 2), got {flow.shape}")
    if max_magnitude is not None and not (np.isfinite(max_magnitude) and max_magnitude > 0):
        raise ValueError(f"max_magnitude must be a positive number or None, got {max_magnitude!r}")
    lead, (h, w) = flow.shape[:-3], flow.shape[-3:-1]
    fields = flow.reshape(-1, h, w, 2).astype(np.float32, copy=False)
    out = np.empty((fields.shape[0], h, w, 3), np.uint8)
    hsv = np.empty((h, w, 3), np.uint8)
    for i, field in enumerate(fields):
        mag, ang = cv2.cartToPolar(field[..., 0], field[..., 1])  # angle in radians, [0, 2 pi)
        scale = max_magnitude if max_magnitude is not None else float(mag.max())
        hsv[..., 0] = np.round(ang * (255.0 / (2 * np.pi))).astype(np.int32) % 256  # full hue circle in 0..255
        hsv[..., 1] = np.clip(mag * (255.0 / scale), 0, 255) if scale > 0 else 0
        hsv[..., 2] = 255
        out[i] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    return out.reshape(*lead, h, w, 3)


def flow_images(frames: np.ndarray, method: str = "dis", max_magnitude: float | None = None) -> np.ndarray:
    """One colour-coded flow image per frame: frame t gets the flow t -> t+1, the last frame repeats the last flow.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB (T = 1 gives a white, motionless image).

    Returns:
        ``(T, H, W, 3)`` uint8.
    """
    frames = _check_frames(frames)
    if frames.shape[0] == 1:
        return np.full_like(frames, 255)
    images = flow_to_color(compute_flow(frames, method), max_magnitude)
    return np.concatenate([images, images[-1:]], axis=0)


def _check_range(value: tuple[float, float], name: str, lo: float, hi: float) -> tuple[float, float]:
    a, b = (float(v) for v in value)
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name} must be (low, high) with {lo} <= low <= high <= {hi}, got {value!r}")
    return a, b


def jitter_flow_image(
    img: np.ndarray,
    rng: np.random.Generator,
    hue_range: tuple[float, float] = (0.1, 0.5),
    sat_range: tuple[float, float] = (0.1, 1.0),
) -> np.ndarray:
    """Jitter a flow image for a static two-stream pair: shift hue by h ~ U(hue_range) of a full turn
    and scale saturation by s ~ U(sat_range), both drawn from ``rng``.

    Args:
        img: ``(H, W, 3)`` uint8 RGB flow image (from :func:`flow_to_color`).

    Returns:
        ``(H, W, 3)`` uint8: the same motion field with changed direction and magnitude information.
    """
    h_lo, h_hi = _check_range(hue_range, "hue_range", 0.0, 1.0)
    s_lo, s_hi = _check_range(sat_range, "sat_range", 0.0, 1.0)
    hue_shift = rng.uniform(h_lo, h_hi)
    saturation_scale = rng.uniform(s_lo, s_hi)
    return apply_flow_jitter(img, hue_shift, saturation_scale)


def apply_flow_jitter(img: np.ndarray, hue_shift: float, saturation_scale: float) -> np.ndarray:
    """Shift the hue of flow image ``img`` ``(H, W, 3)`` uint8 by ``hue_shift`` turns and scale its
    saturation by ``saturation_scale`` (the deterministic part of :func:`jitter_flow_image`)."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ValueError(f"img must be an (H, W, 3) uint8 flow image, got {img.shape} {img.dtype}")
    if not np.isfinite(hue_shift) or not (np.isfinite(saturation_scale) and saturation_scale >= 0):
        raise ValueError(f"need a finite hue_shift and saturation_scale >= 0, got {hue_shift!r}, {saturation_scale!r}")
    # float HSV (hue in degrees): no uint8 hue quantisation, and (0, 1) is exactly the identity
    hsv = cv2.cvtColor(img.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(360.0 * hue_shift), 360.0)
    hsv[..., 1] = np.minimum(hsv[..., 1] * np.float32(saturation_scale), 1.0)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def jitter_flow_images(
    images: np.ndarray,
    rng: np.random.Generator,
    hue_range: tuple[float, float] = (0.1, 0.5),
    sat_range: tuple[float, float] = (0.1, 1.0),
) -> np.ndarray:
    """:func:`jitter_flow_image` on each of ``(T, H, W, 3)`` flow images, redrawing h and s per frame."""
    images = _check_frames(images, "images")
    return np.stack([jitter_flow_image(im, rng, hue_range, sat_range) for im in images])
