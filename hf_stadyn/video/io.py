"""Compatibility module: the video I/O that used to live here is split along its jobs.

- :mod:`hf_stadyn.video.decode`: :func:`read_video`, :func:`read_clip`, :class:`VideoClip` (decoding, seeking);
- :mod:`hf_stadyn.video.info`: :func:`read_video_info`, :class:`VideoInfo` (container info, no decoding);
- :mod:`hf_stadyn.video.encode`: :func:`write_video` (atomic encoding);
- :mod:`hf_stadyn.video.sampling`: :func:`sample_indices`, :func:`resize_and_crop`;
- :mod:`hf_stadyn.video.sources`: folders, path lists and ``datasets`` datasets of videos.

``from hf_stadyn.video.io import X`` keeps working for every name it exported; new code imports from
:mod:`hf_stadyn.video` or the modules above. To replace a private helper in tests, patch it in the module
that defines it (e.g. ``hf_stadyn.video.info._count_frames``), not here.
"""

from __future__ import annotations

from ._common import VideoSource, _check_frames, _check_size, _describe, _open
from .decode import VideoClip, read_clip, read_video
from .encode import write_video
from .info import VideoInfo, _count_frames, probe_video, read_video_info
from .sampling import _resize_crop_frame, resize_and_crop, sample_indices

__all__ = [
    "VideoClip",
    "VideoInfo",
    "VideoSource",
    "probe_video",
    "read_clip",
    "read_video",
    "read_video_info",
    "resize_and_crop",
    "sample_indices",
    "write_video",
]

# Private helpers other modules imported from here before the split (kept importable, not public).
_PRIVATE = (_check_frames, _check_size, _count_frames, _describe, _open, _resize_crop_frame)
