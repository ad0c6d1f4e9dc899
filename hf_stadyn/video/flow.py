"""Optical flow with OpenCV, its colour coding and the flow-image jitter of static pairs (docs/method.md §1.2).

Flow is ``(..., H, W, 2)`` float32 in pixels per frame, channel 0 = x (right), channel 1 = y (down).
Flow images use the usual colour wheel: hue = direction, saturation = magnitude (white = no motion),
value = 255; they are ``uint8`` RGB like video frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ._common import _check_frames

__all__ = [
    "FLOW_METHODS",
    "JITTER_ORDERS",
    "FlowJitter",
    "apply_flow_jitter",
    "compute_flow",
    "draw_flow_jitter",
    "flow_images",
    "flow_to_color",
    "greyscale",
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
            # the stubs type the output array ``flow`` as required; OpenCV allocates it when it is None
            out[i] = cv2.calcOpticalFlowFarneback(gray[i], gray[i + 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
        return out
    dis = cv2.DISOpticalFlow.create(_DIS_PRESETS[method])
    for i in range(t - 1):
        out[i] = dis.calc(gray[i], gray[i + 1], None)  # type: ignore[call-overload]  # None output: as above
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


#: The two orders in which :func:`apply_flow_jitter` applies its two operations.
JITTER_ORDERS = ("hue,saturation", "saturation,hue")


@dataclass(frozen=True)
class FlowJitter:
    """One drawn flow-image jitter (docs/method.md §1.2).

    Attributes:
        hue_shift: hue shift in turns of the colour wheel, drawn from U(-h, h) (symmetric).
        saturation_scale: the saturation factor, drawn from U(max(0, 1 - s), 1 + s): a blend with the
            greyscale image (PIL ``ImageEnhance.Color``); 0 = greyscale, 1 = unchanged, > 1 = more saturated.
        order: ``"hue,saturation"`` or ``"saturation,hue"``: which operation is applied first.
        hue_range_drawn, saturation_range_drawn: the first-level draws h and s (the ranges).
    """

    hue_shift: float
    saturation_scale: float
    order: str
    hue_range_drawn: float
    saturation_range_drawn: float


def draw_flow_jitter(
    rng: np.random.Generator,
    hue_range: tuple[float, float] = (0.1, 0.5),
    sat_range: tuple[float, float] = (0.1, 1.0),
) -> FlowJitter:
    """Draw a flow-image jitter the way the research code does (docs/method.md §1.2).

    Two levels, as ``ExtFlowColorJitter`` + torchvision ``ColorJitter(brightness=0, contrast=0,
    saturation=s, hue=h)``: first the ranges h ~ U(hue_range) and s ~ U(sat_range), then the order of the
    two operations (50/50), the saturation factor ~ U(max(0, 1 - s), 1 + s) and the hue shift ~ U(-h, h).
    The draws are made from ``rng`` in exactly this order.

    Args:
        rng: the generator every choice is drawn from.
        hue_range: range of h, within [0, 0.5] (a shift of half a turn either way is the largest).
        sat_range: range of s, within [0, 10].
    """
    h_lo, h_hi = _check_range(hue_range, "hue_range", 0.0, 0.5)
    s_lo, s_hi = _check_range(sat_range, "sat_range", 0.0, 10.0)
    h = float(rng.uniform(h_lo, h_hi))
    s = float(rng.uniform(s_lo, s_hi))
    order = JITTER_ORDERS[int(rng.integers(2))]
    factor = float(rng.uniform(max(0.0, 1.0 - s), 1.0 + s))
    shift = float(rng.uniform(-h, h))
    return FlowJitter(shift, factor, order, h, s)


def jitter_flow_image(
    img: np.ndarray,
    rng: np.random.Generator,
    hue_range: tuple[float, float] = (0.1, 0.5),
    sat_range: tuple[float, float] = (0.1, 1.0),
) -> np.ndarray:
    """Jitter a flow image for a static two-stream pair: :func:`draw_flow_jitter`, then :func:`apply_flow_jitter`.

    Args:
        img: ``(H, W, 3)`` uint8 RGB flow image (from :func:`flow_to_color`).

    Returns:
        ``(H, W, 3)`` uint8: the same motion field with changed direction and magnitude information.
    """
    j = draw_flow_jitter(rng, hue_range, sat_range)
    return apply_flow_jitter(img, j.hue_shift, j.saturation_scale, order=j.order)


def _shift_hue(img: np.ndarray, hue_shift: float) -> np.ndarray:
    """Rotate the hue of ``(H, W, 3)`` uint8 ``img`` by ``hue_shift`` turns (float HSV, no hue quantisation)."""
    if hue_shift == 0.0:
        return img
    hsv = cv2.cvtColor(img.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(360.0 * hue_shift), 360.0)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def greyscale(img: np.ndarray) -> np.ndarray:
    """PIL's ``"L"`` conversion of ``(..., 3)`` uint8 RGB: ITU-R 601-2 luma, L = (299 R + 587 G + 114 B) / 1000.

    Rounded to uint8 as PIL does (fixed point 19595 R + 38470 G + 7471 B, rounded); returns ``(...)`` uint8.
    """
    x = np.asarray(img).astype(np.uint32)
    return ((x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


def _blend_saturation(img: np.ndarray, factor: float) -> np.ndarray:
    """PIL ``ImageEnhance.Color(img).enhance(factor)``: ``grey + factor * (img - grey)``, clipped to 0..255."""
    if factor == 1.0:
        return img
    grey = greyscale(img).astype(np.float32)[..., None]
    out = grey + np.float32(factor) * (img.astype(np.float32) - grey)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def apply_flow_jitter(
    img: np.ndarray, hue_shift: float, saturation_scale: float, *, order: str = "hue,saturation"
) -> np.ndarray:
    """Apply a drawn jitter to flow image ``img`` (the deterministic part of :func:`jitter_flow_image`).

    Args:
        img: ``(H, W, 3)`` uint8 RGB flow image.
        hue_shift: hue rotation in turns of the colour wheel (any sign; torchvision ``adjust_hue``).
        saturation_scale: the saturation factor, >= 0: a blend with PIL's greyscale image,
            ``grey + factor * (img - grey)`` clipped (PIL ``ImageEnhance.Color``, torchvision
            ``adjust_saturation``); 1 leaves the image unchanged and factors > 1 saturate more.
        order: ``"hue,saturation"`` or ``"saturation,hue"`` (the image is uint8 between the two, as in PIL).

    Returns:
        ``(H, W, 3)`` uint8; ``(0, 1)`` is exactly the identity.
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ValueError(f"img must be an (H, W, 3) uint8 flow image, got {img.shape} {img.dtype}")
    if not np.isfinite(hue_shift) or not (np.isfinite(saturation_scale) and saturation_scale >= 0):
        raise ValueError(f"need a finite hue_shift and saturation_scale >= 0, got {hue_shift!r}, {saturation_scale!r}")
    if order not in JITTER_ORDERS:
        raise ValueError(f"order must be one of {JITTER_ORDERS}, got {order!r}")
    if order == "hue,saturation":
        return _blend_saturation(_shift_hue(img, float(hue_shift)), float(saturation_scale))
    return _shift_hue(_blend_saturation(img, float(saturation_scale)), float(hue_shift))


def jitter_flow_images(
    images: np.ndarray,
    rng: np.random.Generator,
    hue_range: tuple[float, float] = (0.1, 0.5),
    sat_range: tuple[float, float] = (0.1, 1.0),
) -> np.ndarray:
    """:func:`jitter_flow_image` on each of ``(T, H, W, 3)`` flow images, redrawing the jitter per frame."""
    images = _check_frames(images, "images")
    return np.stack([jitter_flow_image(im, rng, hue_range, sat_range) for im in images])
