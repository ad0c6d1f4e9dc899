"""StaDyn-Synth on disk: generate(), load_synth(), `datasets` loading and the `stadyn synth` command."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from hf_stadyn.synth import SynthConfig, SynthDataset, generate, load_masks, load_synth

SMALL = SynthConfig(num_frames=6, size=32, motions=("left", "right", "clockwise"), num_appearances=3)


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_generate_is_byte_deterministic_and_loads_with_datasets(tmp_path):
    import datasets

    from hf_stadyn.video import read_video

    a = generate(tmp_path / "a", split="trap", num_clips=5, config=SMALL, seed=3, trap_share=0.5)
    b = generate(tmp_path / "b", split="trap", num_clips=5, config=SMALL, seed=3, trap_share=0.5)
    c = generate(tmp_path / "c", split="trap", num_clips=5, config=SMALL, seed=4, trap_share=0.5)
    assert (
        _files(a)
        == _files(b)
        == [
            "README.md",
            *[f"masks/clip_{i:06d}.npz" for i in range(5)],
            "metadata.jsonl",
            "synth.json",
            *[f"videos/clip_{i:06d}.mp4" for i in range(5)],
        ]
    )
    for name in _files(a):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "videos/clip_000000.mp4").read_bytes() != (c / "videos/clip_000000.mp4").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left

    ds = load_synth(a)
    assert isinstance(ds, datasets.Dataset) and len(ds) == 5
    ref = SynthDataset("trap", 5, SMALL, seed=3, trap_share=0.5)
    for i in range(5):
        row = ds[i]
        clip, cls = ref.clip(i)
        assert (row["label"], row["motion"], row["appearance"], row["cue_agrees"]) == (
            cls["label"],
            cls["motion"],
            cls["appearance"],
            cls["cue_agrees"],
        )
        assert row["label_name"] == SMALL.motions[cls["label"]] and os.path.isabs(row["video"])
        assert np.array_equal(load_masks(row["mask"]), clip.masks)
        video = read_video(row["video"])
        assert video.shape == clip.frames.shape
        assert np.abs(video.astype(float) - clip.frames).mean() < 12  # lossy h264 with 4:2:0 chroma
        assert len(row["objects"][0]["centers"]) == SMALL.num_frames
    settings = json.loads(ds.info.description)
    assert settings["seed"] == 3 and settings["config"] == SMALL.to_dict()

    # the plain `datasets` routes: the json builder, and the folder itself through README.md configs
    plain = datasets.load_dataset("json", data_files=str(a / "metadata.jsonl"), split="train")
    assert plain["label"] == ds["label"] and plain[0]["video"] == "videos/clip_000000.mp4"
    via_card = datasets.load_dataset(str(a), split="train")
    assert via_card["appearance"] == ds["appearance"]


def test_generate_refuses_non_empty_folder_and_overwrites_atomically(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty.*overwrite"):
        generate(out, num_clips=2, config=SMALL)
    assert _files(out) == ["keep.txt"]
    # a failure midway leaves the old folder untouched and no temp folder behind
    with pytest.raises(ValueError, match="crf"):
        generate(out, num_clips=2, config=SMALL, crf=99, overwrite=True)
    assert _files(out) == ["keep.txt"]
    generate(out, num_clips=2, config=SMALL, overwrite=True)
    assert "keep.txt" not in _files(out) and len(load_synth(out)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(load_synth(generate(empty, num_clips=1, config=SMALL))) == 1


def test_load_synth_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_synth(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="metadata.jsonl"):
        load_synth(tmp_path)
    (tmp_path / "metadata.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="line 1"):
        load_synth(tmp_path)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ValueError, match="mask file"):
        load_masks(tmp_path / "bad.npz")


# ------------------------------------------------------------------------------------------------- CLI
def _cli(args: list[str]) -> int:
    from hf_stadyn.cli import main

    try:
        return main(args)
    except SystemExit as e:  # argparse errors
        return int(e.code)


def test_cli_writes_a_loadable_folder(tmp_path, capsys):
    out = tmp_path / "cam"
    rc = _cli(
        [
            "synth",
            "--out",
            str(out),
            "--split",
            "appearance",
            "--num-clips",
            "4",
            "--frames",
            "6",
            "--size",
            "32",
            "--seed",
            "2",
            "--cue",
            "both",
            "--camouflage",
            "--objects",
            "2",
            "--motions",
            "up,down",
            "--appearances",
            "3",
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert "wrote 4 appearance clips" in capsys.readouterr().out
    ds = load_synth(out)
    assert len(ds) == 4 and set(ds["camouflage"]) == {True}
    assert all(len(o) == 2 for o in ds["objects"]) and set(ds["motion_name"]) <= {"up", "down"}
    assert all(r["label"] == r["appearance"] for r in ds)
    settings = json.loads((out / "synth.json").read_text())
    assert settings["config"]["num_objects"] == 2 and settings["trap_cue"] == "both"
    # the same command reproduces the same files
    again = tmp_path / "again"
    _cli(
        [
            "synth",
            "--out",
            str(again),
            "--split",
            "appearance",
            "--num-clips",
            "4",
            "--frames",
            "6",
            "--size",
            "32",
            "--seed",
            "2",
            "--cue",
            "both",
            "--camouflage",
            "--objects",
            "2",
            "--motions",
            "up,down",
            "--appearances",
            "3",
            "--no-progress",
        ]
    )
    assert (out / "metadata.jsonl").read_bytes() == (again / "metadata.jsonl").read_bytes()


def test_cli_trap_test_variant(tmp_path):
    out = tmp_path / "trap"
    assert (
        _cli(
            [
                "synth",
                "-o",
                str(out),
                "--split",
                "trap",
                "-n",
                "6",
                "--test",
                "--test-variant",
                "conflicting",
                "--motions",
                "left,right",
                "--appearances",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    ds = load_synth(out)
    assert not any(ds["cue_agrees"]) and all(r["appearance"] != r["label"] for r in ds)
    assert json.loads((out / "synth.json").read_text())["train"] is False


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--split", "shuffled"], "invalid choice"),
        (["--num-clips", "0"], "positive integer"),
        (["--seed", "-3"], "non-negative"),
        (["--cue", "colour"], "invalid choice"),
        (["--trap-share", "1.5"], "trap_share"),
        (["--motions", "left,sideways"], "unknown motion"),
        (["--frames", "40"], "does not fit"),
        (["--split", "trap", "--appearances", "3"], "at least as many appearance"),
        (["--crf", "80"], "crf"),
        (["--noise", "2"], "noise"),
    ],
)
def test_cli_rejects_bad_options(tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert _cli(["synth", "--out", str(out), "--num-clips", "2", "--no-progress", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_refuses_to_overwrite_without_flag(tmp_path, capsys):
    out = tmp_path / "full"
    out.mkdir()
    (out / "x").write_text("x")
    args = ["synth", "--out", str(out), "--num-clips", "2", "--frames", "4", "--no-progress"]
    assert _cli(args) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "x").exists()
    assert _cli([*args, "--overwrite"]) == 0
    assert not (out / "x").exists() and len(load_synth(out)) == 2


def test_cli_defaults_are_the_library_defaults_and_run(tmp_path, capsys):
    """`stadyn synth` with default arguments works. Bug it catches: a hidden old option name registered
    before the new one gave the new one its default (None), so `--split trap` with defaults failed with
    "trap_share must be a number in [0, 1], got None"."""
    import inspect

    from hf_stadyn.cli import build_parser

    ns = build_parser().parse_args(["synth", "--output_dir", str(tmp_path / "x")])
    assert all(v is not None for k, v in vars(ns).items()), vars(ns)
    gen = inspect.signature(generate).parameters
    for name in ("trap_share", "trap_cue", "test_variant"):
        assert getattr(ns, name) == gen[name].default, name
    d = SynthConfig()
    assert (ns.num_frames, ns.size, ns.appearances, ns.objects) == (d.num_frames, d.size, d.num_appearances,
                                                                     d.num_objects)  # fmt: skip
    for split in ("motion", "trap"):
        out = tmp_path / split
        assert _cli(["synth", "--output_dir", str(out), "--split", split, "--num_clips", "2", "--disable_tqdm"]) == 0
        assert f"wrote 2 {split} clips (train)" in capsys.readouterr().out
        settings = json.loads((out / "synth.json").read_text())
        assert settings["trap_share"] == 0.99 and settings["trap_cue"] == "invariant"
