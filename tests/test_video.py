"""Video I/O: PyAV decode/encode across containers and codecs, sampling, resizing, bounded decoding, errors."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
from _media import write_audio_only

from hf_stadyn.video import read_clip, read_video, read_video_info, resize_and_crop, sample_indices, write_video

T, H, W = 24, 48, 64


def moving_pattern(t: int = T, h: int = H, w: int = W, step: int = 2) -> np.ndarray:
    """Smooth colour gradients sliding right by ``step`` px per frame: (t, h, w, 3) uint8."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = []
    for k in range(t):
        x = xx - step * k
        frames.append(
            np.stack(
                [
                    127 + 100 * np.sin(x / 7.0),
                    127 + 100 * np.cos(yy / 9.0),
                    127 + 80 * np.sin((x + yy) / 11.0),
                ],
                axis=-1,
            )
        )
    return np.clip(np.round(np.stack(frames)), 0, 255).astype(np.uint8)


# (extension, encoder, decoder name, mean-abs-error bound, frame count in the container metadata?)
CODECS = [
    ("mp4", "libx264", "h264", 5, True),
    ("avi", "msmpeg4v2", "msmpeg4v2", 10, True),
    ("avi", "msmpeg4v3", "msmpeg4", 10, True),
    ("avi", "mjpeg", "mjpeg", 8, True),
    ("avi", "cinepak", "cinepak", 8, True),
    ("mkv", "libx264", "h264", 5, False),
    ("webm", "libvpx-vp9", "vp9", 6, False),
    ("mpg", "mpeg2video", "mpeg2video", 10, False),
]


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return moving_pattern()


@pytest.fixture(scope="module")
def files(tmp_path_factory, clip) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for ext, codec, *_ in CODECS:
        out[f"{ext}-{codec}"] = write_video(root / f"clip_{codec}.{ext}", clip, fps=8, codec=codec)
    return out


@pytest.mark.parametrize("ext,codec,decoder,tol,from_meta", CODECS, ids=[f"{c[0]}-{c[1]}" for c in CODECS])
def test_each_container_and_codec_round_trips(files, clip, ext, codec, decoder, tol, from_meta):
    path = files[f"{ext}-{codec}"]
    assert path.suffix == f".{ext}" and path.exists()
    info = read_video_info(path)
    assert info.codec == decoder
    assert info.num_frames == T  # counted by decoding where the container records 0 (webm, mkv, mpg)
    assert info.frames_from_metadata is from_meta
    assert info.count_method == ("metadata" if from_meta else "packets")  # counted without decoding
    if not from_meta:
        exact = read_video_info(path, exact=True)
        assert exact.count_method == "decoded" and exact.num_frames == T
    assert (info.width, info.height) == (W, H)
    assert info.fps == pytest.approx(8.0)
    frames = read_video(path)
    assert frames.dtype == np.uint8 and frames.shape == (T, H, W, 3)
    err = np.abs(frames.astype(np.int16) - clip.astype(np.int16)).mean()
    assert err < tol, f"{codec}: decoded frames differ from the encoded ones by {err:.1f}"
    # frames come back in order: each decoded frame is closest to its own original
    dist = np.abs(frames[:, None].astype(np.int16) - clip[None].astype(np.int16)).mean(axis=(2, 3, 4))
    assert (dist.argmin(axis=1) == np.arange(T)).all()


@pytest.mark.parametrize("codec", ["mp4-libx264", "mkv-libx264", "webm-libvpx-vp9", "mpg-mpeg2video", "avi-mjpeg"])
def test_sampled_clip_equals_full_decode_at_its_indices(files, codec):
    full = read_video(files[codec])
    for seed in range(3):
        got = read_clip(files[codec], 6, window=12, seed=seed)
        assert got.frames.shape == (6, H, W, 3)
        np.testing.assert_array_equal(got.frames, full[got.indices])
        assert got.start == got.indices[0]
        # evenly spaced over the 12-frame window, both ends included (round(linspace(0, 11, 6)))
        np.testing.assert_array_equal(got.indices, got.start + np.array([0, 2, 4, 7, 9, 11]))


