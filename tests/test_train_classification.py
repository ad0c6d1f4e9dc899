"""`stadyn train --task classification`: a short run whose checkpoint plain transformers loads with
identical logits, identical resume, no half-written checkpoint, bad options, data sources, augment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_stadyn.debias import StaticDropoutConfig
from hf_stadyn.synth import SynthConfig
from hf_stadyn.training import (
    ClassificationTrainingConfig,
    StylizeAugment,
    hf_video_datasets,
    synth_datasets,
    train_classification,
    video_folder_datasets,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", "16", "--num-frames", "4", "--hidden-size", "32", "--num-layers", "2", "--num-heads", "2"]
SYNTH16 = SynthConfig(num_frames=4, size=16, speed=1.0, motions=("left", "right", "up"), num_appearances=3)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "2"
    return env


def _stadyn(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hf_stadyn", *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cls") / "run"
    proc = _stadyn(
        "train", "--task", "classification", "-o", str(out), "--data", "synth", "--synth-split", "trap",
        "--train-clips", "48", "--test-clips", "12", *TINY, "--epochs", "2", "--batch-size", "16",
        "--learning-rate", "1e-3", "--static-dropout", "0.5", "--sd-num-static", "8", "--sd-probe-pairs", "16",
        "--probe-pairs", "16", "--seed", "3",
        cwd=out.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "checkpoint in" in proc.stdout and "static set 8 channels" in proc.stdout
    return out


def test_cli_run_writes_checkpoint_history_and_figure(cli_run):
    model_dir = cli_run / "model"
    assert {"config.json", "model.safetensors"} <= {p.name for p in model_dir.iterdir()}
    assert not list(cli_run.glob(".tmp*")) and not list((cli_run / "checkpoints").glob(".tmp*"))
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["model_type"] == "videomae"  # upstream-compatible
    sd = cfg["stadyn"]["static_dropout"]
    assert sd["p"] == 0.5 and sd["layer"] == "pre_classifier" and len(sd["static_channels"]) == 8
    metrics = [json.loads(s) for s in (cli_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert {"eval/aligned/accuracy", "eval/conflicting/accuracy"} <= set(metrics[-1])
    history = [json.loads(s) for s in (cli_run / "bias_history.jsonl").read_text().splitlines()]
    assert history[0]["step"] == 0 and history[-1]["step"] == 6  # 48 clips / 16 = 3 steps per epoch
    assert history[-1]["static_dropout"]["static_channels"] == sd["static_channels"]
    assert (cli_run / "bias_history.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((cli_run / "checkpoints").iterdir())) == 2


def test_plain_transformers_loads_the_checkpoint_with_identical_logits(cli_run, tmp_path):
    from hf_stadyn.models.auto import load_model as load_video_classifier

    torch.manual_seed(0)
    x = torch.randn(3, 4, 3, 16, 16)
    np.save(tmp_path / "x.npy", x.numpy())
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, torch
        from transformers import AutoModelForVideoClassification
        m = AutoModelForVideoClassification.from_pretrained({str(cli_run / "model")!r}).eval()
        assert not any(k.startswith("hf_stadyn") for k in sys.modules), "hf_stadyn was imported"
        with torch.no_grad():
            out = m(pixel_values=torch.from_numpy(np.load({str(tmp_path / "x.npy")!r}))).logits
        np.save({str(tmp_path / "plain.npy")!r}, out.numpy())
        print(type(m).__name__, m.config.stadyn["static_dropout"]["static_channels"])
        """
    )
    env = _env()
    env["PYTHONPATH"] = ""  # hf_stadyn is not importable there
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("VideoMAEForVideoClassification")
    ours = load_video_classifier(cli_run / "model").eval()
    with torch.no_grad():
        ref = ours(pixel_values=x).logits
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "plain.npy")), ref)


