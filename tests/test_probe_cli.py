"""`stadyn probe`: the main job on its embedded default, other sources, determinism and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _media import write_motion_videos

from hf_stadyn.cli import main as stadyn
from hf_stadyn.models.auto import DEFAULT_MODEL_DIR


@pytest.fixture(autouse=True)
def _reset_accelerate():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_no_arguments_runs_the_embedded_default(tmp_path):
    """The README's main job: `stadyn` / `stadyn probe` with no arguments, in a fresh process."""
    env = dict(os.environ, OMP_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-m", "hf_stadyn"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "stadyn-report"
    for name in ("report.json", "report.md"):
        assert (out / name).is_file()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) >= 3, pngs
    assert not (out / ".probe_state").exists()
    doc = json.loads((out / "report.json").read_text())
    layers = {lb["layer"]: lb for lb in doc["layers"]}
    ref_layers = {lb["layer"]: lb for lb in doc["reference"]["layers"]}
    last = [k for k in layers if k.startswith("block_")][-1]
    trained, ref = layers[last], ref_layers[last]
    # the motion-trained default reads clearly more dynamic than its architecture at initialisation
    assert trained["s_dynamic"] > ref["s_dynamic"] + 0.1
    assert trained["s_static"] < ref["s_static"] - 0.3
    assert trained["intervals"]["percent_dynamic"]["low"] > ref["intervals"]["percent_dynamic"]["high"]
    assert trained["num_pairs"]["dynamic"] + trained["num_pairs"]["static"] == 1500
    assert "block_3" in (out / "report.md").read_text()
    assert "wrote" in res.stdout


