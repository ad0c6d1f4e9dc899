"""Video I/O with PyAV (decode, temporal sampling, resize/crop, encode) and optical flow with OpenCV.

Frames are ``uint8`` arrays of shape ``(T, H, W, 3)`` in RGB order throughout.
"""

from .flow import (
    FLOW_METHODS,
    apply_flow_jitter,
    compute_flow,
    flow_images,
    flow_to_color,
    jitter_flow_image,
    jitter_flow_images,
)
from .io import (
    VideoClip,
    VideoInfo,
    VideoSource,
    probe_video,
    read_clip,
    read_video,
    resize_and_crop,
    sample_indices,
    write_video,
)

__all__ = [
    "FLOW_METHODS",
    "VideoClip",
    "VideoInfo",
    "VideoSource",
    "apply_flow_jitter",
    "compute_flow",
    "flow_images",
    "flow_to_color",
    "jitter_flow_image",
    "jitter_flow_images",
    "probe_video",
    "read_clip",
    "read_video",
    "resize_and_crop",
    "sample_indices",
    "write_video",
]
