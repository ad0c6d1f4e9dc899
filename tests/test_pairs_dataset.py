"""PairDataset and TwoStreamPairDataset: sources, determinism from (seed, index), DataLoader workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_pairs import scene

from hf_stadyn.pairs import DEFAULT_STYLES, DYNAMIC, STATIC, PairDataset, TwoStreamPairDataset, list_videos, make_pair
from hf_stadyn.video import flow_images, read_video, sample_indices, write_video


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair_videos")
    (root / "sub").mkdir()
    write_video(root / "a.mp4", scene(0, t=20, size=48), fps=8)
    write_video(root / "sub" / "b.webm", scene(1, t=12, size=48), fps=8, codec="libvpx-vp9")
    write_video(root / "c.avi", scene(2, t=30, size=48), fps=8, codec="mjpeg")
    (root / "notes.txt").write_text("not a video")
    return root


def assert_items_equal(x: dict, y: dict) -> None:
    assert x.keys() == y.keys()
    for k in x:
        if isinstance(x[k], torch.Tensor):
            assert torch.equal(x[k], y[k]), k
        else:
            assert x[k] == y[k], k


def test_folder_source_items(folder):
    paths = list_videos(folder)
    assert [p.name for p in paths] == ["a.mp4", "c.avi", "b.webm"]  # sorted by path, recursive, videos only
    ds = PairDataset(folder, num_frames=6, size=32, window=12, seed=0, num_pairs=12)
    assert len(ds) == 12
    for i in range(12):
        item = ds[i]
        assert item["video"] == str(paths[i % 3]) and item["index"] == i and item["video_index"] == i % 3
        a, b = item["clip_a"], item["clip_b"]
        assert a.dtype == torch.uint8 and a.shape == (6, 32, 32, 3) and b.shape == a.shape
        assert item["factor"] in (DYNAMIC, STATIC)
        assert item["style_a"] in DEFAULT_STYLES and item["style_b"] in DEFAULT_STYLES
        perm = item["permutation"]
        if item["factor"] == STATIC:
            assert item["style_a"] == item["style_b"]
            assert torch.equal(b, a[perm]) and not torch.equal(perm, torch.arange(6))
        else:
            assert item["style_a"] != item["style_b"] and torch.equal(perm, torch.arange(6))
        # the window start is recorded: the clip is that window of the video, stylized
        n = {"a.mp4": 20, "b.webm": 12, "c.avi": 30}[paths[i % 3].name]
        assert 0 <= item["start"] <= max(n - 12, 0)


def test_items_depend_only_on_seed_and_index(folder):
    ds = PairDataset(folder, num_frames=6, size=32, window=12, seed=5, num_pairs=8)
    forward = [ds[i] for i in range(8)]
    backward = [ds[i] for i in reversed(range(8))][::-1]
    again = PairDataset(folder, num_frames=6, size=32, window=12, seed=5, num_pairs=8)
    for i in range(8):
        assert_items_equal(forward[i], backward[i])
        assert_items_equal(forward[i], again[i])
    assert_items_equal(ds[-1], forward[-1])
    other = PairDataset(folder, num_frames=6, size=32, window=12, seed=6, num_pairs=8)
    assert any(not torch.equal(other[i]["clip_a"], forward[i]["clip_a"]) for i in range(8))
    with pytest.raises(IndexError):
        ds[8]


def test_dataloader_workers_reproduce_the_sequential_run(folder):
    ds = PairDataset(folder, num_frames=4, size=32, window=8, seed=1, num_pairs=10)
    expected = [ds[i] for i in range(10)]
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    got = [batch for batch in loader]
    for i in range(10):
        batch, j = got[i // 3], i % 3
        assert torch.equal(batch["clip_a"][j], expected[i]["clip_a"])
        assert torch.equal(batch["clip_b"][j], expected[i]["clip_b"])
        assert int(batch["factor"][j]) == expected[i]["factor"] and batch["video"][j] == expected[i]["video"]


def test_list_of_paths_and_hf_dataset_sources_agree(folder):
    import datasets

    paths = [str(p) for p in list_videos(folder)]
    kw = dict(num_frames=4, size=24, window=8, seed=3, num_pairs=6)
    by_list = PairDataset(paths, **kw)
    ds_paths = datasets.Dataset.from_dict({"clip": paths})
    by_hf = PairDataset(ds_paths, video_column="clip", **kw)
    ds_video = datasets.Dataset.from_dict({"video": paths}).cast_column("video", datasets.Video())
    by_video_feature = PairDataset(ds_video, **kw)  # read with decode=False: no torchcodec needed
    ds_bytes = datasets.Dataset.from_dict(
        {"video": [{"bytes": Path(p).read_bytes(), "path": None} for p in paths]},
        features=datasets.Features({"video": datasets.Video(decode=False)}),
    )
    by_bytes = PairDataset(ds_bytes, **kw)
    for i in range(6):
        ref = by_list[i]
        for other in (by_hf, by_video_feature, by_bytes):
            item = other[i]
            assert torch.equal(item["clip_a"], ref["clip_a"]) and torch.equal(item["clip_b"], ref["clip_b"])
            assert item["start"] == ref["start"]
        assert by_hf[i]["video"] == ref["video"]
        assert by_bytes[i]["video"].startswith("video[")
    with pytest.raises(ValueError, match="no column 'clip'"):
        PairDataset(ds_video, video_column="clip", **kw)


def test_in_memory_sources_and_factor_balance():
    clips = [scene(k, t=10, size=24) for k in range(3)]
    ds = PairDataset(clips, num_frames=4, size=None, window=8, seed=0, num_pairs=400)
    factors = np.array([ds[i]["factor"] for i in range(400)])
    assert 0.42 < factors.mean() < 0.58  # 50/50 (binomial sd 0.025)
    # item i is exactly the documented recipe run on rng = default_rng([seed, i])
    for i in (7, 8):
        item = ds[i]
        rng = np.random.default_rng([0, i])
        factor = STATIC if rng.random() < 0.5 else DYNAMIC
        idx = sample_indices(10, 4, 8, rng)
        pair = make_pair(clips[i % 3][idx], factor, rng)
        assert item["factor"] == factor and item["start"] == idx[0] and item["video"] == f"<clip {i % 3}>"
        assert np.array_equal(item["clip_a"].numpy(), pair.clip_a) and np.array_equal(
            item["clip_b"].numpy(), pair.clip_b
        )

    made = []

    def generate(j: int) -> np.ndarray:
        made.append(j)
        return clips[j]

    by_callable = PairDataset(generate, num_frames=4, size=16, window=8, seed=0, num_pairs=6, num_videos=3)
    by_list = PairDataset(clips, num_frames=4, size=16, window=8, seed=0, num_pairs=6)
    for i in range(6):
        assert_items_equal(by_callable[i], by_list[i])
    assert sorted(set(made)) == [0, 1, 2]
    # resize applies to arrays exactly as to decoded video
    one = PairDataset([clips[0]], num_frames=2, size=16, window=2, seed=0, static_fraction=1.0, styles=["palette"])
    assert one[0]["clip_a"].shape == (2, 16, 16, 3)
    assert all(
        PairDataset(clips, num_frames=4, seed=1, num_pairs=20, static_fraction=1.0)[i]["factor"] == STATIC
        for i in range(20)
    )
    assert all(
        PairDataset(clips, num_frames=4, seed=1, num_pairs=20, static_fraction=0.0)[i]["factor"] == DYNAMIC
        for i in range(20)
    )


def test_pathway_items():
    clips = [scene(k, t=16, size=24) for k in range(2)]
    ds = PairDataset(clips, size=None, window=16, seed=0, num_pairs=6, pathways=(4, 16))
    for i in range(6):
        item = ds[i]
        slow, fast = item["clip_a"]
        assert slow.shape[0] == 4 and fast.shape[0] == 16
        assert torch.equal(slow, fast[::4])
        if item["factor"] == STATIC:
            ps, pf = item["permutation"]
            assert torch.equal(item["clip_b"][0], slow[ps]) and torch.equal(item["clip_b"][1], fast[pf])


def test_bad_arguments(folder, tmp_path):
    clips = [scene(0, t=6, size=16)]
    with pytest.raises(FileNotFoundError, match="not found"):
        PairDataset([str(folder / "a.mp4"), str(folder / "zzz.mp4")])
    with pytest.raises(FileNotFoundError):
        PairDataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="no video files"):
        PairDataset(tmp_path)
    with pytest.raises(ValueError, match="num_frames"):
        PairDataset(clips, num_frames=1)
    with pytest.raises(ValueError, match="seed"):
        PairDataset(clips, seed=-1)
    with pytest.raises(ValueError, match="static_fraction"):
        PairDataset(clips, static_fraction=1.5)
    with pytest.raises(ValueError, match="two styles"):
        PairDataset(clips, styles=["palette"])
    with pytest.raises(ValueError, match="num_videos"):
        PairDataset(lambda j: clips[0], num_pairs=3)
    with pytest.raises(ValueError, match="mix"):
        PairDataset([clips[0], str(folder / "a.mp4")])
    with pytest.raises(ValueError, match="wrap it in a list"):
        PairDataset(clips[0])
    with pytest.raises(ValueError, match="uint8"):
        PairDataset([clips[0].astype(np.float32)])
    # a bad file is refused with its name at construction, before any item is read
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="bad.mp4 \\(cannot be opened"):
        PairDataset([str(bad)], num_frames=2)


def test_two_stream_dataset(folder):
    ds = TwoStreamPairDataset(folder, size=32, seed=0)
    assert len(ds) == 20 + 30 + 12
    assert ds.locate(0) == (0, 0) and ds.locate(20) == (1, 0) and ds.locate(61) == (2, 11)
    frames = read_video(folder / "c.avi", size=32)
    flows = flow_images(frames)
    statics = 0
    for i in range(20, 50, 3):
        item = ds[i]
        t = i - 20
        assert item["video"].endswith("c.avi") and item["frame"] == t
        assert item["video_index"] == 1  # every frame of the sequence c.avi: one resampling unit
        for key in ("rgb_a", "flow_a", "rgb_b", "flow_b"):
            assert item[key].dtype == torch.uint8 and item[key].shape == (32, 32, 3)
        assert np.array_equal(item["flow_a"].numpy(), flows[t])  # flow of the original frames
        if item["factor"] == STATIC:
            statics += 1
            assert torch.equal(item["rgb_a"], item["rgb_b"]) and not torch.equal(item["flow_a"], item["flow_b"])
            # docs/method.md §1.2: hue shift ~ U(-h, h), h <= 0.5; saturation factor ~ U(1 - s, 1 + s), s <= 1
            assert -0.5 <= item["hue_shift"] <= 0.5 and 0.0 <= item["saturation_scale"] <= 2.0
        else:
            assert torch.equal(item["flow_a"], item["flow_b"]) and not torch.equal(item["rgb_a"], item["rgb_b"])
            assert (item["hue_shift"], item["saturation_scale"]) == (0.0, 1.0)
    assert 0 < statics < 10
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)
    batches = list(loader)
    fresh = TwoStreamPairDataset(folder, size=32, seed=0)
    for i in (0, 19, 33, 61):
        b, j = batches[i // 8], i % 8
        ref = fresh[i]
        for key in ("rgb_a", "flow_a", "rgb_b", "flow_b"):
            assert torch.equal(b[key][j], ref[key])

    clips = [scene(k, t=5, size=24) for k in range(2)]
    mem = TwoStreamPairDataset(clips, seed=1)
    gen = TwoStreamPairDataset(lambda j: clips[j], seed=1, num_videos=2, frames_per_video=5)
    assert len(mem) == len(gen) == 10
    for i in range(10):
        assert_items_equal(mem[i], gen[i])
    with pytest.raises(ValueError, match="frames_per_video"):
        TwoStreamPairDataset(lambda j: clips[j], num_videos=2)
    with pytest.raises(ValueError, match="flow_method"):
        TwoStreamPairDataset(clips, flow_method="raft")
