"""hf_stadyn.video.sources: one reader of video collections for the pair datasets and the training readers."""

from __future__ import annotations

import numpy as np
import pytest
from test_pairs import scene

from hf_stadyn.pairs import PairDataset, TwoStreamPairDataset
from hf_stadyn.synth import SynthConfig, generate
from hf_stadyn.training.classification import hf_video_datasets, video_folder_datasets
from hf_stadyn.video import VIDEO_EXTENSIONS, list_videos, load_video_dataset, read_video, write_video
from hf_stadyn.video.sources import VideoCollection, load_dataset_folder, load_local_dataset, resolve_video


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    """``root/<class>/`` folders with an mp4, an MPEG-TS (.ts) and an mkv file, and a file that is no video."""
    root = tmp_path_factory.mktemp("classes")
    for k, name in enumerate(["left", "right"]):
        (root / name).mkdir()
        write_video(root / name / "a.mp4", scene(3 * k, t=10, size=32), fps=8)
        write_video(root / name / "b.ts", scene(3 * k + 1, t=10, size=32), fps=8)
        write_video(root / name / "C.MKV", scene(3 * k + 2, t=10, size=32), fps=8)
        (root / name / "notes.txt").write_text("not a video")
    return root


def test_a_folder_lists_the_same_files_through_pairs_and_the_classification_readers(classes):
    """The bug this guards against: the two readers kept their own extension lists, and the training
    reader missed ``.ts`` files that PairDataset read (any extension missing from one list fails here)."""
    pairs = PairDataset(classes, num_frames=4, size=16, window=8)
    train, evals, names = video_folder_datasets(classes, num_frames=4, size=16, eval_root=classes)
    assert names == ["left", "right"]
    expected = [str(classes / c / f) for c in names for f in ("C.MKV", "a.mp4", "b.ts")]  # sorted, case kept
    assert pairs.videos.source == expected
    assert [p for p, _ in train.videos] == expected == [p for p, _ in evals["eval"].videos]
    assert [lbl for _, lbl in train.videos] == [0, 0, 0, 1, 1, 1]
    assert [str(p) for p in list_videos(classes)] == expected
    assert list_videos(classes / "left", recursive=False) == [classes / "left" / f for f in ("C.MKV", "a.mp4", "b.ts")]
    assert list_videos(classes, recursive=False, allow_empty=True) == []  # the class folders are not files
    with pytest.raises(ValueError, match="no video files"):
        list_videos(classes, recursive=False)
    # the .ts file decodes to what was written (it is not only listed)
    ts = read_video(classes / "left" / "b.ts")
    assert ts.shape == (10, 32, 32, 3)
    assert np.abs(ts.astype(int) - scene(1, t=10, size=32).astype(int)).mean() < 12


def test_one_extension_list():
    import hf_stadyn.pairs as pairs
    import hf_stadyn.pairs.dataset as pair_dataset
    import hf_stadyn.video.sources as sources

    assert pairs.VIDEO_EXTENSIONS is pair_dataset.VIDEO_EXTENSIONS is sources.VIDEO_EXTENSIONS is VIDEO_EXTENSIONS
    assert pairs.list_videos is sources.list_videos
    assert ".ts" in VIDEO_EXTENSIONS and all(e == e.lower() and e.startswith(".") for e in VIDEO_EXTENSIONS)


