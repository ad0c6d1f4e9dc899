"""Decoding videos with PyAV with bounded memory (:func:`read_video`, :func:`read_clip`).

Frames are always ``uint8`` arrays of shape ``(T, H, W, 3)`` in RGB order.

Reading decodes only as far as the last frame it needs, keeps only the frames it needs and resizes
each one as soon as it is decoded, so a long high-resolution file costs the memory of ``T`` output
frames plus one decoded frame. When the first needed frame lies far into a file whose frame count and
rate are known, the reader seeks to the key frame before it instead of decoding from the start. The
frame count comes from the container info (:func:`~hf_stadyn.video.read_video_info`).
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

import av
import numpy as np

from . import info as _info
from ._common import VideoSource, _check_size, _decode_errors, _describe, _open
from .info import VideoInfo, read_video_info
from .sampling import _resize_crop_frame, sample_indices

__all__ = ["VideoClip", "read_clip", "read_video"]

logger = logging.getLogger(__name__)

# Seek instead of decoding from the start when the first needed frame is at least this far in.
_SEEK_MIN_FRAMES = 48
# Metadata may over-count by a frame or two (edit lists, dropped last frame): tolerate that many.
_COUNT_SLACK = 2


@dataclass
class VideoClip:
    """Frames read by :func:`read_clip` and where they came from.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB.
        indices: ``(T,)`` int64 source frame index of each output frame.
        start: first source frame of the sampling window.
        num_source_frames: frames in the source video.
        fps: source frame rate (0.0 if unknown).
        decoded_frames: how many frames were decoded to produce the clip (for cost accounting).
        source: the file (or a description of in-memory bytes).
    """

    frames: np.ndarray
    indices: np.ndarray
    start: int
    num_source_frames: int
    fps: float
    decoded_frames: int
    source: str


def _decode_linear(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    wanted: set[int],
    last: int,
    size: int | None,
    label: str,
) -> tuple[dict[int, np.ndarray], int]:
    kept: dict[int, np.ndarray] = {}
    count = 0
    try:
        for frame in container.decode(stream):
            i = count
            count += 1
            if i in wanted:
                kept[i] = _resize_crop_frame(frame.to_ndarray(format="rgb24"), size)
            if i >= last:
                break
    except av.error.FFmpegError as e:
        raise _decode_errors(label, count) from e
    return kept, count


def _decode_seek(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    wanted: set[int],
    first: int,
    last: int,
    fps: float,
    size: int | None,
) -> tuple[dict[int, np.ndarray], int] | None:
    """Seek to the key frame before ``first`` and decode to ``last``, indexing frames by timestamp.

    Returns (kept, decoded) or None when the stream's timestamps cannot be trusted (then decode linearly).
    """
    time_base = stream.time_base
    if not time_base or fps <= 0:
        return None
    t0 = stream.start_time or 0
    target = t0 + int(math.floor(first / (fps * float(time_base))))
    try:
        container.seek(target, stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        return None
    kept: dict[int, np.ndarray] = {}
    count = 0
    previous = -1
    try:
        for frame in container.decode(stream):
            count += 1
            if frame.pts is None:
                return None
            i = int(round((frame.pts - t0) * float(time_base) * fps))
            if (previous < 0 and i > first) or (previous >= 0 and i != previous + 1):
                return None  # seek overshot, or timestamps do not count frames one by one (variable rate)
            previous = i
            if i in wanted:
                kept[i] = _resize_crop_frame(frame.to_ndarray(format="rgb24"), size)
            if i >= last:
                break
    except av.error.FFmpegError:
        return None
    if len(kept) != len(wanted):
        return None
    return kept, count


def _resolve_rng(rng: np.random.Generator | None, seed: int | None) -> np.random.Generator | None:
    if rng is not None and seed is not None:
        raise ValueError("give either rng or seed, not both")
    if seed is not None:
        return np.random.default_rng(seed)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return rng


def read_clip(
    path: VideoSource,
    num_frames: int | None = None,
    *,
    window: int = 64,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
    start: int | None = None,
    size: int | None = None,
    name: str | None = None,
    seek: bool = True,
) -> VideoClip:
    """Read a clip and report where its frames came from (see :func:`read_video` for the arguments).

    Extra args:
        name: how to call the video in error messages (e.g. a dataset row) instead of its path.
        seek: allow seeking to the key frame before the first needed frame (constant-rate files with a
            known frame count); ``False`` always decodes from the first frame.
    """
    label = _describe(path, name)
    rng = _resolve_rng(rng, seed)
    size = _check_size(size)
    if num_frames is not None and (isinstance(num_frames, bool) or int(num_frames) < 1):
        raise ValueError(f"num_frames must be a positive int or None (all frames), got {num_frames!r}")
    info = read_video_info(path, name=label)
    # Keep the generator's state: if the stream turns out shorter than announced we sample again
    # from the same state, so the result depends on the true frame count only.
    state = copy.deepcopy(rng.bit_generator.state) if rng is not None else None
    clip = _read(path, label, info.num_frames, info, num_frames, window, rng, start, size, seek)
    if isinstance(clip, VideoClip):
        return clip
    # The stream ended before a needed frame: the frame count was too high.
    n = info.num_frames
    if info.count_method == "metadata":
        decoded = clip
        if decoded == 0:
            raise ValueError(f"video {label} contains no decodable frames; re-create it or leave it out")
        if decoded < n - _COUNT_SLACK:
            raise ValueError(
                f"video {label} announces {n} frames but only {decoded} could be decoded: the file is truncated "
                "or corrupt; re-encode it or leave it out"
            )
        logger.warning("%s announces %d frames but has %d; sampling from %d", label, n, decoded, decoded)
    else:
        decoded = _info._count_frames(path, label, decode=True)
        if decoded == 0:
            raise ValueError(f"video {label} contains no decodable frames; re-create it or leave it out")
        logger.debug("%s has %d packets but %d frames; sampling from %d", label, n, decoded, decoded)
    if rng is not None and state is not None:
        rng.bit_generator.state = state
    if start is not None:
        start = min(int(start), decoded - 1)
    clip = _read(path, label, decoded, info, num_frames, window, rng, start, size, False)
    if not isinstance(clip, VideoClip):
        raise _decode_errors(label, clip)
    return clip


def _read(
    path: VideoSource,
    label: str,
    n: int,
    info: VideoInfo,
    num_frames: int | None,
    window: int,
    rng: np.random.Generator | None,
    start: int | None,
    size: int | None,
    seek: bool,
) -> VideoClip | int:
    """Sample indices for ``n`` source frames and decode them; returns the decoded count if the stream ends early."""
    if num_frames is None:
        if start is not None and not 0 <= int(start) < n:
            raise ValueError(f"start={start} is outside the {n} frames of {label}; give 0 <= start < {n}")
        indices = np.arange(int(start or 0), n, dtype=np.int64)
    else:
        indices = sample_indices(n, num_frames, window, rng, start=start)
    wanted = set(int(i) for i in indices)
    first, last = min(wanted), max(wanted)
    result = None
    if seek and first >= _SEEK_MIN_FRAMES:
        with _open(path, label) as (container, stream):
            result = _decode_seek(container, stream, wanted, first, last, info.fps, size)
        if result is None:
            logger.debug("seeking in %s was unreliable; decoding from the first frame", label)
    if result is None:
        with _open(path, label) as (container, stream):
            result = _decode_linear(container, stream, wanted, last, size, label)
    kept, decoded = result
    if len(kept) != len(wanted):
        return decoded
    frames = np.stack([kept[int(i)] for i in indices])
    return VideoClip(
        frames=frames,
        indices=indices,
        start=int(indices[0]),
        num_source_frames=n,
        fps=info.fps,
        decoded_frames=decoded,
        source=label,
    )


def read_video(
    path: VideoSource,
    num_frames: int | None = None,
    *,
    window: int = 64,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
    start: int | None = None,
    size: int | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Decode a video (or a sampled clip of it) into ``(T, H, W, 3)`` uint8 RGB.

    Args:
        path: a file path, the encoded bytes of a video file, or a binary file object. mp4 (h264),
            avi (msmpeg4, mjpeg, cinepak, ...), mkv, webm (vp9), mov and mpg (mpeg2) all work.
        num_frames: ``T``; None reads every frame (from ``start`` if given; window and rng are unused).
        window: source frames the clip spans (see :func:`sample_indices`); shorter videos are looped.
        rng / seed: where the window starts at random (give one, not both). Without either (and without
            ``start``) the centre window is used, so the result is deterministic.
        start: first source frame of the window, instead of a random start.
        size: resize the short side to ``size`` and crop the centre ``size`` x ``size``; None keeps the
            original size.
        name: how to call the video in error messages (defaults to the path).

    Returns:
        ``(T, H, W, 3)`` uint8, with ``H = W = size`` when size is given.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty, corrupt, truncated, not a video or has no frames; bad arguments.

    Example:
        >>> clip = read_video("v.mp4", 16, window=64, seed=0, size=224)  # doctest: +SKIP
        >>> clip.shape
        (16, 224, 224, 3)
    """
    return read_clip(path, num_frames, window=window, rng=rng, seed=seed, start=start, size=size, name=name).frames
