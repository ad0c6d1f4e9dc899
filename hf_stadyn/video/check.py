"""A cheap check of a video list before any probing: every video opens and has enough decodable frames.

:func:`check_videos` opens every file (or bytes) with PyAV and decodes at most ``min_frames`` frames of
it, so thousands of files are checked in seconds: it never decodes a whole video. It refuses

- files that do not exist, are folders, are empty or cannot be read;
- still images (PNG, JPEG, ...: PyAV opens them as one-frame streams), "an image, not a video";
- files with no video stream (audio only, ...);
- files that cannot be opened or decoded (corrupt, truncated, not a video);
- videos with fewer than ``min_frames`` decodable frames (a static pair shuffles frames: at least 2,
  docs/method.md §1.1);
- mp4/mov files whose end is missing (their index announces frames past the end of the file: a cut
  download), found by seeking to the last key frame and reading its packets without decoding them.

The pair datasets (:class:`~hf_stadyn.pairs.PairDataset`, :class:`~hf_stadyn.pairs.TwoStreamPairDataset`)
run it at construction and refuse every bad video at once (:class:`BadVideosError`), or skip them with
``skip_bad_videos=True``.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from tqdm.auto import tqdm

__all__ = ["BadVideosError", "VideoCheck", "bad_videos_message", "check_videos", "video_problem"]

logger = logging.getLogger(__name__)

#: How many bad videos an error message names inline (the rest are counted; all are in ``.bad``).
NAMED_INLINE = 5

# Image demuxers: "image2" (a file named .png/.jpg/...), "image2pipe" and every "<codec>_pipe" demuxer
# (png_pipe, jpeg_pipe, webp_pipe, bmp_pipe, tiff_pipe, ...: the formats FFmpeg detects from an image's bytes).
_IMAGE_FORMATS = frozenset({"image2", "image2pipe"})

# Frames an mp4 may miss at its end before it counts as cut short (the decoder's slack, decode._COUNT_SLACK).
_TAIL_SLACK = 2


def _is_image_format(name: str) -> bool:
    return name in _IMAGE_FORMATS or name.endswith("_pipe")


class BadVideosError(ValueError):
    """Some videos of a collection cannot be probed; the message names the first few and counts them all.

    Attributes:
        bad: every bad video as ``{"path": name, "reason": one-line reason}``, in collection order.
        total: how many videos were checked.
    """

    def __init__(self, message: str, bad: Sequence[dict[str, str]], total: int) -> None:
        super().__init__(message)
        self.bad = [dict(b) for b in bad]
        self.total = int(total)


@dataclass
class VideoCheck:
    """What :func:`check_videos` found.

    Attributes:
        good: the sources that pass, in the order given.
        bad: ``(name, reason)`` of each source that fails, in the order given; ``reason`` is one line,
            e.g. ``"an image, not a video"`` or ``"1 decodable frame, need 2"``.
        good_indices, bad_indices: positions of the good / bad sources in the list given.
        decoded_frames: frames decoded by the whole check (at most ``min_frames`` per video; the
            cost of the check, not of probing).
        min_frames: the fewest decodable frames a video needed.
    """

    good: list[Any] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    good_indices: list[int] = field(default_factory=list)
    bad_indices: list[int] = field(default_factory=list)
    decoded_frames: int = 0
    min_frames: int = 2

    @property
    def ok(self) -> bool:
        """True when every video passed."""
        return not self.bad

    @property
    def total(self) -> int:
        """How many videos were checked."""
        return len(self.good) + len(self.bad)

    @property
    def skipped(self) -> list[dict[str, str]]:
        """The bad videos as ``[{"path": name, "reason": reason}]`` (what a report records)."""
        return [{"path": name, "reason": reason} for name, reason in self.bad]

    def message(self, what: str = "videos") -> str:
        """The one-line error for the bad videos (see :func:`bad_videos_message`)."""
        return bad_videos_message(self.bad, self.total, what=what)

    def raise_if_bad(self, what: str = "videos") -> None:
        """Raise :class:`BadVideosError` (a ``ValueError``) naming the bad videos, if there are any."""
        if self.bad:
            raise BadVideosError(self.message(what), self.skipped, self.total)


def bad_videos_message(bad: Sequence[tuple[str, str]], total: int, *, what: str = "videos") -> str:
    """One line: ``"3 of 120 videos cannot be probed: a.png (an image, not a video), ...; fix or remove
    them, or pass skip_bad_videos=True (--skip_bad_videos)"``; the first :data:`NAMED_INLINE` are named."""
    named = ", ".join(f"{name} ({reason})" for name, reason in bad[:NAMED_INLINE])
    more = f" and {len(bad) - NAMED_INLINE} more" if len(bad) > NAMED_INLINE else ""
    return (
        f"{len(bad)} of {total} {what} cannot be probed: {named}{more}; fix or remove them, "
        "or pass skip_bad_videos=True (--skip_bad_videos)"
    )


def _too_few(n: int, need: int, unit: str = "decodable frame") -> str:
    if n == 0:
        return f"no {unit}s, need {need}"
    return f"{n} {unit}{'s' if n != 1 else ''}, need {need}"


def _one_line(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())


