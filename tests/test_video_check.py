"""The cheap check of a video list (hf_stadyn.video.check_videos) and the pair datasets that run it at
construction: every bad file (an image, one frame, truncated, empty, not a video) is named with its reason,
all at once, before any clip is decoded; ``skip_bad_videos=True`` probes the rest and lists the skipped."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from _media import write_audio_only
from test_pairs import scene

from hf_stadyn.pairs import PairDataset, TwoStreamPairDataset
from hf_stadyn.video import BadVideosError, check_videos, read_video, video_problem, write_video
from hf_stadyn.video.check import NAMED_INLINE


def _faststart_mp4(path: Path, frames: np.ndarray, fps: int = 8) -> Path:
    """An mp4 with its index (moov) first, as web downloads are: cut short, its header still opens."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _make_bad(kind: str, root: Path) -> Path:
    """A real bad file of each kind (no mocks: files written by OpenCV, PyAV and hf_stadyn's encoder)."""
    clip = scene(0, t=40, size=32)
    if kind == "png":
        cv2.imwrite(str(root / "still.png"), clip[0])
        return root / "still.png"
    if kind == "jpeg":
        cv2.imwrite(str(root / "still.jpg"), clip[0])
        return root / "still.jpg"
    if kind == "png_named_mp4":  # an image with a video's extension: the content decides
        ok, data = cv2.imencode(".png", clip[0])
        assert ok
        (root / "photo.mp4").write_bytes(data.tobytes())
        return root / "photo.mp4"
    if kind == "one_frame":
        return write_video(root / "one_frame.mp4", clip[:1], fps=8)
    if kind == "truncated":  # half of a real file (its index is at the end: the file does not open)
        data = write_video(root / "whole.mp4", clip, fps=8).read_bytes()
        (root / "whole.mp4").unlink()
        (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
        return root / "truncated.mp4"
    if kind == "truncated_faststart":  # index first: opens and decodes its first frames, its end is gone
        data = _faststart_mp4(root / "fs.mp4", scene(1, t=120, size=32)).read_bytes()
        (root / "fs.mp4").unlink()
        (root / "cut_download.mp4").write_bytes(data[: len(data) // 2])
        return root / "cut_download.mp4"
    if kind == "zero_bytes":
        (root / "empty.mp4").write_bytes(b"")
        return root / "empty.mp4"
    if kind == "text":
        (root / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
        return root / "notes.mp4"
    if kind == "audio_only":
        return write_audio_only(root / "sound.mkv")
    if kind == "folder":
        (root / "clips.mp4").mkdir()
        return root / "clips.mp4"
    raise AssertionError(kind)


# (kind, the reason check_videos gives, as a regex)
BAD = [
    ("png", r"^an image, not a video$"),
    ("jpeg", r"^an image, not a video$"),
    ("png_named_mp4", r"^an image, not a video$"),
    ("one_frame", r"^1 decodable frame, need 2$"),
    ("truncated", r"^cannot be opened: .*\(corrupt, truncated or not a video\)$"),
    ("truncated_faststart", r"^truncated: it announces 120 frames but its end is missing$"),
    ("zero_bytes", r"^an empty file \(0 bytes\)$"),
    ("text", r"^cannot be opened: .*\(corrupt, truncated or not a video\)$"),
    ("audio_only", r"^no video stream \(found: audio\)$"),
    ("folder", r"^not a file \(a folder\?\)$"),
]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("good")
    return [
        write_video(root / "a.mp4", scene(2, t=20, size=32), fps=8),
        write_video(root / "b.webm", scene(3, t=12, size=32), fps=8, codec="libvpx-vp9"),
        _faststart_mp4(root / "c.mp4", scene(4, t=30, size=32)),
    ]


def test_good_videos_pass(good):
    check = check_videos(good)
    assert check.ok and check.good == good and check.bad == [] and check.good_indices == [0, 1, 2]
    assert check.decoded_frames == 2 * len(good)


@pytest.mark.parametrize("kind,reason", BAD, ids=[k for k, _ in BAD])
def test_each_bad_file_is_named_with_its_reason(tmp_path, good, kind, reason):
    bad = _make_bad(kind, tmp_path)
    check = check_videos([good[0], bad, good[1]])
    assert check.good == [good[0], good[1]] and check.bad_indices == [1]
    [(name, why)] = check.bad
    assert name == str(bad)
    assert re.match(reason, why), why
    if bad.is_file() and bad.stat().st_size:  # the same answer for the file's bytes (a datasets column)
        assert video_problem(bad.read_bytes()) == why
    # the pair dataset refuses it at construction, naming the file and the reason in one line
    with pytest.raises(ValueError) as info:
        PairDataset([str(good[0]), str(bad)], num_frames=4, size=16)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("1 of 2 videos cannot be probed: ")
    assert f"{bad} ({why})" in msg and "skip_bad_videos=True (--skip_bad_videos)" in msg
    assert str(good[0]) not in msg


def test_a_folder_with_bad_files_is_refused_listing_every_one_or_skips_them(tmp_path, good, caplog):
    """Every bad file is counted in one error (not the first one met when a pair samples it); with
    skip_bad_videos the good files are probed and the skipped ones are listed with their reasons."""
    root = tmp_path / "mixed"
    root.mkdir()
    for k, p in enumerate(good):
        (root / f"good{k}{p.suffix}").write_bytes(p.read_bytes())
    kinds = ["one_frame", "truncated", "truncated_faststart", "zero_bytes", "text", "png_named_mp4"]
    bad = sorted(str(_make_bad(kind, root)) for kind in kinds)
    _make_bad("png", root)  # a .png is no video file: a folder listing leaves it out
    n = len(good) + len(bad)
    with pytest.raises(BadVideosError) as info:
        PairDataset(root, num_frames=4, size=16, window=8)
    err = info.value
    assert isinstance(err, ValueError) and err.total == n
    assert [b["path"] for b in err.bad] == bad and all(b["reason"] for b in err.bad)
    msg = str(err)
    assert msg.startswith(f"{len(bad)} of {n} videos cannot be probed: ")
    assert all(p in msg for p in bad[:NAMED_INLINE]) and f"and {len(bad) - NAMED_INLINE} more" in msg

    with caplog.at_level(logging.WARNING):
        ds = PairDataset(root, num_frames=4, size=16, window=8, seed=0, skip_bad_videos=True)
    warned = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(f"skipping {len(bad)} of {n} videos that cannot be probed")
    assert ds.skipped_videos == err.bad
    assert len(ds) == len(good) and ds.videos.count == len(good)
    seen = {ds[i]["video"] for i in range(len(ds))}
    assert seen == {str(root / f"good{k}{p.suffix}") for k, p in enumerate(good)}
    assert PairDataset(good, num_frames=4, size=16).skipped_videos == []


def test_every_video_bad_is_refused_even_when_skipping(tmp_path):
    bad = [str(_make_bad("png", tmp_path)), str(_make_bad("one_frame", tmp_path))]
    with pytest.raises(ValueError, match="^2 of 2 videos cannot be probed: .*none is left to probe"):
        PairDataset(bad, num_frames=4, skip_bad_videos=True)


def test_a_folder_without_videos_names_the_folder_and_the_extensions(tmp_path):
    _make_bad("png", tmp_path)
    _make_bad("jpeg", tmp_path)
    with pytest.raises(ValueError) as info:
        PairDataset(tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"no video files found in {tmp_path} (it holds 2 other file(s), e.g. still.jpg)")
    assert ".mp4" in msg and ".webm" in msg and "\n" not in msg


def test_in_memory_clips_need_two_frames():
    clips = [scene(0, t=6, size=16), scene(1, t=1, size=16), scene(2, t=5, size=16)]
    with pytest.raises(ValueError, match=r"^1 of 3 videos cannot be probed: <clip 1> \(1 frame, need 2\)"):
        PairDataset(clips, num_frames=4)
    ds = PairDataset(clips, num_frames=4, skip_bad_videos=True)
    assert ds.skipped_videos == [{"path": "<clip 1>", "reason": "1 frame, need 2"}] and len(ds) == 2
    made = PairDataset(lambda j: clips[j], num_frames=4, num_videos=3, num_pairs=3)  # made on demand
    made[0]
    with pytest.raises(ValueError, match=r"<clip 1> has 1 frame\(s\), need 2"):
        made[1]


def test_a_datasets_column_of_bytes_is_checked_row_by_row(tmp_path, good):
    import datasets

    png, one = _make_bad("png", tmp_path), _make_bad("one_frame", tmp_path)
    rows = [{"path": "a.mp4", "bytes": good[0].read_bytes()}, {"path": "still.png", "bytes": png.read_bytes()}]
    rows.append({"path": "one.mp4", "bytes": one.read_bytes()})
    ds = datasets.Dataset.from_dict({"video": rows, "label": [0, 1, 0]})
    with pytest.raises(ValueError) as info:
        PairDataset(ds, num_frames=4, size=16)
    assert "2 of 3 videos" in str(info.value)
    assert "video[1] (still.png) (an image, not a video)" in str(info.value)
    assert "video[2] (one.mp4) (1 decodable frame, need 2)" in str(info.value)
    pairs = PairDataset(ds, num_frames=4, size=16, skip_bad_videos=True)
    assert len(pairs) == 1 and pairs[0]["video"] == "video[0] (a.mp4)"
    assert [s["path"] for s in pairs.skipped_videos] == ["video[1] (still.png)", "video[2] (one.mp4)"]


def test_two_stream_pairs_refuse_and_skip_alike(tmp_path, good):
    bad = [str(_make_bad("jpeg", tmp_path)), str(_make_bad("truncated_faststart", tmp_path))]
    videos = [str(good[0]), *bad]
    with pytest.raises(ValueError, match=r"^2 of 3 videos cannot be probed: .*still\.jpg \(an image, not a video\)"):
        TwoStreamPairDataset(videos, size=16)
    ds = TwoStreamPairDataset(videos, size=16, skip_bad_videos=True)
    assert [s["path"] for s in ds.skipped_videos] == bad
    assert len(ds) == 20 and ds[19]["video"] == str(good[0])


def test_the_check_decodes_two_frames_of_a_long_video_not_all(tmp_path):
    """The bug this guards against: checking by reading the frame count or the whole clip (as the
    pairs' first read does) costs a full decode per file; for thousands of files that is hours."""
    long = write_video(tmp_path / "long.mp4", scene(5, t=600, size=96), fps=25)
    check = check_videos([long])
    assert check.ok and check.decoded_frames == 2  # the check's own counter of decoded frames

    def best(f, k: int = 3) -> float:
        times = []
        for _ in range(k):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return min(times)

    t_check = best(lambda: check_videos([long]))
    t_decode = best(lambda: read_video(long))
    assert t_check < 0.2 * t_decode, (t_check, t_decode)  # a ratio, measured here: typically below 0.05


def test_bad_arguments(good):
    with pytest.raises(ValueError, match="min_frames"):
        check_videos(good, min_frames=0)
    with pytest.raises(ValueError, match="names has 1 entries for 3 videos"):
        check_videos(good, names=["x"])
    assert check_videos(good, min_frames=25).bad == [(str(good[0]), "20 decodable frames, need 25"),
                                                     (str(good[1]), "12 decodable frames, need 25")]  # fmt: skip
    assert video_problem(np.zeros((3, 4, 4, 3), np.uint8)) is None
    assert video_problem(np.zeros((1, 4, 4, 3), np.uint8)) == "1 frame, need 2"


def test_check_video_source_runs_before_any_model_and_returns_what_to_probe(tmp_path, good):
    """What ``stadyn probe`` runs before loading a model: the same refusal, or the kept videos + the skipped."""
    import datasets

    from hf_stadyn.video import check_video_source

    assert check_video_source(good) == (good, [])  # nothing bad: the source as given
    root = tmp_path / "folder"
    root.mkdir()
    (root / "a.mp4").write_bytes(good[0].read_bytes())
    one = _make_bad("one_frame", root)
    with pytest.raises(BadVideosError, match=r"^1 of 2 videos cannot be probed: .*one_frame\.mp4 \(1 decodable"):
        check_video_source(root)
    kept, skipped = check_video_source(root, skip_bad=True)
    assert kept == [str(root / "a.mp4")] and skipped == [{"path": str(one), "reason": "1 decodable frame, need 2"}]
    ds = datasets.Dataset.from_dict({"video": [str(one), str(good[0]), str(good[1])], "label": [0, 1, 2]})
    kept_ds, skipped = check_video_source(ds, skip_bad=True)
    assert kept_ds["label"] == [1, 2] and kept_ds.column_names == ["video", "label"] and len(skipped) == 1
