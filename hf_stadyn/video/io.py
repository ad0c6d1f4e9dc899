"""Video files with PyAV: writing (atomic) and reading with bounded memory.

Frames are always ``uint8`` arrays of shape ``(T, H, W, 3)`` in RGB order.

Reading decodes only as far as the last frame it needs, keeps only the frames it needs and resizes
each one as soon as it is decoded, so a long high-resolution file costs the memory of ``T`` output
frames plus one decoded frame. When the first needed frame lies far into a file whose frame count and
rate are known, the reader seeks to the key frame before it instead of decoding from the start.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Union

import av
import cv2
import numpy as np

from .._io import atomic_path

__all__ = [
    "VideoClip",
    "VideoInfo",
    "VideoSource",
    "probe_video",
    "read_clip",
    "read_video",
    "resize_and_crop",
    "sample_indices",
    "write_video",
]

#: A video given as a file path, the encoded bytes of a file, or a binary file object.
VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

logger = logging.getLogger(__name__)

# Pixel formats we prefer when a codec supports them (first match wins).
_PREFERRED_PIX_FMTS = ("yuv420p", "yuvj420p", "rgb24")
# Codecs whose quality is set with a constant rate factor.
_CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libvpx"}


def _check_frames(frames: np.ndarray, name: str = "frames") -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (T, H, W, 3), got {frames.shape}; stack RGB frames along axis 0")
    if frames.dtype != np.uint8:
        raise ValueError(
            f"{name} must be uint8 (0-255), got {frames.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8)"
        )
    if frames.shape[0] < 1 or frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ValueError(f"{name} is empty (shape {frames.shape}); give at least one frame of at least 1x1 pixels")
    return frames


def _pick_pix_fmt(codec: av.codec.Codec) -> str:
    formats = [f.name for f in (codec.video_formats or [])]
    if not formats:
        return "yuv420p"
    if formats[0] in _PREFERRED_PIX_FMTS:  # the encoder's own first choice (e.g. yuvj420p for mjpeg)
        return formats[0]
    for fmt in _PREFERRED_PIX_FMTS:
        if fmt in formats:
            return fmt
    return formats[0]


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float = 8,
    codec: str = "libx264",
    crf: int = 18,
    *,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` (T, H, W, 3) uint8 RGB to a video file, atomically.

    The container is chosen from the file extension (``.mp4``, ``.mkv``, ``.avi``, ``.webm``, ...).
    Codecs that store chroma at half resolution (``yuv420p``, e.g. libx264) need even H and W: odd
    sizes are padded by repeating the last row/column (logged as a warning), so the file holds
    ``(T, H + H % 2, W + W % 2, 3)`` frames.

    Args:
        path: output file; its parent folders are created. Nothing is left at ``path`` if encoding fails.
        frames: ``(T, H, W, 3)`` uint8 RGB.
        fps: frame rate (> 0).
        codec: any PyAV/FFmpeg encoder name (``libx264``, ``mpeg4``, ``libvpx-vp9``, ``mjpeg``, ...).
        crf: constant rate factor for codecs that use one (libx264/libx265/libvpx); 0 is lossless for x264.
        options: extra FFmpeg encoder options, e.g. ``{"g": "16"}`` for a key frame every 16 frames.

    Returns:
        The path written.

    Example:
        >>> write_video("clip.mp4", np.zeros((16, 64, 64, 3), np.uint8), fps=8)  # doctest: +SKIP
    """
    path = Path(path)
    options_extra = options
    frames = _check_frames(frames)
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if not path.suffix:
        raise ValueError(f"cannot choose a container for {str(path)!r}: give the path an extension such as .mp4")
    try:
        codec_info = av.codec.Codec(codec, "w")
    except Exception as e:  # av.codec.codec.UnknownCodecError and friends
        raise ValueError(f"unknown video encoder {codec!r}: use e.g. 'libx264', 'mpeg4' or 'libvpx-vp9' ({e})") from e
    pix_fmt = _pick_pix_fmt(codec_info)
    if pix_fmt.endswith("420p") or pix_fmt.endswith("422p"):
        pad_h = frames.shape[1] % 2 if pix_fmt.endswith("420p") else 0
        pad_w = frames.shape[2] % 2
        if pad_h or pad_w:
            logger.warning(
                "%s needs even frame sizes with %s: padding %dx%d to %dx%d by repeating the edge (%s)",
                codec,
                pix_fmt,
                frames.shape[1],
                frames.shape[2],
                frames.shape[1] + pad_h,
                frames.shape[2] + pad_w,
                path,
            )
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    rate = Fraction(float(fps)).limit_denominator(1001)
    container_format = _format_for(path)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        options: dict[str, str] = {}
        encoder = codec_info.name  # "h264" -> "libx264", "vp9" -> "libvpx-vp9"
        if encoder in _CRF_CODECS:
            options["crf"] = str(int(crf))
            if encoder.startswith("libx26"):
                options["preset"] = "veryfast"
            if encoder.startswith("libvpx"):
                options["b"] = "0"
                options["deadline"] = "realtime"
                options["cpu-used"] = "8"
        options.update({str(k): str(v) for k, v in (options_extra or {}).items()})
        stream.options = options
        try:
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        except av.error.FFmpegError as e:
            raise ValueError(
                f"encoder {codec!r} refused {frames.shape[2]}x{frames.shape[1]} {pix_fmt} frames for {str(path)!r} "
                f"({e}); some codecs need sizes that are multiples of 4 or 16, or another container: "
                "try codec='libx264' with a .mp4 path"
            ) from e
    return path


