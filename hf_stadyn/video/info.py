"""A video's container info without decoding its frames: count, rate, size, codec (:func:`read_video_info`).

Reading a video's *info* (this module) is distinct from *decoding* its frames (:mod:`.decode`). The old
name ``probe_video`` is a deprecated alias: in hf-stadyn "probing" means probing a model's features.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import av

from ._common import VideoSource, _decode_errors, _describe, _fps, _open

__all__ = ["VideoInfo", "probe_video", "read_video_info"]


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`read_video_info` learns about a video's first video stream.

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


def read_video_info(path: VideoSource, *, name: str | None = None, exact: bool = False) -> VideoInfo:
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


def probe_video(path: VideoSource, *, name: str | None = None, exact: bool = False) -> VideoInfo:
    """Deprecated alias of :func:`read_video_info` (renamed: "probing" in hf-stadyn means probing a model)."""
    warnings.warn(
        "hf_stadyn.video.probe_video is deprecated and will be removed in the next release; "
        "use hf_stadyn.video.read_video_info (same arguments)",
        DeprecationWarning,
        stacklevel=2,
    )
    return read_video_info(path, name=name, exact=exact)