def test_sampling_is_seeded_and_covers_starts(files):
    path = files["mp4-libx264"]
    a = read_clip(path, 4, window=8, seed=5)
    b = read_clip(path, 4, window=8, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.frames, b.frames)
    starts = {read_clip(path, 4, window=8, seed=s).start for s in range(40)}
    assert starts <= set(range(T - 8 + 1)) and len(starts) > 8
    # without a seed: the centre window, deterministic
    assert read_clip(path, 4, window=8).start == (T - 8) // 2
    assert read_clip(path, 4, window=8, start=3).start == 3


def test_sample_indices_window_stride_and_loop():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n, t, w = int(rng.integers(1, 200)), int(rng.integers(1, 33)), int(rng.integers(1, 80))
        idx = sample_indices(n, t, w, rng)
        assert idx.shape == (t,) and idx.dtype == np.int64
        assert ((idx >= 0) & (idx < n)).all()
        start = idx[0]
        fitted = min(w, n)  # the window never exceeds the video unless looping is asked for
        offsets = np.floor(np.linspace(0, fitted - 1, t) + 0.5).astype(np.int64) if t > 1 else np.zeros(1, np.int64)
        np.testing.assert_array_equal(idx, start + offsets)
        assert start + fitted <= n  # no wrap, no jump back to frame 0
        if t > 1:
            assert idx[-1] == start + fitted - 1  # both ends of the window are read
    # the frozen / jumping cases: an 8-frame video read with the default 64-frame window
    np.testing.assert_array_equal(sample_indices(8, 8, 64), np.arange(8))
    assert (np.diff(sample_indices(32, 16, 64)) >= 0).all()
    # looping only when asked, and only for a video shorter than the clip: 0..4, 0..4
    np.testing.assert_array_equal(sample_indices(5, 10, 10, start=0, loop=True), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(sample_indices(5, 10, 10, start=0), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    np.testing.assert_array_equal(sample_indices(100, 4, 64, start=10), [10, 31, 52, 73])
    with pytest.raises(ValueError, match="start"):
        sample_indices(10, 4, 8, start=10)
    for bad in [(0, 4, 8), (10, 0, 8), (10, 4, 0)]:
        with pytest.raises(ValueError):
            sample_indices(*bad)


def test_short_video_is_not_looped_by_default(tmp_path):
    frames = moving_pattern(t=5)
    path = write_video(tmp_path / "short.mp4", frames, crf=0)
    got = read_clip(path, 8, window=16, seed=1)
    # shorter than the window: the window shrinks to the video (no loop unless asked), frames repeat in order
    np.testing.assert_array_equal(got.indices, [0, 1, 1, 2, 2, 3, 3, 4])
    full = read_video(path)
    np.testing.assert_array_equal(got.frames, full[got.indices])


def test_resize_and_crop(files, clip):
    # resize the short side then crop the centre: a marker at the centre stays at the centre
    frame = np.zeros((1, 60, 100, 3), np.uint8)
    frame[0, 25:35, 45:55] = 255
    out = resize_and_crop(frame, 30)
    assert out.shape == (1, 30, 30, 3)
    ys, xs = np.nonzero(out[0, :, :, 0] > 127)
    assert abs(ys.mean() - 14.5) < 1 and abs(xs.mean() - 14.5) < 1
    assert out[0, 0, 0, 0] == 0 and out[0, 15, 15, 0] == 255
    # upscaling works too, and reading with size= is the same operation frame by frame
    assert resize_and_crop(clip[:2], 100).shape == (2, 100, 100, 3)
    full = read_video(files["mp4-libx264"])
    np.testing.assert_array_equal(read_video(files["mp4-libx264"], size=32), resize_and_crop(full, 32))
    with pytest.raises(ValueError, match="size"):
        resize_and_crop(clip, 0)
    with pytest.raises(ValueError, match="size"):
        read_video(files["mp4-libx264"], 4, size=-3)


def test_write_video_pads_odd_sizes_and_validates(tmp_path):
    frames = moving_pattern(t=4, h=33, w=47)
    path = write_video(tmp_path / "odd.mp4", frames, crf=0)
    back = read_video(path)
    assert back.shape == (4, 34, 48, 3)
    assert np.abs(back[:, :33, :47].astype(int) - frames).mean() < 3
    np.testing.assert_array_equal(back[:, 33], back[:, 32])  # padded by repeating the edge row
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        write_video(tmp_path / "f.mp4", frames[..., 0])
    with pytest.raises(ValueError, match="fps"):
        write_video(tmp_path / "f.mp4", frames, fps=0)
    with pytest.raises(ValueError, match="encoder"):
        write_video(tmp_path / "f.mp4", frames, codec="no-such-codec")
    with pytest.raises(ValueError, match="extension"):
        write_video(tmp_path / "noext", frames)
    # an encoder that refuses the frame size: a clear error and nothing left on disk
    with pytest.raises(ValueError, match="cinepak"):
        write_video(tmp_path / "bad.avi", frames, codec="cinepak")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def test_bytes_and_file_objects(files):
    path = files["webm-libvpx-vp9"]
    data = path.read_bytes()
    expected = read_video(path, 5, window=10, seed=2, size=16)
    np.testing.assert_array_equal(read_video(data, 5, window=10, seed=2, size=16), expected)
    np.testing.assert_array_equal(read_video(io.BytesIO(data), 5, window=10, seed=2, size=16), expected)
    assert read_video_info(data).num_frames == T


def test_long_file_decodes_only_what_it_needs(tmp_path):
    n = 600
    frames = moving_pattern(t=n, h=32, w=32, step=1)
    path = write_video(tmp_path / "long.mp4", frames, fps=25, options={"g": "25"})
    linear = read_clip(path, 4, window=16, start=100, seek=False)
    assert linear.decoded_frames == 100 + 15 + 1  # stops at the last needed frame (the window's end)
    seeked = read_clip(path, 4, window=16, start=500)
    assert seeked.decoded_frames <= 25 + 16  # from the key frame before frame 500
    reference = read_video(path)
    np.testing.assert_array_equal(seeked.frames, reference[[500, 505, 510, 515]])
    np.testing.assert_array_equal(linear.frames, reference[[100, 105, 110, 115]])
    # random windows over the whole file: seeking and decoding from the start agree exactly
    for seed in range(4):
        a = read_clip(path, 8, window=64, seed=seed)
        b = read_clip(path, 8, window=64, seed=seed, seek=False)
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.frames, reference[a.indices])


def test_high_resolution_is_resized_frame_by_frame(tmp_path):
    h, w, t = 720, 1280, 20
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx // 4) % 256, (yy // 4) % 256, ((xx + yy) // 8) % 256], -1).astype(np.uint8)
    frames = np.stack([np.roll(base, 8 * k, axis=1) for k in range(t)])
    path = write_video(tmp_path / "hd.mp4", frames, fps=24, options={"preset": "ultrafast"})
    del frames, base
    frame_bytes = h * w * 3
    tracemalloc.start()
    try:
        got = read_clip(path, 8, window=16, start=2, size=32)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        whole = read_video(path)
        _, peak_whole = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.frames.shape == (8, 32, 32, 3)
    assert got.decoded_frames == 2 + 15 + 1
    assert peak < 2 * frame_bytes, f"reading 8 small frames allocated {peak / 1e6:.1f} MB"
    assert peak_whole > t * frame_bytes  # the comparison is meaningful: a whole decode is measured
    np.testing.assert_array_equal(got.frames, resize_and_crop(whole[got.indices], 32))


# ------------------------------------------------------------------------------------------------
# Bad files: each raises a clear error that names the file
# ------------------------------------------------------------------------------------------------


def _zero_frame_avi(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=8)
        s.width, s.height, s.pix_fmt = 32, 32, "yuvj420p"
        c.start_encoding()
    return path


def test_bad_files_raise_clear_errors(tmp_path, files):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(missing)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video_info(missing)

    good = files["mp4-libx264"].read_bytes()
    rng = np.random.default_rng(0)
    cases: dict[str, tuple[Path, str]] = {}

    def add(name: str, data: bytes, match: str) -> None:
        p = tmp_path / name
        p.write_bytes(data)
        cases[name] = (p, match)

    add("empty.mp4", b"", "empty")
    add("truncated.mp4", good[: len(good) // 2], "corrupt, truncated or not a video")
    add("garbage.mp4", rng.integers(0, 256, len(good), dtype=np.uint8).tobytes(), "corrupt, truncated or not a video")
    add("notes.mp4", b"this is a text file, not a video\n" * 20, "not a video")
    corrupt = bytearray(good)
    n = len(corrupt)
    corrupt[n // 4 : 3 * n // 4] = rng.integers(0, 256, 3 * n // 4 - n // 4, dtype=np.uint8).tobytes()
    add("corrupt_payload.mp4", bytes(corrupt), "corrupt")
    avi = files["avi-msmpeg4v2"].read_bytes()
    add("truncated.avi", avi[: len(avi) // 3], "truncated")
    cases["zero_frames.avi"] = (_zero_frame_avi(tmp_path / "zero_frames.avi"), "no frames")
    cases["audio.wav"] = (write_audio_only(tmp_path / "audio.wav"), "no video stream")
    cases["folder"] = (tmp_path, "not a file")

    for name, (path, match) in cases.items():
        with pytest.raises(ValueError, match=match) as info:
            read_video(path, 4, window=8, seed=0)
        assert str(path) in str(info.value), f"{name}: the error does not name the file: {info.value}"
    with pytest.raises(ValueError, match="empty"):
        read_video(b"")


def test_bad_arguments(files):
    path = files["mp4-libx264"]
    with pytest.raises(ValueError, match="either rng or seed"):
        read_video(path, 4, rng=np.random.default_rng(0), seed=0)
    with pytest.raises(ValueError, match="num_frames"):
        read_video(path, 0)
    with pytest.raises(ValueError, match="start"):
        read_video(path, 4, start=T)
    with pytest.raises(ValueError, match="rng"):
        read_video(path, 4, rng=42)


def test_a_packet_count_that_is_too_high_falls_back_to_decoding(files, monkeypatch):
    import hf_stadyn.video.info as vio  # the module that defines _count_frames (io.py only re-exports it)

    path = files["webm-libvpx-vp9"]
    full = read_video(path)
    real = vio._count_frames

    def too_many_packets(source, label, decode):
        return real(source, label, decode) + (0 if decode else 10)

    monkeypatch.setattr(vio, "_count_frames", too_many_packets)
    assert read_video_info(path).num_frames == T + 10
    got = read_clip(path, 6, window=T + 10, start=0)  # needs frames past the real end
    assert got.num_source_frames == T
    np.testing.assert_array_equal(got.frames, full[got.indices])
    # resampled from the same generator state with the true count: as if the count had been right
    monkeypatch.setattr(vio, "_count_frames", real)
    right = read_clip(path, 6, window=T + 10, start=0)
    np.testing.assert_array_equal(got.indices, right.indices)


def test_probe_video_is_a_deprecated_alias_of_read_video_info(files):
    from hf_stadyn.video import probe_video

    path = files["mkv-libx264"]
    with pytest.warns(DeprecationWarning, match="read_video_info"):
        old = probe_video(path, exact=True)
    assert old == read_video_info(path, exact=True)


def test_names_import_from_the_old_module_and_the_package():
    """The split of video/io.py keeps ``from hf_stadyn.video(.io) import X`` for every name used before,
    and both paths give the very objects of the new modules (no second copy that could drift)."""
    import hf_stadyn.video as video
    import hf_stadyn.video.io as old
    from hf_stadyn.video import _common, decode, encode, info, sampling

    new = {
        "VideoClip": decode, "read_clip": decode, "read_video": decode, "write_video": encode,
        "VideoInfo": info, "read_video_info": info, "probe_video": info, "sample_indices": sampling,
        "resize_and_crop": sampling, "VideoSource": _common, "_check_frames": _common, "_check_size": _common,
        "_count_frames": info,
    }  # fmt: skip
    for name, module in new.items():
        assert getattr(old, name) is getattr(module, name), name
        if not name.startswith("_"):
            assert getattr(video, name) is getattr(module, name), name
            assert name in video.__all__, name