def _cfg(out: Path, **kw) -> ClassificationTrainingConfig:
    base = dict(
        output_dir=str(out), num_frames=4, image_size=16, hidden_size=32, num_layers=2, num_heads=2, epochs=2,
        batch_size=8, learning_rate=1e-3, probe_pairs=12, progress=False, sd_refresh_every=2, augment="stylize",
        static_dropout=StaticDropoutConfig(p=0.5, num_static=8, num_probe_pairs=12),
    )  # fmt: skip
    base.update(kw)
    return ClassificationTrainingConfig(**base)


@pytest.fixture(scope="module")
def tiny_trap():
    return synth_datasets("trap", num_train=40, num_eval=8, seed=0, config=SYNTH16)


def test_resume_continues_identically(tmp_path, tiny_trap):
    from safetensors.torch import load_file

    train, evals, names = tiny_trap
    full = train_classification(_cfg(tmp_path / "a"), train, evals, label_names=names)
    part = train_classification(_cfg(tmp_path / "b", stop_after_steps=3), train, evals, label_names=names)
    assert part.model_dir is None and part.steps_done == 3  # stopped mid-epoch (5 steps per epoch)
    rest = train_classification(_cfg(tmp_path / "b", resume=True), train, evals, label_names=names)
    assert rest.steps_done == full.steps_done == 10
    wa, wb = load_file(full.model_dir / "model.safetensors"), load_file(rest.model_dir / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert rest.history == full.history and rest.static_channels == full.static_channels

    def steps(p):
        return [
            (r["step"], r["static_dropout"]["static_channels"]) for r in map(json.loads, p.read_text().splitlines())
        ]

    assert steps(rest.bias_history) == steps(full.bias_history)
    # a finished run refuses to start again without --resume / --overwrite
    with pytest.raises(ValueError, match="already holds a training run"):
        train_classification(_cfg(tmp_path / "a"), train, evals, label_names=names)


def test_no_half_written_checkpoint(tmp_path, tiny_trap, monkeypatch):
    import hf_stadyn.training.classification as cls_mod

    train, evals, names = tiny_trap
    real = cls_mod.atomic_write_json

    def crash(path, obj, **kw):
        if Path(path).name == cls_mod.STATE_FILE and obj["step"] >= 10:
            raise OSError("disk full")
        return real(path, obj, **kw)

    monkeypatch.setattr(cls_mod, "atomic_write_json", crash)
    with pytest.raises(OSError, match="disk full"):
        train_classification(_cfg(tmp_path / "c", static_dropout=None, augment=None, track_bias=False), train, evals,
                             label_names=names)  # fmt: skip
    ckpts = sorted(p.name for p in (tmp_path / "c" / "checkpoints").iterdir())
    assert ckpts == ["step_00000005"]  # the complete epoch-1 checkpoint; nothing of the failed one
    assert not (tmp_path / "c" / "model").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sd-layer", "block_1"], "need --static-dropout"),
        (["--data", "/nonexistent/videos"], "does not exist"),
        (["--model", "/nonexistent/ckpt"], "neither videomae"),
        (["--resume", "--overwrite"], "exclude each other"),
        (["--size", "20"], "multiple of patch_size"),
        (["--static-dropout", "0.5", "--sd-layer", "block_9"], "block_9"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(tmp_path, capsys, extra, message):
    from hf_stadyn.cli import main

    rc = main(["train", "--task", "classification", "-o", str(tmp_path / "o"), "--train-clips", "8",
               "--test-clips", "4", "--epochs", "1", *TINY, *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert not (tmp_path / "o" / "model").exists()


def test_argparse_rejects_out_of_range_rates(tmp_path, capsys):
    from hf_stadyn.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--task", "classification", "-o", str(tmp_path), "--static-dropout", "1.5"])
    assert e.value.code == 2 and "[0, 1)" in capsys.readouterr().err


def _write_videos(root: Path, n_per_class: int = 2) -> list[tuple[str, str]]:
    from hf_stadyn.synth import SynthDataset
    from hf_stadyn.video import write_video

    ds = SynthDataset(
        "motion",
        3 * n_per_class,
        SynthConfig(num_frames=6, size=16, speed=1.0, motions=("left", "right", "up")),
        seed=0,
    )
    rows = []
    for i in range(len(ds)):
        item = ds[i]
        name = ("left", "right", "up")[item["label"]]
        path = root / name / f"clip{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, item["frames"].numpy(), fps=8)
        rows.append((str(path.relative_to(root)), name))
    return rows


def test_video_folder_and_datasets_sources(tmp_path):
    rows = _write_videos(tmp_path / "vids")
    train, evals, names = video_folder_datasets(tmp_path / "vids", num_frames=4, size=16, eval_fraction=0.34, seed=0)
    assert sorted(names) == names and set(names) <= {"left", "right", "up"} and len(names) >= 2
    item = train[0]
    assert item["frames"].shape == (4, 16, 16, 3) and item["frames"].dtype == torch.uint8
    assert len(train) + len(evals["eval"]) == len(rows)
    # the same videos as a CSV with a path column and a string label column
    csv = tmp_path / "vids" / "meta.csv"
    csv.write_text("path,action\n" + "".join(f"{p},{lbl}\n" for p, lbl in rows))
    tr2, ev2, names2 = hf_video_datasets(csv, num_frames=4, size=16, video_column="path", label_column="action")
    assert names2 == sorted({lbl for _, lbl in rows})
    got = {tr2.videos[i][0]: names2[tr2.videos[i][1]] for i in range(len(tr2))}
    assert all(got[str(tmp_path / "vids" / p)] == lbl for p, lbl in rows if str(tmp_path / "vids" / p) in got)
    with pytest.raises(ValueError, match="no 'video'"):
        hf_video_datasets(csv, num_frames=4, size=16, label_column="action")
    # a save_to_disk DatasetDict with a Video feature (files embedded) and ClassLabel labels
    import datasets

    feats = datasets.Features({"video": datasets.Video(), "label": datasets.ClassLabel(names=["left", "right", "up"])})
    paths = [str(tmp_path / "vids" / p) for p, _ in rows]
    ids = [("left", "right", "up").index(lbl) for _, lbl in rows]
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"video": paths[:4], "label": ids[:4]}, features=feats),
        "test": datasets.Dataset.from_dict({"video": paths[4:], "label": ids[4:]}, features=feats),
    })  # fmt: skip
    dd.save_to_disk(str(tmp_path / "hf"))
    tr3, ev3, names3 = hf_video_datasets(tmp_path / "hf", num_frames=4, size=16)
    assert names3 == ["left", "right", "up"] and len(tr3) == 4 and len(ev3["eval"]) == len(rows) - 4
    assert tr3[1]["frames"].shape == (4, 16, 16, 3) and tr3[1]["label"] == ids[1]
    with pytest.raises(ValueError, match="at least 2"):
        shutil.rmtree(tmp_path / "vids" / "up")
        shutil.rmtree(tmp_path / "vids" / "right")
        video_folder_datasets(tmp_path / "vids", num_frames=4, size=16)


def test_stylize_augment_is_seeded_and_temporally_consistent():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)
    still = np.stack([frame] * 4)  # a clip without motion
    aug = StylizeAugment(p=1.0, seed=5)
    out = aug(still, index=3, epoch=1)
    assert out.shape == still.shape and out.dtype == np.uint8 and not np.array_equal(out, still)
    assert all(np.array_equal(out[0], out[t]) for t in range(4))  # one style for every frame
    assert np.array_equal(out, aug(still, index=3, epoch=1))  # seeded
    assert any(not np.array_equal(out, aug(still, index=3, epoch=e)) for e in range(2, 6))  # new draw per epoch
    assert np.array_equal(StylizeAugment(p=0.0)(still, 0), still)
    with pytest.raises(ValueError, match="p must be"):
        StylizeAugment(p=1.5)