def _format_for(path: Path) -> str:
    """FFmpeg muxer name for ``path``'s extension (the temporary file has the same extension)."""
    ext = path.suffix.lstrip(".").lower()
    guess = {
        "mp4": "mp4",
        "m4v": "mp4",
        "mov": "mov",
        "avi": "avi",
        "webm": "webm",
        "mkv": "matroska",
        "mpg": "mpeg",
        "mpeg": "mpeg",
        "ts": "mpegts",
        "gif": "gif",
    }.get(ext)
    if guess is None:
        raise ValueError(
            f"unsupported video extension {path.suffix!r} for {str(path)!r}: use .mp4, .mkv, .avi, .webm, .mov or .mpg"
        )
    return guess


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------

# Seek instead of decoding from the start when the first needed frame is at least this far in.
_SEEK_MIN_FRAMES = 48
# Metadata may over-count by a frame or two (edit lists, dropped last frame): tolerate that many.
_COUNT_SLACK = 2


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about a video's first video stream.

    Attributes:
        path: the file (or a description of in-memory bytes), as used in error messages.
        num_frames: number of frames (see ``count_method``).
        fps: average frame rate (0.0 if unknown).
        width, height: frame size in pixels.
        codec: decoder name, e.g. ``"h264"``, ``"vp9"``, ``"mpeg2video"``.
        count_method: where ``num_frames`` comes from: ``"metadata"`` (the container records it),
            ``"packets"`` (counted by demuxing, without decoding) or ``"decoded"`` (counted by decoding).
    """

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    count_method: str = "metadata"

    @property
    def frames_from_metadata(self) -> bool:
        """True when the container recorded the frame count."""
        return self.count_method == "metadata"

    @property
    def duration(self) -> float | None:
        """Length in seconds (``num_frames / fps``), or None when the rate is unknown."""
        return self.num_frames / self.fps if self.fps > 0 else None


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


def _describe(source: VideoSource, name: str | None) -> str:
    if name is not None:
        return str(name)
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<video bytes ({len(source)} B)>"
    return f"<video file object {getattr(source, 'name', type(source).__name__)}>"


def _check_source(source: VideoSource, label: str) -> None:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"video file not found: {label}; check the path")
        if not path.is_file():
            raise ValueError(f"{label} is not a file (a directory?); give the path of a video file")
        if path.stat().st_size == 0:
            raise ValueError(f"video file {label} is empty (0 bytes); re-create or remove it")
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ValueError(f"video {label} is empty (0 bytes)")
    elif not hasattr(source, "read"):
        raise ValueError(
            f"cannot read a video from {type(source).__name__}: give a file path, the file's bytes or a binary file object"
        )


@contextlib.contextmanager
def _open(source: VideoSource, label: str) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open ``source`` and yield (container, first video stream); errors name ``label``."""
    _check_source(source, label)
    if isinstance(source, (str, os.PathLike)):
        target: object = str(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        target = io.BytesIO(bytes(source))
    else:
        with contextlib.suppress(Exception):
            source.seek(0)
        target = source
    try:
        container = av.open(target, mode="r")
    except av.error.FFmpegError as e:
        raise ValueError(
            f"cannot read {label} as a video: {e.strerror or e}. The file is corrupt, truncated or not a video"
        ) from e
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise ValueError(f"{label} has no video stream (found: {', '.join(kinds)}); give a video file")
        yield container, container.streams.video[0]
    finally:
        container.close()


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


_COUNT_CACHE: OrderedDict[tuple, int] = OrderedDict()
_COUNT_CACHE_LOCK = threading.Lock()
_COUNT_CACHE_SIZE = 4096


def _cache_key(source: VideoSource) -> tuple | None:
    if isinstance(source, (str, os.PathLike)):
        st = os.stat(source)
        return (os.path.realpath(source), st.st_size, st.st_mtime_ns)
    if isinstance(source, (bytes, bytearray, memoryview)):  # e.g. a datasets column of video bytes
        return ("bytes", len(source), hashlib.blake2b(source, digest_size=16).hexdigest())
    return None


def _decode_errors(label: str, decoded: int) -> ValueError:
    return ValueError(
        f"decoding {label} failed after {decoded} frames: the file is corrupt or truncated; re-encode it or leave it out"
    )


def _count_frames(source: VideoSource, label: str, decode: bool) -> int:
    """Frames of the first video stream, by decoding (exact) or by counting demuxed packets (fast:
    one packet per frame for the codecs we meet; a read that runs short falls back to decoding).
    Cached per (file, size, modification time) or content hash."""
    key = _cache_key(source)
    if key is not None:
        key = (*key, decode)
        with _COUNT_CACHE_LOCK:
            if key in _COUNT_CACHE:
                _COUNT_CACHE.move_to_end(key)
                return _COUNT_CACHE[key]
    count = 0
    with _open(source, label) as (container, stream):
        try:
            if decode:
                for _ in container.decode(stream):
                    count += 1
            else:
                for packet in container.demux(stream):
                    count += packet.size > 0  # the demuxer ends with an empty flush packet
        except av.error.FFmpegError as e:
            raise _decode_errors(label, count) from e
    if key is not None:
        with _COUNT_CACHE_LOCK:
            _COUNT_CACHE[key] = count
            while len(_COUNT_CACHE) > _COUNT_CACHE_SIZE:
                _COUNT_CACHE.popitem(last=False)
    return count


def probe_video(path: VideoSource, *, name: str | None = None, exact: bool = False) -> VideoInfo:
    """Frame count, rate, size and codec of a video's first video stream.

    When the container does not record the frame count (webm/vp9, mkv, mpg), the frames are counted:
    by demuxing the packets without decoding them (fast even for long files), or by decoding every
    frame with ``exact=True``. Counts are cached per (file, size, modification time), or per content
    hash for bytes. :func:`read_clip` re-counts by decoding if a packet count turns out too high.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty, corrupt, truncated, not a video, or has no frames.
    """
    label = _describe(path, name)
    with _open(path, label) as (_container, stream):
        meta = int(stream.frames or 0)
        fps = _fps(stream)
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        codec = str(stream.codec_context.name)
    if meta > 0:
        num_frames, method = meta, "metadata"
    else:
        method = "decoded" if exact else "packets"
        num_frames = _count_frames(path, label, decode=exact)
        if num_frames == 0 and not exact:
            num_frames, method = _count_frames(path, label, decode=True), "decoded"
    if num_frames <= 0:
        raise ValueError(f"video {label} contains no frames; re-create it or leave it out")
    return VideoInfo(
        path=label,
        num_frames=num_frames,
        fps=fps,
        width=width,
        height=height,
        codec=codec,
        count_method=method,
    )


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


def _check_size(size: int | None) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int (the output side in pixels) or None, got {size!r}")
    return int(size)


def resize_and_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` and crop the centre ``size`` x ``size``.

    Args:
        frames: ``(T, H, W, 3)`` uint8.

    Returns:
        ``(T, size, size, 3)`` uint8. Shrinking uses area interpolation, enlarging bilinear.
    """
    frames = _check_frames(frames)
    size = _check_size(size)
    if size is None:
        raise ValueError("size must be a positive int")
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    return np.stack([_resize_crop_frame(f, size) for f in frames])


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
    info = probe_video(path, name=label)
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
        decoded = _count_frames(path, label, decode=True)
        if decoded == 0:
            raise ValueError(f"video {label} contains no decodable frames; re-create it or leave it out")
        logger.debug("%s has %d packets but %d frames; sampling from %d", label, n, decoded, decoded)
    if rng is not None:
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