def test_datasets_folder_synth_export_hub_id_and_missing_paths(classes, tmp_path):
    import datasets

    paths = [str(p) for p in list_videos(classes)]
    feats = datasets.Features({"video": datasets.Video(), "label": datasets.ClassLabel(names=["left", "right"])})
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"video": paths[:4], "label": [0, 0, 0, 1]}, features=feats),
        "test": datasets.Dataset.from_dict({"video": paths[4:], "label": [1, 1]}, features=feats),
    }).save_to_disk(str(tmp_path / "hf"))  # fmt: skip
    test = load_video_dataset(tmp_path / "hf", split="test")
    assert isinstance(test, datasets.Dataset) and len(test) == 2
    with pytest.raises(ValueError, match="no 'validation'"):
        load_video_dataset(tmp_path / "hf", split="validation")
    with pytest.raises(ValueError, match="no column 'clip'"):
        load_video_dataset(tmp_path / "hf", video_column="clip")
    # the Video column is read undecoded (bytes embedded by save_to_disk) and decoded with PyAV
    items = PairDataset(test, num_frames=4, size=16, window=8, seed=0)
    assert items[0]["video"].startswith("video[0] (") and items[0]["clip_a"].shape == (4, 16, 16, 3)

    synth = generate(tmp_path / "synth", split="motion", num_clips=3, config=SynthConfig(num_frames=6, size=32))
    ds = load_video_dataset(synth, split="ignored for a synth export")
    assert len(ds) == 3 and all(p.startswith(str(synth.resolve())) for p in ds["video"])  # load_synth: absolute
    assert load_dataset_folder(synth)["video"] == ds["video"]
    two = TwoStreamPairDataset(ds, size=16, seed=0)
    assert len(two) == 3 * 6
    # the training reader takes the same export (labels from its int label column)
    train, evals, names = hf_video_datasets(synth, num_frames=4, size=16, eval_fraction=0.34, seed=0)
    assert len(train) + len(evals["eval"]) == 3 and names == sorted(names)

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a datasets folder"):
        load_video_dataset(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing: no such folder"):
        load_video_dataset(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_local_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="csv"):
        load_local_dataset(classes / "left" / "notes.txt")


def test_a_video_cell_resolves_to_a_path_or_bytes(classes):
    path = str(classes / "left" / "a.mp4")
    data = (classes / "left" / "a.mp4").read_bytes()
    assert resolve_video(path, "v[0]") == (path, path)
    assert resolve_video(data, "v[0]") == (data, "v[0]")
    both = {"path": "a.mp4", "bytes": data}
    # the pair datasets decode embedded bytes; the training readers read the file when it exists
    assert resolve_video(both, "v[0]") == (data, "v[0] (a.mp4)")
    assert resolve_video(both, "v[0]", base=classes / "left", prefer="file") == (path, path)
    assert resolve_video(both, "v[0]", base=classes, prefer="file")[0] == data  # no such file: the bytes
    assert resolve_video({"path": "a.mp4", "bytes": None}, "v[0]", base=classes / "left") == (path, path)
    assert resolve_video("./rel/x.mp4", "v[0]") == ("./rel/x.mp4", "./rel/x.mp4")  # kept as the dataset holds it
    with pytest.raises(ValueError, match="v\\[0\\].*got int"):
        resolve_video(3, "v[0]")
    with pytest.raises(ValueError, match="'bytes' or 'file'"):
        resolve_video(path, "v[0]", prefer="path")


def test_collection_kinds(classes):
    clips = [scene(0, t=5, size=16), scene(1, t=7, size=16)]
    arrays = VideoCollection(clips)
    assert arrays.kind == "arrays" and len(arrays) == 2 and arrays.get(1)[1] == "<clip 1>"
    made = VideoCollection(lambda j: clips[j], num_videos=2)
    assert made.kind == "callable" and np.array_equal(made.get(0)[0], clips[0])
    listed = VideoCollection([classes / "right" / "b.ts"])
    assert listed.kind == "paths" and listed.get(0) == (str(classes / "right" / "b.ts"),) * 2
    with pytest.raises(FileNotFoundError, match="not found"):
        VideoCollection([classes / "nope.mp4"])
    with pytest.raises(ValueError, match="num_videos"):
        VideoCollection(lambda j: clips[j])


LOCAL_LOOKING = ["./nope_ds", "../nope_ds", "/nope/abs_ds", "~/nope_ds", "a/b/c", "clips.mp4", "data.parquet"]


@pytest.mark.parametrize("given", LOCAL_LOOKING)
def test_a_missing_local_looking_path_is_never_taken_for_a_hub_id(given, tmp_path, monkeypatch):
    """The bug this guards against: ``--dataset ./nope_ds`` went to the Hub and failed with a ConnectionError."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        load_video_dataset(given, name="--dataset")
    assert str(info.value) == (
        f"--dataset {given}: no such folder; give an existing datasets folder (save_to_disk) or a Hub dataset id "
        "like 'user/name'"
    )


def test_a_file_given_as_dataset_folder(classes):
    with pytest.raises(FileNotFoundError, match=r"notes\.txt: a file, not a folder; give a datasets folder"):
        load_video_dataset(classes / "left" / "notes.txt")


@pytest.mark.parametrize("hub_id", ["someone/not_cached_videos", "someone/videos-v1.5", "plainname"])
def test_a_hub_id_that_is_not_cached_while_offline_is_one_line(hub_id, tmp_path, monkeypatch):
    """tests/conftest.py sets HF_HUB_OFFLINE=1 and an empty HF_HOME: the id reaches the Hub reader, which
    cannot fetch it; the answer says what, which input and what to do (no ConnectionError traceback text)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConnectionError) as info:
        load_video_dataset(hub_id, name="--dataset")
    msg = str(info.value)
    assert msg.startswith(f"--dataset {hub_id}: not in the local cache and HF_HUB_OFFLINE=1 (offline mode)")
    assert "unset HF_HUB_OFFLINE" in msg and "\n" not in msg and info.value.__cause__ is None
