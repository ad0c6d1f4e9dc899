"""Which source frames a clip reads (:func:`sample_indices`) and resizing/cropping them (:func:`resize_and_crop`)."""

from __future__ import annotations

import cv2
import numpy as np

from ._common import _check_frames, _check_size

__all__ = ["DEFAULT_WINDOW", "fit_window", "resize_and_crop", "sample_indices"]


#: The research code's temporal window (source frames a clip spans) when the model declares no sampling rate.
DEFAULT_WINDOW = 64


def fit_window(num_source_frames: int, num_frames: int, window: int, *, loop: bool = False) -> tuple[int, bool]:
    """The window a video of ``num_source_frames`` frames is read with, and whether it loops (docs/method.md §1.1).

    The window never exceeds the video: ``min(window, N)``. Only with ``loop=True`` and a video shorter
    than the model's frame count (``N < num_frames``) is the full ``window`` kept and read looping.

    Returns:
        ``(window, looped)``.
    """
    n, t, w = int(num_source_frames), int(num_frames), int(window)
    if loop and n < t and w > n:
        return w, True
    return min(w, n), False


def sample_indices(
    num_source_frames: int,
    num_frames: int,
    window: int = DEFAULT_WINDOW,
    rng: np.random.Generator | None = None,
    *,
    start: int | None = None,
    loop: bool = False,
) -> np.ndarray:
    """Source frame indices of a clip: ``num_frames`` evenly spaced frames of a window (docs/method.md §1.1).

    The window is fitted to the video first (:func:`fit_window`): ``min(window, N)`` frames (N = number of
    source frames), so a clip is never a frozen or looping artefact; only with ``loop=True`` does a video
    shorter than ``num_frames`` keep the full window and loop (position ``j`` reads frame
    ``(start + j) % N``). The window starts at ``start`` if given (without looping it then ends at the
    last frame at the latest), else at ``rng.integers(0, N - w + 1)``, else (no rng) at the centre window. Output frame ``k`` is window position
    ``round(k * (w - 1) / (num_frames - 1))`` (``np.linspace(start, start + w - 1, num_frames)`` rounded
    half up): evenly spaced, both ends included; ``num_frames > w`` repeats frames in order.

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
    w, looped = fit_window(n, t, w, loop=loop)
    if start is None:
        last_start = max(n - w, 0)
        start = int(rng.integers(0, last_start + 1)) if rng is not None else last_start // 2
    elif not 0 <= int(start) < n:
        raise ValueError(f"start={start} is outside the video's {n} frames; give 0 <= start < {n}")
    elif not looped:
        w = min(w, n - int(start))  # an explicit start near the end: the window ends at the last frame
    if t == 1:
        offsets = np.zeros(1, dtype=np.int64)
    else:  # exact integer form of floor(linspace(0, w - 1, t) + 0.5)
        offsets = (2 * np.arange(t, dtype=np.int64) * (w - 1) + (t - 1)) // (2 * (t - 1))
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
