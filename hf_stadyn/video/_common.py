"""Helpers shared by the video modules: the source type, argument checks and opening a container.

Private to :mod:`hf_stadyn.video`; the public names live in :mod:`.decode`, :mod:`.info`, :mod:`.encode`,
:mod:`.sampling` and :mod:`.sources`.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Union

import av
import numpy as np

__all__ = ["VideoSource"]

#: A video given as a file path, the encoded bytes of a file, or a binary file object.
VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]


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


def _check_size(size: int | None) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int (the output side in pixels) or None, got {size!r}")
    return int(size)


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
            kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["no streams"]
            raise ValueError(f"{label} has no video stream (found: {', '.join(kinds)}); give a video file")
        yield container, container.streams.video[0]
    finally:
        container.close()


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _decode_errors(label: str, decoded: int) -> ValueError:
    return ValueError(
        f"decoding {label} failed after {decoded} frames: the file is corrupt or truncated; re-encode it or leave it out"
    )