def test_folder_of_videos_and_determinism(tmp_path, capsys):
    vids = tmp_path / "videos"
    write_motion_videos(vids, 3, seed=3)
    args = ["probe", "--videos", str(vids), "--num_pairs", "40", "--batch_size", "8", "--disable_tqdm",
            "--layers", "block_0,block_3", "--no_reference", "--seed", "5"]  # fmt: skip
    assert stadyn(args + ["--output_dir", str(tmp_path / "a")]) == 0
    assert stadyn(args + ["--output_dir", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "report.json").read_bytes()
    assert a == (tmp_path / "b" / "report.json").read_bytes()
    doc = json.loads(a)
    assert [lb["layer"] for lb in doc["layers"]] == ["block_0", "block_3"]
    assert doc["pair_settings"]["source"] == "videos"
    assert doc["reference"] is None
    assert stadyn(args[:-2] + ["--seed", "6", "--output_dir", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "report.json").read_bytes() != a


def test_local_timesformer_folder_and_saved_dataset(tmp_path):
    import datasets
    import torch

    from hf_stadyn.models import StadynTimesformerForVideoClassification, tiny_timesformer_config

    torch.manual_seed(0)
    model_dir = tmp_path / "tsf"
    StadynTimesformerForVideoClassification(tiny_timesformer_config(num_labels=3)).save_pretrained(model_dir)
    vids = tmp_path / "videos"
    write_motion_videos(vids, 2, seed=3)
    ds = datasets.Dataset.from_dict({"video": [str(p) for p in sorted(vids.glob("*.mp4"))], "label": [0, 1]})
    ds.save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "out"
    code = stadyn(["probe", "--model", str(model_dir), "--dataset", str(tmp_path / "ds"), "--num_pairs", "16",
                   "--batch_size", "8", "--disable_tqdm", "--reference", "--output_dir", str(out)])  # fmt: skip
    assert code == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["model"]["id"] == str(model_dir)
    assert [lb["layer"] for lb in doc["reference"]["layers"]] == [lb["layer"] for lb in doc["layers"]]
    assert doc["pair_settings"]["source"] == "dataset"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--num_pairs", "2"], "--num_pairs must be >= 4"),
        (["--videos", "/nonexistent/folder"], "does not exist"),
        (["--layers", "block_0,block_99"], "unknown layer"),
        (["--model", "/nonexistent/model"], "does not exist"),
        (["--threshold", "3"], "--threshold"),
        (["--batch_size", "0"], "--batch_size"),
        (["--synth_clips", "4", "--num_pairs", "10"], None),  # fine: pairs reuse clips
    ],
)
def test_bad_options_exit_2_and_write_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    code = stadyn(["probe", "--disable_tqdm", "--output_dir", str(out), "--num_pairs", "8", *extra])
    if message is None:
        assert code == 0
        return
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_non_empty_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert stadyn(["probe", "--disable_tqdm", "--output_dir", str(out), "--num_pairs", "8"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "x"


def test_corrupt_video_is_named_and_leaves_nothing(tmp_path, capsys):
    vids = tmp_path / "videos"
    vids.mkdir()
    (vids / "broken.mp4").write_bytes(b"not a video at all" * 10)
    out = tmp_path / "out"
    assert stadyn(["probe", "--videos", str(vids), "--num_pairs", "8", "--disable_tqdm", "--output_dir", str(out)]) == 2
    assert "broken.mp4" in capsys.readouterr().err
    assert not out.exists()


def test_embedded_default_is_a_real_checkpoint():
    """The embedded default classifies freshly rendered StaDyn-Synth motion clips of its training classes.

    64 held-out clips (``train=False``) from seed 20261201 (training used seed 0), the synth_config recorded in
    training.json, inputs prepared by the model itself (``prepare_pixel_values``, as the probe does):
    accuracy must be >= 0.9 (chance is 0.25; measured 1.0 here, 0.98-1.0 on seeds 1, 7, 12345). The same
    clips played backwards must read as the opposite direction (left <-> right, up <-> down) at >= 0.9
    (measured 1.0), which only a model of the motion can do: appearance is random in the motion split and
    identical both ways.

    Bugs caught: an untrained, truncated or wrongly converted checkpoint (about 25 %); id2label out of order
    with the synth label names; the processor's statistics or frame count not applied on load (the inputs
    would differ from training); a checkpoint trained on another split; a recorded accuracy that no longer
    describes the weights.
    """
    import torch

    from hf_stadyn import load_model
    from hf_stadyn.synth import SynthConfig, SynthDataset

    assert (DEFAULT_MODEL_DIR / "model.safetensors").is_file()
    cfg = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    assert cfg["model_type"] == "videomae"
    training = json.loads((DEFAULT_MODEL_DIR / "training.json").read_text())
    assert training["split"] == "motion" and training["seed"] != 20261201
    ds = SynthDataset("motion", num_clips=64, config=SynthConfig(**training["synth_config"]), seed=20261201,
                      train=False)  # fmt: skip
    model = load_model().eval()
    assert [model.config.id2label[i] for i in range(len(ds.label_names))] == ds.label_names
    items = [ds[i] for i in range(64)]
    frames = torch.stack([it["frames"] for it in items])
    labels = torch.tensor([it["label"] for it in items])
    assert len(set(labels.tolist())) == len(ds.label_names)  # every class is tested
    with torch.no_grad():
        pred = model(pixel_values=model.prepare_pixel_values(frames)).logits.argmax(-1)
        backwards = model(pixel_values=model.prepare_pixel_values(frames.flip(1))).logits.argmax(-1)
    assert (pred == labels).float().mean() >= 0.9, (pred == labels).float().mean()
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}
    names = ds.label_names
    flipped = torch.tensor([names.index(opposite[names[int(y)]]) for y in labels])
    assert (backwards == flipped).float().mean() >= 0.9, (backwards == flipped).float().mean()


def test_model_folder_training_json_sets_the_synth_classes(tmp_path):
    """A local model folder with a training.json ``synth_config`` (the released checkpoints in model_cards/) is
    probed on StaDyn-Synth clips of its own classes, as the embedded default is: a copy of the embedded default's
    folder gets the embedded run's pairs (same pair fingerprint); without training.json it gets the default
    scene settings (other clips, another fingerprint); an unknown key in synth_config is ignored.

    Bugs caught: the training.json read only for the embedded default (released trap models probed on classes
    they never saw), a bad training.json crashing the run."""
    import shutil

    def fingerprint(args: list[str], out: str) -> str:
        assert stadyn(["probe", *args, "--num_pairs", "8", "--synth_clips", "16", "--no_reference", "--disable_tqdm",
                       "--output_dir", str(tmp_path / out)]) == 0  # fmt: skip
        return json.loads((tmp_path / out / "report.json").read_text())["pair_settings"]["fingerprint"]

    folder = tmp_path / "copy"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    embedded = fingerprint([], "embedded")
    assert fingerprint(["--model", str(folder)], "with") == embedded
    training = json.loads((folder / "training.json").read_text())
    training["synth_config"]["not_a_field"] = 1
    (folder / "training.json").write_text(json.dumps(training))
    assert fingerprint(["--model", str(folder)], "extra_key") == embedded
    (folder / "training.json").unlink()
    assert fingerprint(["--model", str(folder)], "without") != embedded
