"""Real media files the tests write: folders of StaDyn-Synth motion mp4s and an audio-only file."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_motion_videos(folder: Path, n: int, *, seed: int, num_frames: int = 16, size: int = 64) -> Path:
    """``n`` StaDyn-Synth motion clips as ``folder/clip{i}.mp4`` (8 fps); the folder is created."""
    from hf_stadyn.synth import SynthConfig, SynthDataset
    from hf_stadyn.video import write_video

    folder.mkdir(parents=True, exist_ok=True)
    ds = SynthDataset("motion", num_clips=n, config=SynthConfig(num_frames=num_frames, size=size), seed=seed)
    for i in range(n):
        write_video(folder / f"clip{i}.mp4", ds[i]["frames"].numpy(), fps=8)
    return folder


def write_audio_only(path: Path) -> Path:
    """A file with one 0.1 s silent audio stream and no video stream."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