def _tail_problem(container: Any, stream: Any) -> str | None:
    """For an mp4/mov file: seek to the last key frame and read (without decoding) the packets up to the
    end its index announces. A file cut short reads no packet there, or stops well before the end."""
    if not stream.frames or not stream.duration or not stream.time_base:
        return None
    start = stream.start_time or 0
    end = start + int(stream.duration)
    step = int(stream.duration) / int(stream.frames)  # one frame, in time-base units
    try:
        container.seek(end, stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        return None  # cannot seek: nothing to conclude
    last_end = None  # where the last packet read ends (pts + duration): exactly ``end`` for a whole file
    try:
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                packet_end = packet.pts + (packet.duration or step)
                last_end = packet_end if last_end is None else max(last_end, packet_end)
    except av.error.FFmpegError as e:
        return f"truncated or corrupt near its end ({_one_line(e)})"
    # More than _TAIL_SLACK frames missing: cut short (the decoder tolerates that many, see decode.py).
    if last_end is None or last_end < end - _TAIL_SLACK * step:
        return f"truncated: it announces {stream.frames} frames but its end is missing"
    return None


def _problem(source: Any, min_frames: int) -> tuple[str | None, int]:
    """(reason or None, frames decoded) for one source: a path, bytes, or a ``(T, H, W, 3)`` array."""
    if isinstance(source, np.ndarray):
        t = int(source.shape[0]) if source.ndim == 4 else 0
        return (None if t >= min_frames else _too_few(t, min_frames, "frame")), 0
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            return "no such file", 0
        if not path.is_file():
            return "not a file (a folder?)", 0
        if path.stat().st_size == 0:
            return "an empty file (0 bytes)", 0
        if not os.access(path, os.R_OK):
            return "not readable (permission denied)", 0
        target: Any = str(path)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            return "empty (0 bytes)", 0
        target = io.BytesIO(bytes(source))
    else:
        return f"not a video file path or bytes ({type(source).__name__})", 0
    try:
        container = av.open(target, mode="r")
    except (av.error.FFmpegError, OSError) as e:
        return f"cannot be opened: {_one_line(e)} (corrupt, truncated or not a video)", 0
    decoded = 0
    try:
        fmt = str(container.format.name)
        if _is_image_format(fmt):
            return "an image, not a video", 0
        if not container.streams.video:
            kinds = sorted({str(s.type) for s in container.streams}) or ["no streams"]
            return f"no video stream (found: {', '.join(kinds)})", 0
        stream = container.streams.video[0]
        try:
            for _frame in container.decode(stream):
                decoded += 1
                if decoded >= min_frames:
                    break
        except av.error.FFmpegError as e:
            return f"cannot be decoded after {decoded} frame(s): {_one_line(e)}", decoded
        if decoded < min_frames:
            return _too_few(decoded, min_frames), decoded
        if "mp4" in fmt.split(","):
            return _tail_problem(container, stream), decoded
        return None, decoded
    finally:
        container.close()


def video_problem(source: Any, *, min_frames: int = 2) -> str | None:
    """Why ``source`` cannot be probed (one line), or None when it opens and has ``min_frames`` decodable
    frames. ``source``: a file path, the file's bytes, or a ``(T, H, W, 3)`` array. Decodes at most
    ``min_frames`` frames."""
    return _problem(source, _check_min_frames(min_frames))[0]


def _check_min_frames(min_frames: int) -> int:
    if isinstance(min_frames, bool) or not isinstance(min_frames, (int, np.integer)) or min_frames < 1:
        raise ValueError(f"min_frames must be a positive int, got {min_frames!r}")
    return int(min_frames)


def check_videos(
    paths: Sequence[Any],
    min_frames: int = 2,
    *,
    names: Sequence[str] | None = None,
    progress: bool = False,
) -> VideoCheck:
    """Check a list of videos cheaply before any probing (container header + the first ``min_frames``
    frames of each; no video is decoded whole).

    Args:
        paths: ``(N,)`` file paths, file bytes (e.g. a ``datasets`` video column) or ``(T, H, W, 3)``
            arrays.
        min_frames: the fewest decodable frames a video needs (2: a static pair shuffles frames).
        names: how to call each source in reasons and messages (default: the path, or ``"<video j>"``).
        progress: show a progress bar.

    Returns:
        :class:`VideoCheck` with the good sources and ``(name, reason)`` of the bad ones; call
        :meth:`VideoCheck.raise_if_bad` to refuse them all in one message.

    Example:
        >>> check = check_videos(["a.mp4", "still.png"])  # doctest: +SKIP
        >>> check.bad
        [('still.png', 'an image, not a video')]
    """
    min_frames = _check_min_frames(min_frames)
    items = list(paths)
    if names is not None and len(names) != len(items):
        raise ValueError(f"names has {len(names)} entries for {len(items)} videos; give one name per video")
    out = VideoCheck(min_frames=min_frames)
    for j, source in enumerate(tqdm(items, desc="checking videos", unit="video", disable=not progress)):
        if names is not None:
            name = str(names[j])
        elif isinstance(source, (str, os.PathLike)):
            name = str(source)
        else:
            name = f"<video {j}>"
        reason, decoded = _problem(source, min_frames)
        out.decoded_frames += decoded
        if reason is None:
            out.good.append(source)
            out.good_indices.append(j)
        else:
            logger.debug("video %s cannot be probed: %s", name, reason)
            out.bad.append((name, reason))
            out.bad_indices.append(j)
    return out
