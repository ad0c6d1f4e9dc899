"""Video I/O with PyAV (decode, temporal sampling, resize/crop, encode) and optical flow with OpenCV.

Frames are ``uint8`` arrays of shape ``(T, H, W, 3)`` in RGB order throughout.
"""

from .io import write_video

__all__ = ["write_video"]
