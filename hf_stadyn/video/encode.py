"""Encoding frames to a video file with PyAV, atomically (:func:`write_video`)."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .._io import atomic_path
from ._common import _check_frames

__all__ = ["write_video"]

logger = logging.getLogger(__name__)

# Pixel formats we prefer when a codec supports them (first match wins).
_PREFERRED_PIX_FMTS = ("yuv420p", "yuvj420p", "rgb24")
# Codecs whose quality is set with a constant rate factor.
_CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libvpx"}


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
        encoder_options: dict[str, str] = {}
        encoder = codec_info.name  # "h264" -> "libx264", "vp9" -> "libvpx-vp9"
        if encoder in _CRF_CODECS:
            encoder_options["crf"] = str(int(crf))
            if encoder.startswith("libx26"):
                encoder_options["preset"] = "veryfast"
            if encoder.startswith("libvpx"):
                encoder_options["b"] = "0"
                encoder_options["deadline"] = "realtime"
                encoder_options["cpu-used"] = "8"
        encoder_options.update({str(k): str(v) for k, v in (options or {}).items()})
        stream.options = encoder_options
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
