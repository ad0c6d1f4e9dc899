"""Video with PyAV and OpenCV: decode, container info, encode, sampling, sources, optical flow.

- :mod:`.decode`: :func:`read_video`, :func:`read_clip` (bounded-memory decoding, seeking);
- :mod:`.info`: :func:`read_video_info` (frame count, rate, size and codec without decoding);
- :mod:`.encode`: :func:`write_video` (atomic);
- :mod:`.sampling`: :func:`sample_indices`, :func:`resize_and_crop`;
- :mod:`.sources`: the one reader of video collections (folders, path lists, ``datasets`` datasets,
  arrays, callables) used by the pair datasets and the training data readers;
- :mod:`.check`: :func:`check_videos` (a cheap check of a video list before any probing);
- :mod:`.flow`: optical flow and its colour coding.

Frames are ``uint8`` arrays of shape ``(T, H, W, 3)`` in RGB order throughout.
"""

from ._common import VideoSource
from .check import BadVideosError, VideoCheck, check_videos, video_problem
from .decode import VideoClip, read_clip, read_video
from .encode import write_video
from .flow import (
    FLOW_METHODS,
    apply_flow_jitter,
    compute_flow,
    flow_images,
    flow_to_color,
    jitter_flow_image,
    jitter_flow_images,
)
from .info import VideoInfo, probe_video, read_video_info
from .sampling import resize_and_crop, sample_indices
from .sources import VIDEO_EXTENSIONS, VideoCollection, check_video_source, list_videos, load_video_dataset

__all__ = [
    "FLOW_METHODS",
    "VIDEO_EXTENSIONS",
    "BadVideosError",
    "VideoCheck",
    "VideoClip",
    "VideoCollection",
    "VideoInfo",
    "VideoSource",
    "apply_flow_jitter",
    "check_video_source",
    "check_videos",
    "compute_flow",
    "flow_images",
    "flow_to_color",
    "jitter_flow_image",
    "jitter_flow_images",
    "list_videos",
    "load_video_dataset",
    "probe_video",
    "read_clip",
    "read_video",
    "read_video_info",
    "resize_and_crop",
    "sample_indices",
    "video_problem",
    "write_video",
]
