"""Which source frames a clip reads (:func:`sample_indices`) and resizing/cropping them (:func:`resize_and_crop`)."""

from __future__ import annotations

import cv2
import numpy as np

from ._common import _check_frames, _check_size

__all__ = ["resize_and_crop", "sample_indices"]


def sample_indices(
    num_source_frames: int,
    num_frames: int,
    window: int = 64,
    rng: np.random.Generator | None = None,
    *,
    start: int | None = None,
) -> np.ndarray:
    """Source frame indices of a clip: a window of ``window`` frames, uniformly subsampled to ``num_frames``.

    The window starts at ``start`` if given, else at ``rng.integers(0, N - window + 1)`` (N = number of
    source frames), else (no rng) at the centre window. A video shorter than the window is looped: the
    window starts at 0 and position ``j`` reads frame ``j % N``. Output frame ``k`` is window position
    ``floor(k * window / num_frames)``, so ``num_frames > window`` repeats frames.

    Returns:
        ``(num_frames,)`` int64 indices; the window start is ``indices[0]``.
    """
    n, t, w = int(num_source_frames), int(num_frames), int(window)
    if n < 1:
        raise ValueError(f"num_source_frames must be >= 1, got {num_source_frames}")
    if t < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if w < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if start is None:
        last_start = max(n - w, 0)
        start = int(rng.integers(0, last_start + 1)) if rng is not None else last_start // 2
    elif not 0 <= int(start) < n:
        raise ValueError(f"start={start} is outside the video's {n} frames; give 0 <= start < {n}")
    offsets = (np.arange(t, dtype=np.int64) * w) // t
    return (int(start) + offsets) % n


def _resize_crop_frame(frame: np.ndarray, size: int | None) -> np.ndarray:
    """Centre-crop the largest square and resize it to ``size`` x ``size`` (= resize short side, crop centre)."""
    if size is None:
        return frame
    h, w = frame.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    square = frame[y0 : y0 + side, x0 : x0 + side]
    if side == size:
        return np.ascontiguousarray(square)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)


def resize_and_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` and crop the centre ``size`` x ``size``.

    Args:
        frames: ``(T, H, W, 3)`` uint8.

    Returns:
        ``(T, size, size, 3)`` uint8. Shrinking uses area interpolation, enlarging bilinear.
    """
    frames = _check_frames(frames)
    side = _check_size(size)
    if side is None:
        raise ValueError("size must be a positive int")
    if frames.shape[1] == side and frames.shape[2] == side:
        return frames
    return np.stack([_resize_crop_frame(f, side) for f in frames])
